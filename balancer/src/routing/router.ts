// Request -> upstream lookup, compiled once per table so match() (on the hot path) is a map lookup
// plus a short scan of prefixes sorted longest first.
// Precedence: every route bound to the request's Host first, then any-host routes:
//   1. explicit host-specific routes, longest prefix first;
//   2. the implicit route "Host equals an upstream name" (case-insensitive);
//   3. explicit any-host routes (urlprefix-/...), longest prefix first.
// So one `urlprefix-/` tag is a fallback for unknown hosts and never captures a Host that names a service.
// Prefixes match as plain string prefixes (fabio semantics: /api also matches /apix).
import type { Route, RouteTable, UpstreamSpec } from './types.js';
import { upstreamOf } from './table-upstreams.js';
import { SharedMap } from './shared-map.js';

export interface RouteMatch {
  readonly upstream: UpstreamSpec;
  /** the explicit route that matched; absent for the implicit "Host = upstream name" route */
  readonly route?: Route;
}

export interface Router {
  match(host: string | undefined, path: string): RouteMatch | undefined;
  /** the implicit Host = upstream name routes, kept so the next table's router shares them */
  readonly implicit?: ReadonlyMap<string, RouteMatch>;
  /** some upstream name has upper-case letters (two names may then share one Host: rebuild all) */
  readonly mixedCase?: boolean;
}

type Entry = { readonly prefix: string; readonly result: RouteMatch };

/**
 * `prev` and `changed` (names upserted or removed since prev's table): the implicit routes are the
 * previous ones with only the changed names redone (a copy, the previous router stays intact for
 * requests holding it); explicit routes are few and always rebuilt.
 */
export function compileRouter(table: RouteTable, prev?: Router, changed?: ReadonlySet<string>): Router {
  const byHost = new Map<string, Entry[]>();
  const anyHost: Entry[] = [];
  for (const route of table.routes) {
    const upstream = upstreamOf(table, route.upstream);
    if (upstream === undefined || !httpRoutable(upstream)) continue; // dangling route, or a TCP service: skip
    const entry: Entry = { prefix: route.pathPrefix, result: Object.freeze({ upstream, route }) };
    const host = route.host.toLowerCase();
    if (host === '') anyHost.push(entry);
    else {
      let list = byHost.get(host);
      if (!list) byHost.set(host, (list = []));
      list.push(entry);
    }
  }
  const longestFirst = (a: Entry, b: Entry): number => b.prefix.length - a.prefix.length;
  anyHost.sort(longestFirst);
  for (const list of byHost.values()) list.sort(longestFirst);

  let implicit: ReadonlyMap<string, RouteMatch>;
  let mixedCase = false;
  if (prev?.implicit !== undefined && changed !== undefined && prev.mixedCase === false && [...changed].every((n) => n === n.toLowerCase())) {
    // shares every unchanged route with prev's map (a copy per delta costs ~1 ms at 5,000 upstreams)
    const routeChanges = new Map<string, RouteMatch | undefined>();
    for (const name of changed) {
      const upstream = upstreamOf(table, name);
      routeChanges.set(name, upstream === undefined || !httpRoutable(upstream) ? undefined : Object.freeze({ upstream }));
    }
    implicit = SharedMap.of(prev.implicit).with(routeChanges);
  } else {
    const all = new Map<string, RouteMatch>();
    for (const name of Object.keys(table.upstreams)) {
      const key = name.toLowerCase();
      if (key !== name) mixedCase = true;
      if (!all.has(key) && httpRoutable(table.upstreams[name])) all.set(key, Object.freeze({ upstream: table.upstreams[name] }));
    }
    implicit = all;
  }

  return {
    implicit,
    mixedCase,
    match(rawHost, path) {
      const host = rawHost === undefined ? undefined : normalizeHost(rawHost);
      if (host !== undefined) {
        const list = byHost.get(host);
        if (list) {
          for (let i = 0; i < list.length; i++) if (path.startsWith(list[i].prefix)) return list[i].result;
        }
        const named = implicit.get(host);
        if (named !== undefined) return named;
      }
      for (let i = 0; i < anyHost.length; i++) if (path.startsWith(anyHost[i].prefix)) return anyHost[i].result;
      return undefined;
    },
  };
}

/** proto=tcp|tcp+sni services are served on their own ports (balancer/src/l4), never as an HTTP Host. */
function httpRoutable(u: UpstreamSpec): boolean {
  return u.protocol !== 'tcp' && u.protocol !== 'tcp+sni';
}

/** Host header -> lower-case host without port ("[::1]:80" -> "[::1]"). */
export function normalizeHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) end = colon;
  }
  const h = end === host.length ? host : host.slice(0, end);
  return h.toLowerCase();
}
