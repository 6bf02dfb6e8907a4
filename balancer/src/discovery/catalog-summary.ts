// The catalog summary: one answer naming every service with its instance count and nodes, so a catalog
// move no signal explains (a passing instance of a quiet service deregistered or registered, a node
// leaving with instances of many services) costs one request and a read of the services whose count or
// node set differs, instead of a read of every service.
// Consul's /v1/internal/ui/services (the web UI's service list, Consul 1.9+; an internal endpoint, so a
// 404, 403 or a shape it cannot read makes discovery fall back to a rescan) answers a list of
// { Name, InstanceCount, Nodes, ChecksPassing, ... } per service with the index of the whole catalog
// (agent/ui_endpoint.go). Its quirks: an empty catalog answers `null` (a nil Go slice); sidecar proxies
// and gateways are rows of their own (their own names, as /v1/catalog/services lists them); on Enterprise
// with `ns=*` a name repeats once per namespace (only the default namespace is what discovery reads).
// Pure mapping, no I/O.

export const CATALOG_SUMMARY_PATH = '/v1/internal/ui/services';

export interface ServiceSummary {
  readonly count: number;
  /** the nodes with an instance (undefined when the row has no Nodes list) */
  readonly nodes?: ReadonlySet<string>;
}

export type SummaryParse = { readonly ok: true; readonly services: ReadonlyMap<string, ServiceSummary> } | { readonly ok: false; readonly reason: string };

const DEFAULT_SCOPES = new Set(['', 'default']);

/** Instance count and nodes per service name (only the default peer, namespace and partition). */
export function parseCatalogSummary(body: unknown): SummaryParse {
  if (body === null) return { ok: true, services: new Map() };
  if (!Array.isArray(body)) return { ok: false, reason: `summary is not a list (${typeof body})` };
  const services = new Map<string, { count: number; nodes?: Set<string> }>();
  for (const row of body as unknown[]) {
    if (typeof row !== 'object' || row === null) return { ok: false, reason: 'summary row is not an object' };
    const r = row as { Name?: unknown; InstanceCount?: unknown; PeerName?: unknown; Namespace?: unknown; Partition?: unknown; Nodes?: unknown };
    if (typeof r.Name !== 'string' || typeof r.InstanceCount !== 'number' || !Number.isSafeInteger(r.InstanceCount)) {
      return { ok: false, reason: 'summary row without Name or InstanceCount' };
    }
    if (typeof r.PeerName === 'string' && r.PeerName !== '') continue;
    if (typeof r.Namespace === 'string' && !DEFAULT_SCOPES.has(r.Namespace)) continue;
    if (typeof r.Partition === 'string' && !DEFAULT_SCOPES.has(r.Partition)) continue;
    const nodes = Array.isArray(r.Nodes) ? r.Nodes.filter((n): n is string => typeof n === 'string') : undefined;
    const prev = services.get(r.Name);
    if (!prev) {
      services.set(r.Name, { count: r.InstanceCount, ...(nodes ? { nodes: new Set(nodes) } : {}) });
      continue;
    }
    // the same name twice in one scope (no Consul answers so; summed rather than trusted either way)
    prev.count += r.InstanceCount;
    if (prev.nodes && nodes) for (const n of nodes) prev.nodes.add(n);
    else delete prev.nodes;
  }
  return { ok: true, services };
}

/**
 * Services whose summary row differs from what discovery holds (`held`: name -> instances and nodes of
 * its last health answer, every kind counted): another count, or (when the row lists nodes) another node
 * set. Names the summary lacks are left to the catalog signal (a service gone), names discovery does not
 * follow are skipped.
 */
export function servicesWithOtherCounts(summary: ReadonlyMap<string, ServiceSummary>, held: ReadonlyMap<string, ServiceSummary>, follows: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (const [name, row] of summary) {
    if (!follows(name)) continue;
    const h = held.get(name);
    if (h === undefined || h.count !== row.count || (row.nodes !== undefined && h.nodes !== undefined && !sameSet(row.nodes, h.nodes))) out.push(name);
  }
  return out.sort();
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
