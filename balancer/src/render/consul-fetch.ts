// One blocking fetch per kind of dependency, converting Consul's JSON into the shapes templates see.
// Catalog and health answers use the shared blockingGet; KV needs a 404 with its index (a missing key
// is an answer to block on, not an error), so it has its own small GET following the same rules.
import { blockingFetch, blockingGet, ConsulRequestError, type ConsulEndpoint } from '../discovery/blocking-query.js';
import type { Dependency, DependencyValue, KvPairView, ServiceInstanceView, ServiceSummaryView } from './dependencies.js';

export interface FetchResult {
  readonly value: DependencyValue;
  readonly index: number;
}

export interface FetchOptions {
  readonly index: number;
  readonly waitMs: number;
  readonly signal: AbortSignal;
  /** deadline of a plain read (index 0); default: the blocking bound of waitMs */
  readonly timeoutMs?: number;
}

interface HealthEntry {
  Node?: { Node?: string; Address?: string };
  Service?: { ID?: string; Service?: string; Address?: string; Port?: number; Tags?: string[] | null; Meta?: Record<string, string> | null };
  Checks?: { CheckID?: string; Status?: string }[] | null;
}

interface KvEntry {
  Key: string;
  Value: string | null;
}

export async function fetchDependency(endpoint: ConsulEndpoint, dep: Dependency, opts: FetchOptions): Promise<FetchResult> {
  switch (dep.kind) {
    case 'services': {
      const r = await blockingGet<Record<string, string[] | null>>(endpoint, '/v1/catalog/services', {}, opts);
      return { index: r.index, value: { kind: 'services', value: servicesView(r.body) } };
    }
    case 'service': {
      const r = await blockingGet<HealthEntry[]>(endpoint, `/v1/health/service/${encodeURIComponent(dep.name)}`, { tag: dep.tag }, opts);
      return { index: r.index, value: { kind: 'service', value: instancesView(r.body) } };
    }
    case 'key': {
      const r = await kvGet<KvEntry[]>(endpoint, dep.path, false, opts);
      const entry = r.body?.find((e) => e.Key === dep.path);
      return { index: r.index, value: { kind: 'key', value: entry ? decodeValue(entry.Value) : null } };
    }
    case 'prefix': {
      const r = await kvGet<KvEntry[]>(endpoint, dep.prefix, true, opts);
      return { index: r.index, value: { kind: 'prefix', value: kvPairsView(dep.prefix, r.body ?? []) } };
    }
  }
}

export function servicesView(body: Record<string, string[] | null>): ServiceSummaryView[] {
  return Object.keys(body ?? {})
    .sort()
    .map((Name) => Object.freeze({ Name, Tags: Object.freeze([...(body[Name] ?? [])].sort()) }));
}

/** critical/maintenance on any check wins over warning, which wins over passing (Consul's aggregation). */
export function aggregateStatus(checks: readonly { CheckID?: string; Status?: string }[]): ServiceInstanceView['Status'] {
  let status: ServiceInstanceView['Status'] = 'passing';
  for (const c of checks) {
    const id = c.CheckID ?? '';
    if (id === '_node_maintenance' || id.startsWith('_service_maintenance:')) return 'maintenance';
    if (c.Status === 'critical') status = 'critical';
    else if (c.Status === 'warning' && status === 'passing') status = 'warning';
  }
  return status;
}

export function instancesView(body: HealthEntry[]): ServiceInstanceView[] {
  const out: ServiceInstanceView[] = [];
  for (const e of body ?? []) {
    const s = e.Service ?? {};
    const nodeAddress = e.Node?.Address ?? '';
    out.push(Object.freeze({
      ID: s.ID ?? '',
      Name: s.Service ?? '',
      Node: e.Node?.Node ?? '',
      NodeAddress: nodeAddress,
      Address: s.Address || nodeAddress,
      Port: s.Port ?? 0,
      Tags: Object.freeze([...(s.Tags ?? [])]),
      Meta: Object.freeze({ ...(s.Meta ?? {}) }),
      Status: aggregateStatus(e.Checks ?? []),
    }));
  }
  // Consul's order is not a contract; a stable order keeps unchanged data rendering identically.
  return out.sort((a, b) => (a.Node < b.Node ? -1 : a.Node > b.Node ? 1 : a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0));
}

export function kvPairsView(prefix: string, entries: readonly KvEntry[]): KvPairView[] {
  return entries
    .filter((e) => e.Key.startsWith(prefix))
    .map((e) => Object.freeze({ Key: e.Key.slice(prefix.length), Path: e.Key, Value: decodeValue(e.Value) }))
    .sort((a, b) => (a.Key < b.Key ? -1 : a.Key > b.Key ? 1 : 0));
}

function decodeValue(v: string | null): string {
  return v === null || v === undefined ? '' : Buffer.from(v, 'base64').toString('utf8');
}

/** GET /v1/kv/<key>[?recurse] as a blocking query; 404 is an answer (body undefined) with its index. */
async function kvGet<T>(endpoint: ConsulEndpoint, key: string, recurse: boolean, opts: FetchOptions): Promise<{ body: T | undefined; index: number }> {
  const path = `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;
  const answer = await blockingFetch(endpoint, path, { recurse: recurse ? '' : undefined }, opts);
  if (answer.status === 404) return { body: undefined, index: answer.index };
  if (answer.status !== 200) throw new ConsulRequestError(`GET ${answer.pathname} -> ${answer.status}: ${answer.text.slice(0, 200)}`, answer.status);
  return { body: JSON.parse(answer.text) as T, index: answer.index };
}
