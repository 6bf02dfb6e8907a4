// The pure table build: a Consul catalog snapshot plus admin-API upstreams -> one frozen RouteTable.
import type { CatalogSnapshot, Route, RouteTable, UpstreamSpec } from './types.js';
import type { TableDefaults } from './tag-options.js';

export interface BuildTableInput {
  readonly snapshot: CatalogSnapshot;
  readonly adminUpstreams: Readonly<Record<string, UpstreamSpec>>;
  readonly defaults: TableDefaults;
}

export interface BuildTableResult {
  readonly table: RouteTable;
  readonly warnings: string[];
}

export function buildRouteTable(input: BuildTableInput): BuildTableResult {
  void input;
  return { table: tableFromUpstreams({}, []), warnings: [] };
}

/** Freeze + version for any other producer of tables (admin-only tables, reload-mode config files). */
export function tableFromUpstreams(upstreams: Readonly<Record<string, UpstreamSpec>>, routes: readonly Route[]): RouteTable {
  return { version: '', upstreams, routes };
}
