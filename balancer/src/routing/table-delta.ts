// Table deltas between the primary and its workers (pure). A delta names the table it applies to
// (`from`) and the one it makes (`to`); a worker whose table is not `from` has missed something (a gap)
// and asks for the full table instead. Applying shares every unchanged upstream with the current table.
import type { Route, RouteTable, ScriptSpec, UpstreamSpec } from './types.js';
import { deepFreeze } from './table-version.js';
import { lazyTable, upstreamOf, UpstreamsView, viewOf } from './table-upstreams.js';

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

/**
 * The table `delta` makes from `current`. Unchanged upstreams are the same (frozen) objects, and
 * their record is not copied: the new table shares `current`'s upstreams through an UpstreamsView
 * (a worker's table of 5,000 upstreams would otherwise cost a 5,000-key copy per delta), its
 * `upstreams` record made only when someone reads it. Per-change readers use upstreamOf().
 */
export function applyDelta(current: RouteTable, delta: TableDelta): DeltaResult {
  if (current.version !== delta.from) return { ok: false, reason: 'gap', have: current.version };
  const changes = new Map<string, UpstreamSpec | undefined>();
  for (const n of delta.removed) changes.set(n, undefined);
  for (const u of delta.upserted) changes.set(u.name, deepFreeze(u));
  const view = (viewOf(current) ?? UpstreamsView.of(current.upstreams)).with(changes);
  const routes = delta.routes ? deepFreeze([...delta.routes]) : current.routes;
  // scripts are table-wide: a delta that does not name them keeps the current ones
  const scripts = delta.scripts === undefined ? current.scripts : delta.scripts.length > 0 ? deepFreeze([...delta.scripts]) : undefined;
  return { ok: true, table: lazyTable(delta.to, view, routes, scripts) };
}
