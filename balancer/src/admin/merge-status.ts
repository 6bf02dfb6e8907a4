// Pure merge of the per-worker runtime.status() answers into one view per upstream and server:
// counters add up, the worst state wins (a server ejected in one worker is reported ejected), and
// the per-worker states stay visible in `workers`.
import type { ServerStatus, UpstreamStatus } from '../worker/runtime.js';

const SEVERITY: Record<ServerStatus['status'], number> = { ok: 0, err: 1, ejected: 2, down: 3 };

export interface MergedServerStatus {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly backup: boolean;
  readonly status: ServerStatus['status'];
  readonly lastError?: string;
  readonly failCount: number;
  readonly lastModified: number;
  readonly inflight: number;
  readonly activeCheck?: ServerStatus['activeCheck'];
  readonly pool: { connected: number; pending: number; running: number };
  /** status as each worker sees it, in worker order */
  readonly workers: ServerStatus['status'][];
}

export interface MergedUpstreamStatus {
  readonly name: string;
  readonly algorithm: string;
  readonly servers: MergedServerStatus[];
  /** panic mode: panicking in any worker; entries and picks summed */
  readonly panic?: { panicking: boolean; entered: number; picks: number };
}

export function mergeWorkerStatus(perWorker: readonly (readonly UpstreamStatus[])[]): MergedUpstreamStatus[] {
  const upstreams = new Map<string, { algorithm: string; servers: Map<string, MergedServerStatus>; panic?: { panicking: boolean; entered: number; picks: number } }>();
  for (const list of perWorker) {
    for (const u of list) {
      let entry = upstreams.get(u.name);
      if (!entry) upstreams.set(u.name, (entry = { algorithm: u.algorithm, servers: new Map() }));
      if (u.panic !== undefined) {
        const p = entry.panic;
        entry.panic = p === undefined ? { ...u.panic } : { panicking: p.panicking || u.panic.panicking, entered: p.entered + u.panic.entered, picks: p.picks + u.panic.picks };
      }
      for (const s of u.servers) {
        const prev = entry.servers.get(s.id);
        const pool = s.pool ?? { connected: 0, pending: 0, running: 0 };
        if (!prev) {
          entry.servers.set(s.id, {
            id: s.id, host: s.host, port: s.port, weight: s.weight, backup: s.backup, status: s.status,
            lastError: s.lastError, failCount: s.failCount, lastModified: s.lastModified, inflight: s.inflight,
            activeCheck: s.activeCheck, pool: { ...pool }, workers: [s.status],
          });
          continue;
        }
        const worse = SEVERITY[s.status] > SEVERITY[prev.status];
        entry.servers.set(s.id, {
          ...prev,
          status: worse ? s.status : prev.status,
          lastError: s.lastModified >= prev.lastModified ? s.lastError ?? prev.lastError : prev.lastError ?? s.lastError,
          failCount: prev.failCount + s.failCount,
          lastModified: Math.max(prev.lastModified, s.lastModified),
          inflight: prev.inflight + s.inflight,
          activeCheck: worse ? s.activeCheck ?? prev.activeCheck : prev.activeCheck ?? s.activeCheck,
          pool: { connected: prev.pool.connected + pool.connected, pending: prev.pool.pending + pool.pending, running: prev.pool.running + pool.running },
          workers: [...prev.workers, s.status],
        });
      }
    }
  }
  return [...upstreams.keys()].sort().map((name) => {
    const e = upstreams.get(name)!;
    const servers = [...e.servers.keys()].sort().map((id) => e.servers.get(id)!);
    return e.panic === undefined ? { name, algorithm: e.algorithm, servers } : { name, algorithm: e.algorithm, servers, panic: e.panic };
  });
}
