// Scripts ride in the routing table so they swap atomically with it in every worker and land in the
// dump file with it. Their content is part of the table version (a new script version is a new table).
import { createHash } from 'node:crypto';
import { deepFreeze } from '../routing/table-version.js';
import { viewOf, withTableFields } from '../routing/table-upstreams.js';
import type { RouteTable, ScriptSpec } from '../routing/types.js';

/** A script-free `table` carrying `scripts`, versioned over both; the table itself when there are none. */
export function withScripts(table: RouteTable, scripts: readonly ScriptSpec[]): RouteTable {
  if (scripts.length === 0) return table;
  const key = scripts.map((s) => `${s.name}\u0000${s.version}\u0000${s.services.join(',')}\u0000${s.timeoutMs}\u0000${s.maxFailures}\u0000${s.origin ?? ''}`).join('\u0001');
  const version = createHash('sha1').update(table.version).update('\u0002').update(key).digest('hex');
  // a builder's table: its upstreams stay shared (not even read); only the new shell and the scripts are frozen
  if (viewOf(table) !== undefined) return withTableFields(table, version, deepFreeze([...scripts]));
  const next = { ...table, scripts: [...scripts], version };
  // other tables are frozen already, as a rule: then a deep walk (the catalog) is not needed either
  if (!Object.isFrozen(table.upstreams) || !Object.isFrozen(table.routes)) return deepFreeze(next);
  next.scripts = deepFreeze(next.scripts);
  return Object.freeze(next);
}
