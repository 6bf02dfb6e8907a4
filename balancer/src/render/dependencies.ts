// What a template needs from Consul, as plain data. The first render pass records these; the watcher
// runs one blocking query per dependency; the snapshot keeps the latest answer of each under depKey().
// A health filter is applied at render time (client side), so `service "web"` and `service "web|any"`
// share one query.

export type Dependency =
  /** GET /v1/catalog/services */
  | { readonly kind: 'services' }
  /** GET /v1/health/service/<name>?tag=<tag> */
  | { readonly kind: 'service'; readonly name: string; readonly tag?: string }
  /** GET /v1/kv/<path> */
  | { readonly kind: 'key'; readonly path: string }
  /** GET /v1/kv/<prefix>?recurse */
  | { readonly kind: 'prefix'; readonly prefix: string };

/** Stable identity of a dependency: equal queries have equal keys. */
export function depKey(dep: Dependency): string {
  switch (dep.kind) {
    case 'services': return 'services';
    case 'service': return dep.tag === undefined ? `service:${dep.name}` : `service:${dep.name}:${dep.tag}`;
    case 'key': return `key:${dep.path}`;
    case 'prefix': return `prefix:${dep.prefix}`;
  }
}

/** One instance as templates see it: consul-template's HealthService field names. */
export interface ServiceInstanceView {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  readonly NodeAddress: string;
  /** Service.Address, or the node's address when the service has none */
  readonly Address: string;
  readonly Port: number;
  readonly Tags: readonly string[];
  readonly Meta: Readonly<Record<string, string>>;
  /** aggregated over node and service checks: critical > warning > passing */
  readonly Status: 'passing' | 'warning' | 'critical' | 'maintenance';
}

/** One entry of `services`: consul-template's CatalogSnapshot fields. */
export interface ServiceSummaryView {
  readonly Name: string;
  readonly Tags: readonly string[];
}

/** One KV pair as `ls`/`tree` return it; Key is relative to the prefix, Path the full key. */
export interface KvPairView {
  readonly Key: string;
  readonly Path: string;
  readonly Value: string;
}

/** The latest answer per dependency; `null` for a KV key or prefix that does not exist (404). */
export type DependencyValue =
  | { readonly kind: 'services'; readonly value: readonly ServiceSummaryView[] }
  | { readonly kind: 'service'; readonly value: readonly ServiceInstanceView[] }
  | { readonly kind: 'key'; readonly value: string | null }
  | { readonly kind: 'prefix'; readonly value: readonly KvPairView[] };

/**
 * Everything one render reads: Consul answers by depKey() and the environment. Rendering is a pure
 * function of (template, RenderData).
 */
export interface RenderData {
  readonly values: ReadonlyMap<string, DependencyValue>;
  readonly env: Readonly<Record<string, string | undefined>>;
}
