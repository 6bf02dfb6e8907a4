// Table deltas between the primary and its workers (pure). A delta names the table it applies to
// (`from`) and the one it makes (`to`); a worker whose table is not `from` has missed something (a gap)
// and asks for the full table instead. Applying shares every unchanged upstream with the current table.
import type { Route, RouteTable, ScriptSpec, UpstreamSpec } from './types.js';
import { deepFreeze } from './table-version.js';
import { upstreamOf } from './table-upstreams.js';

export interface TableDelta {
  /** version of the table this delta applies to */
  readonly from: string;
  /** version of the table it produces */
  readonly to: string;
  /** upstreams added or replaced, whole */
  readonly upserted: readonly UpstreamSpec[];
  readonly removed: readonly string[];
  /** the new routes, only when they changed */
  readonly routes?: readonly Route[];
  /** the new request scripts, only when they changed ([] = all removed) */
  readonly scripts?: readonly ScriptSpec[];
}

export function makeDelta(prev: RouteTable, next: RouteTable, upserted: Iterable<string>, removed: Iterable<string>): TableDelta {
  return {
    from: prev.version,
    to: next.version,
    upserted: [...upserted].map((n) => upstreamOf(next, n)).filter((u): u is UpstreamSpec => u !== undefined),
    removed: [...removed].filter((n) => upstreamOf(next, n) === undefined),
    ...(prev.routes === next.routes ? {} : { routes: next.routes }),
    ...(prev.scripts === next.scripts ? {} : { scripts: next.scripts ?? [] }),
  };
}

export type DeltaResult = { readonly ok: true; readonly table: RouteTable } | { readonly ok: false; readonly reason: 'gap'; readonly have: string };

export function applyDelta(current: RouteTable, delta: TableDelta): DeltaResult {
  if (current.version !== delta.from) return { ok: false, reason: 'gap', have: current.version };
  const names = new Set(Object.keys(current.upstreams));
  let sameNames = true;
  for (const u of delta.upserted) if (!names.has(u.name)) sameNames = false;
  for (const n of delta.removed) if (names.has(n)) sameNames = false;
  let upstreams: Record<string, UpstreamSpec>;
  if (sameNames) {
    upstreams = { ...current.upstreams };
    for (const u of delta.upserted) upstreams[u.name] = deepFreeze(u);
  } else {
    for (const n of delta.removed) names.delete(n);
    const byName = new Map(delta.upserted.map((u) => [u.name, u]));
    for (const n of byName.keys()) names.add(n);
    upstreams = {};
    for (const n of [...names].sort()) upstreams[n] = byName.has(n) ? deepFreeze(byName.get(n)!) : current.upstreams[n];
  }
  const routes = delta.routes ? deepFreeze([...delta.routes]) : current.routes;
  // scripts are table-wide: a delta that does not name them keeps the current ones
  const scripts = delta.scripts === undefined ? current.scripts : delta.scripts.length > 0 ? deepFreeze([...delta.scripts]) : undefined;
  const table: RouteTable = scripts === undefined
    ? { version: delta.to, upstreams: Object.freeze(upstreams), routes }
    : { version: delta.to, upstreams: Object.freeze(upstreams), routes, scripts };
  return { ok: true, table: Object.freeze(table) };
}
