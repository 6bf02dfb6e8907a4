// Request -> upstream lookup, compiled once per table; match() is on the hot path.
import type { Route, RouteTable, UpstreamSpec } from './types.js';

export interface RouteMatch {
  readonly upstream: UpstreamSpec;
  /** the explicit route that matched; absent for the implicit "Host = upstream name" route */
  readonly route?: Route;
}

export interface Router {
  match(host: string | undefined, path: string): RouteMatch | undefined;
}

export function compileRouter(table: RouteTable): Router {
  void table;
  return { match: () => undefined };
}
