// What the live dashboard shows, as one plain JSON document: built by a pure function from the
// table, the catalog snapshot (Consul's own health, including instances the table left out), the
// workers' merged status and the metrics windows.
import type { CatalogSnapshot, RouteTable, TrafficPolicy } from '../routing/types.js';
import type { WindowFigures } from './metrics-store.js';

/** The merged worker status of one server, as admin/merge-status produces it. */
export interface ServerHealthInput {
  readonly id: string;
  readonly status: 'ok' | 'err' | 'ejected' | 'down';
  readonly lastError?: string;
  readonly failCount: number;
  readonly inflight: number;
  readonly activeCheck?: { readonly up: boolean; readonly consecutive: number; readonly lastError?: string };
}

export interface TableDiffEntry {
  readonly at: number;
  readonly version: string;
  readonly cause: string;
  readonly lines: readonly string[];
}

export interface DashboardServer {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly backup: boolean;
  readonly down: boolean;
  /** in the service's canary group (its tags carry the canary tag); absent = stable or no canary */
  readonly canary?: boolean;
  /** false: Consul lists it but the table does not route to it (failing check, not passing) */
  readonly inTable: boolean;
  readonly consul?: 'passing' | 'warning' | 'critical';
  readonly passive?: 'ok' | 'err' | 'ejected' | 'down';
  readonly lastError?: string;
  readonly failCount: number;
  readonly active?: { readonly up: boolean; readonly lastError?: string };
  /** one word for the health cell */
  readonly health: 'up' | 'degraded' | 'down' | 'failing';
  readonly healthReason?: string;
  readonly inflight: number;
  readonly rps: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
}

export interface DashboardService {
  readonly name: string;
  readonly origin: string;
  readonly algorithm: string;
  readonly rps: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly inflight: number;
  readonly points: readonly { readonly at: number; readonly rps: number; readonly p99Ms?: number }[];
  readonly servers: readonly DashboardServer[];
  /** the traffic policy (canary split, sticky sessions, panic threshold), secrets-free; absent = none */
  readonly policy?: DashboardPolicy;
  /** panic mode as the workers report it (any worker panicking = panicking); absent = no threshold */
  readonly panic?: PanicFigures;
  /** proto=tcp|tcp+sni services: where they listen and their connection figures since start */
  readonly tcp?: DashboardTcp;
  /** refused by the access rules / rate limit since start; absent = never, and no such rule */
  readonly refused?: { readonly denied: number; readonly limited: number };
}

export interface DashboardTcp {
  readonly protocol: 'tcp' | 'tcp+sni';
  /** ":6379", "db.example.com:7443" */
  readonly listen: readonly string[];
  readonly open: number;
  readonly relayed: number;
  /** ended without relaying (denied, limited, no server, connect failures, bad hello, ...) */
  readonly refused: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly connectErrors: number;
}

/** A TCP service's totals as the metrics store holds them (metrics-store.ts TcpTotals). */
export interface TcpFiguresInput {
  readonly results: ReadonlyMap<string, number>;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly connectErrors: number;
}

export interface DashboardPolicy {
  readonly canary?: { readonly tag: string; readonly weight: number; readonly header?: string; readonly headerValue?: string; readonly headerPattern?: string; readonly cookie?: string };
  readonly sticky?: { readonly mode: 'cookie' | 'header' | 'ip'; readonly name: string; readonly ttlSeconds: number };
  readonly panicThresholdPercent?: number;
}

export interface PanicFigures {
  readonly panicking: boolean;
  readonly entered: number;
  readonly picks: number;
}

export interface DashboardState {
  readonly at: number;
  readonly mode: string;
  readonly generation: number;
  readonly workers: { readonly alive: number; readonly ready: number; readonly restarts: number };
  readonly version: string;
  readonly consul: { readonly enabled: boolean; readonly reachable: boolean | null };
  readonly services: readonly DashboardService[];
  readonly diffs: readonly TableDiffEntry[];
  /** set when the workers' health could not be read this time (figures may be stale) */
  readonly statusError?: string;
}

export interface DashboardInputs {
  readonly at: number;
  readonly mode: string;
  readonly generation: number;
  readonly workers: { readonly alive: number; readonly ready: number; readonly restarts: number };
  readonly table: RouteTable;
  readonly snapshot: CatalogSnapshot | undefined;
  /** merged worker status per upstream name, then server id */
  readonly health: ReadonlyMap<string, ReadonlyMap<string, ServerHealthInput>>;
  /** merged panic figures per upstream name (upstreams with a panic threshold) */
  readonly panic?: ReadonlyMap<string, PanicFigures>;
  readonly consul: { readonly enabled: boolean; readonly reachable: boolean | null };
  readonly diffs: readonly TableDiffEntry[];
  readonly serviceWindow: (service: string) => WindowFigures & { points: { at: number; rps: number; p99Ms: number | undefined }[] };
  readonly serverWindow: (service: string, id: string) => WindowFigures;
  /** TCP totals and open connections of a service (absent: no metrics) */
  readonly tcpFigures?: (service: string) => { readonly totals?: TcpFiguresInput; readonly open: number };
  /** denied / limited totals of a service, all protocols */
  readonly refusals?: (service: string) => { readonly denied: number; readonly limited: number } | undefined;
  readonly statusError?: string;
}

function idOf(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function buildDashboardState(inp: DashboardInputs): DashboardState {
  const services: DashboardService[] = [];
  const names = new Set(Object.keys(inp.table.upstreams));
  for (const n of Object.keys(inp.snapshot?.services ?? {})) names.add(n);
  for (const name of [...names].sort()) {
    const spec = Object.hasOwn(inp.table.upstreams, name) ? inp.table.upstreams[name] : undefined;
    const instances = inp.snapshot?.services[name] ?? [];
    // Consul's own service is never routed unless listed; a service with no instance left is gone
    if (spec === undefined && (name === 'consul' || instances.length === 0)) continue;
    const consulById = new Map(instances.map((i) => [idOf(i.address, i.port), i.status] as const));
    const health = inp.health.get(name);
    const servers: DashboardServer[] = [];
    let inflight = 0;
    const seen = new Set<string>();
    for (const s of spec?.servers ?? []) {
      seen.add(s.id);
      const h = health?.get(s.id);
      const w = inp.serverWindow(name, s.id);
      inflight += h?.inflight ?? 0;
      const consul = consulById.get(s.id);
      const [word, reason] = healthWord(s.down, consul, h);
      servers.push({
        id: s.id, host: s.host, port: s.port, weight: s.weight, backup: s.backup, down: s.down, inTable: true,
        ...(s.canary === true ? { canary: true } : {}),
        consul, passive: h?.status, lastError: h?.lastError, failCount: h?.failCount ?? 0,
        active: h?.activeCheck ? { up: h.activeCheck.up, lastError: h.activeCheck.lastError } : undefined,
        health: word, healthReason: reason, inflight: h?.inflight ?? 0, rps: w.rps, p50Ms: w.p50Ms, p99Ms: w.p99Ms,
      });
    }
    // instances Consul knows but the table leaves out: shown as failing so a flip is visible in place
    for (const i of instances) {
      const id = idOf(i.address, i.port);
      if (seen.has(id)) continue;
      seen.add(id);
      const w = inp.serverWindow(name, id);
      servers.push({
        id, host: i.address, port: i.port, weight: 0, backup: false, down: false, inTable: false, consul: i.status,
        failCount: 0, health: 'failing', healthReason: `consul: ${i.status}`, inflight: 0, rps: w.rps, p50Ms: w.p50Ms, p99Ms: w.p99Ms,
      });
    }
    servers.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const sw = inp.serviceWindow(name);
    services.push({
      name, origin: spec?.origin ?? 'consul', algorithm: spec?.algorithm ?? '', rps: sw.rps, p50Ms: sw.p50Ms, p99Ms: sw.p99Ms,
      inflight, points: sw.points, servers,
      ...(spec?.policy ? policyView(spec.policy) : {}),
      ...(inp.panic?.has(name) ? { panic: inp.panic.get(name) } : {}),
      ...edgeView(name, spec, inp),
    });
  }
  return {
    at: inp.at, mode: inp.mode, generation: inp.generation, workers: inp.workers, version: inp.table.version,
    consul: inp.consul, services, diffs: inp.diffs, ...(inp.statusError ? { statusError: inp.statusError } : {}),
  };
}

/** The TCP row of a proto=tcp|tcp+sni service and the refusals of any service with rules or refusals. */
function edgeView(name: string, spec: RouteTable['upstreams'][string] | undefined, inp: DashboardInputs): { tcp?: DashboardTcp; refused?: DashboardService['refused'] } {
  const out: { tcp?: DashboardTcp; refused?: DashboardService['refused'] } = {};
  if (spec?.protocol === 'tcp' || spec?.protocol === 'tcp+sni') {
    const f = inp.tcpFigures?.(name);
    const t = f?.totals;
    let relayed = 0;
    let refused = 0;
    for (const [result, n] of t?.results ?? []) if (result === 'relayed') relayed += n; else refused += n;
    out.tcp = {
      protocol: spec.protocol, listen: (spec.listen ?? []).map((l) => `${l.sni ?? ''}:${l.port}`), open: f?.open ?? 0,
      relayed, refused, bytesIn: t?.bytesIn ?? 0, bytesOut: t?.bytesOut ?? 0, connectErrors: t?.connectErrors ?? 0,
    };
  }
  const r = inp.refusals?.(name);
  const ruled = spec?.policy?.access !== undefined || spec?.policy?.rateLimit !== undefined;
  if (ruled || (r !== undefined && r.denied + r.limited > 0)) out.refused = { denied: r?.denied ?? 0, limited: r?.limited ?? 0 };
  return out;
}

/** What the page shows of a policy: the split and the affinity, not cookie attributes. */
function policyView(p: TrafficPolicy): { policy?: DashboardPolicy } {
  const out: { -readonly [K in keyof DashboardPolicy]: DashboardPolicy[K] } = {};
  if (p.canary) {
    const c = p.canary;
    out.canary = {
      tag: c.tag, weight: c.weight,
      ...(c.header !== undefined ? { header: c.header } : {}), ...(c.headerValue !== undefined ? { headerValue: c.headerValue } : {}),
      ...(c.headerPattern !== undefined ? { headerPattern: c.headerPattern } : {}), ...(c.cookie !== undefined ? { cookie: c.cookie } : {}),
    };
  }
  if (p.sticky) out.sticky = { mode: p.sticky.mode, name: p.sticky.name, ttlSeconds: p.sticky.ttlSeconds };
  if (p.panicThresholdPercent !== undefined && p.panicThresholdPercent > 0) out.panicThresholdPercent = p.panicThresholdPercent;
  return Object.keys(out).length > 0 ? { policy: out } : {};
}

function healthWord(adminDown: boolean, consul: string | undefined, h: ServerHealthInput | undefined): [DashboardServer['health'], string | undefined] {
  if (adminDown) return ['down', 'marked down'];
  if (consul === 'critical') return ['failing', 'consul: critical'];
  if (h?.activeCheck && !h.activeCheck.up) return ['down', `active check: ${h.activeCheck.lastError ?? 'failing'}`];
  if (h?.status === 'ejected') return ['down', `passive: ${h.lastError ?? 'ejected'}`];
  if (h?.status === 'down') return ['down', 'marked down'];
  if (h?.status === 'err') return ['degraded', `last attempt: ${h.lastError ?? 'failed'}`];
  if (consul === 'warning') return ['degraded', 'consul: warning'];
  return ['up', undefined];
}
