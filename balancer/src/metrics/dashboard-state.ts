// What the live dashboard shows, as one plain JSON document: built by a pure function from the
// table, the catalog snapshot (Consul's own health, including instances the table left out), the
// workers' merged status and the metrics windows.
import type { CatalogSnapshot, RouteTable } from '../routing/types.js';
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
  readonly consul: { readonly enabled: boolean; readonly reachable: boolean | null };
  readonly diffs: readonly TableDiffEntry[];
  readonly serviceWindow: (service: string) => WindowFigures & { points: { at: number; rps: number; p99Ms: number | undefined }[] };
  readonly serverWindow: (service: string, id: string) => WindowFigures;
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
    });
  }
  return {
    at: inp.at, mode: inp.mode, generation: inp.generation, workers: inp.workers, version: inp.table.version,
    consul: inp.consul, services, diffs: inp.diffs, ...(inp.statusError ? { statusError: inp.statusError } : {}),
  };
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
