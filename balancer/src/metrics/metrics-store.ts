// The primary's request figures: cumulative totals built from the workers' deltas (so counters only
// ever grow, whatever happens to a worker), the workers' latest gauges, and one-minute windows for
// the dashboard (req/s, p50/p99 per service and per server). A scrape reads this; it never asks a
// worker anything, so scraping cannot stall the data plane.
import { FINE_BUCKET_COUNT, fineQuantileMs } from './fine-histogram.js';
import type { MetricsDelta, ProcessGauges, WorkerGauges, WorkerMetricsMessage } from './delta.js';
import { OTHER, UNKNOWN_SERVICE } from './request-metrics.js';
import { TCP_DURATION_BUCKETS_SECONDS } from './edge-metrics.js';

export interface SeriesTotals {
  readonly code: number;
  readonly method: string;
  readonly protocol: string;
  count: number;
  requestBytes: number;
  responseBytes: number;
  durationSum: number;
  /** per-bucket counts, not cumulative; last = +Inf */
  readonly buckets: Float64Array;
}

interface Snapshot {
  readonly at: number;
  readonly count: number;
  readonly fine: Float64Array;
}

/** A ring of cumulative snapshots, one per step; a window is the difference of two of them. */
class Window {
  readonly #ring: Snapshot[] = [];
  constructor(readonly stepMs: number, readonly keep: number) {}

  record(at: number, count: number, fine: Float64Array): void {
    const last = this.#ring[this.#ring.length - 1];
    if (last !== undefined && at - last.at < this.stepMs * 0.9) return;
    this.#ring.push({ at, count, fine: Float64Array.from(fine) });
    if (this.#ring.length > this.keep) this.#ring.shift();
  }

  /** Figures between the oldest kept snapshot and the given cumulative state. */
  over(at: number, count: number, fine: Float64Array): WindowFigures {
    const first = this.#ring[0];
    if (first === undefined || at <= first.at) return { rps: 0, p50Ms: undefined, p99Ms: undefined };
    const diff = new Float64Array(FINE_BUCKET_COUNT);
    for (let i = 0; i < diff.length; i++) diff[i] = fine[i] - first.fine[i];
    return { rps: (count - first.count) / ((at - first.at) / 1000), p50Ms: fineQuantileMs(diff, 0.5), p99Ms: fineQuantileMs(diff, 0.99) };
  }

  /** Per-step points (req/s and p99 of each step), oldest first. */
  points(): { at: number; rps: number; p99Ms: number | undefined }[] {
    const out: { at: number; rps: number; p99Ms: number | undefined }[] = [];
    for (let i = 1; i < this.#ring.length; i++) {
      const a = this.#ring[i - 1];
      const b = this.#ring[i];
      const diff = new Float64Array(FINE_BUCKET_COUNT);
      for (let k = 0; k < diff.length; k++) diff[k] = b.fine[k] - a.fine[k];
      out.push({ at: b.at, rps: (b.count - a.count) / ((b.at - a.at) / 1000), p99Ms: fineQuantileMs(diff, 0.99) });
    }
    return out;
  }
}

export interface WindowFigures {
  readonly rps: number;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
}

export class ServerTotals {
  /** when the last delta for this server arrived (retention of removed servers) */
  lastAt = 0;
  count = 0;
  errors = 0;
  durationSumMs = 0;
  readonly fine = new Float64Array(FINE_BUCKET_COUNT);
  readonly window = new Window(5_000, 13);
}

export class ServiceTotals {
  readonly series = new Map<string, SeriesTotals>();
  /** gRPC calls ended, by grpc-status */
  readonly grpc = new Map<number, number>();
  readonly servers = new Map<string, ServerTotals>();
  retries = 0;
  count = 0;
  /** when the last delta for this service arrived (retention of removed services) */
  lastAt = 0;
  /** fine histogram of the proxied requests (sum of the servers') */
  readonly fine = new Float64Array(FINE_BUCKET_COUNT);
  readonly window = new Window(1_000, 61);
}

export interface WorkerReport {
  readonly slot: number;
  readonly generation: number;
  readonly at: number;
  /** the latest report's gauges (its inflight/serverUp may be changes only: read `servers`) */
  readonly gauges: WorkerGauges;
  /** the worker's per-server gauges, with its changes applied */
  readonly servers: WorkerServerGauges;
}

/** One worker's server-up and in-flight gauges as the primary holds them. */
export interface WorkerServerGauges {
  /** gaugeSeq of the last report applied; undefined = reports carry the whole set (no numbering) */
  seq: number | undefined;
  readonly inflight: Map<string, number>;
  readonly up: Map<string, Map<string, number>>;
  /** a report was missed: changes are not applied until a full set comes (asked for at this time) */
  awaitingFullSince: number | undefined;
}

/** What addWorkerReport says back: `full` = ask this worker for a full set of its gauges (metrics-full). */
export interface ReportOutcome {
  readonly wantFull: boolean;
}

/** How long after asking for a full set the store asks again (the worker may have missed it). */
const ASK_FULL_AGAIN_MS = 5_000;

export interface MetricsStoreOptions {
  readonly bucketsSeconds: readonly number[];
  readonly now?: () => number;
  /** gauges of a worker that has not reported for this long are dropped (it died or drained) */
  readonly staleAfterMs?: number;
  /**
   * figures of a service the table no longer has are dropped once no delta named it for this long
   * (default 5 min: a scrape still sees its last counts; churn cannot grow the store)
   */
  readonly retainRemovedMs?: number;
  /** the same for a server (default 65 s, its window: only the dashboard reads server figures) */
  readonly retainRemovedServerMs?: number;
}

/** Services and their server ids in the table being served: what the store keeps figures for. */
export type LiveServers = ReadonlyMap<string, ReadonlySet<string>>;

export interface TcpTotals {
  readonly results: Map<string, number>;
  bytesIn: number;
  bytesOut: number;
  connectErrors: number;
  durationSum: number;
  readonly buckets: Float64Array;
  lastAt: number;
}

export class MetricsStore {
  readonly bucketsSeconds: readonly number[];
  readonly services = new Map<string, ServiceTotals>();
  readonly scripts = new Map<string, { calls: number; errors: number }>();
  /** upgrade tunnels opened and closed, per service */
  readonly tunnels = new Map<string, { opened: number; closed: number; lastAt: number }>();
  /** TCP service connections, per service (edge-metrics.ts) */
  readonly tcp = new Map<string, TcpTotals>();
  /** denied / rate-limited, by "service\0protocol" */
  readonly refused = new Map<string, { service: string; protocol: string; denied: number; limited: number; lastAt: number }>();
  readonly #workers = new Map<number, WorkerReport>();
  readonly #now: () => number;
  readonly #staleAfterMs: number;
  readonly #bucketKey: string;
  readonly #retainRemovedMs: number;
  readonly #retainRemovedServerMs: number;
  /** undefined until the first table: nothing is dropped before the store knows what is live */
  #live: LiveServers | (() => LiveServers) | undefined;
  /** deltas dropped because they were counted with other buckets (a worker of an older config) */
  droppedDeltas = 0;
  reports = 0;

  constructor(opts: MetricsStoreOptions) {
    this.bucketsSeconds = [...opts.bucketsSeconds];
    this.#bucketKey = this.bucketsSeconds.join(',');
    this.#now = opts.now ?? Date.now;
    this.#staleAfterMs = opts.staleAfterMs ?? 5_000;
    this.#retainRemovedMs = opts.retainRemovedMs ?? 300_000;
    this.#retainRemovedServerMs = opts.retainRemovedServerMs ?? 65_000;
  }

  /**
   * The table now served (called on every table change); anything else ages out in tick(). A
   * function is called at the next tick only: a burst of changes costs one walk of the table.
   */
  setLive(live: LiveServers | (() => LiveServers)): void {
    this.#live = live;
  }

  /**
   * A worker's periodic report: its delta is added, its process gauges replace the previous ones,
   * its server gauges are applied (a whole set replaces, changes update). A numbered change that does
   * not follow the last one applied (a lost report, a worker restarted, gauges dropped as stale) is
   * not applied: the outcome asks for a full set, until which the last known gauges stand.
   */
  addWorkerReport(msg: WorkerMetricsMessage): ReportOutcome {
    this.reports++;
    if (msg.delta !== undefined) this.addDelta(msg.delta);
    const now = this.#now();
    const prev = this.#workers.get(msg.slot);
    const stale = prev !== undefined && now - prev.at > this.#staleAfterMs;
    // an old generation still draining must not overwrite the gauges of the new one in its slot
    if (prev !== undefined && prev.generation > msg.generation && !stale) return { wantFull: false };
    const same = prev !== undefined && !stale && prev.generation === msg.generation;
    const servers: WorkerServerGauges = same ? prev.servers : { seq: undefined, inflight: new Map(), up: new Map(), awaitingFullSince: undefined };
    const wantFull = applyServerGauges(servers, msg.gauges, same, now);
    this.#workers.set(msg.slot, { slot: msg.slot, generation: msg.generation, at: now, gauges: msg.gauges, servers });
    return { wantFull };
  }

  addDelta(delta: MetricsDelta): void {
    if (!Array.isArray(delta.services)) return;
    if (delta.bucketsSeconds.join(',') !== this.#bucketKey) {
      this.droppedDeltas++;
      return;
    }
    const nb = this.bucketsSeconds.length + 1;
    const now = this.#now();
    for (const d of delta.services) {
      const svc = this.#service(d.name);
      svc.lastAt = now;
      svc.retries += d.retries;
      for (const [status, count] of d.grpc ?? []) svc.grpc.set(status, (svc.grpc.get(status) ?? 0) + count);
      for (const [code, method, protocol, count, reqBytes, resBytes, sum, buckets] of d.series) {
        const key = `${code}|${method}|${protocol}`;
        let s = svc.series.get(key);
        if (s === undefined) {
          s = { code, method, protocol, count: 0, requestBytes: 0, responseBytes: 0, durationSum: 0, buckets: new Float64Array(nb) };
          svc.series.set(key, s);
        }
        s.count += count;
        s.requestBytes += reqBytes;
        s.responseBytes += resBytes;
        s.durationSum += sum;
        for (let i = 0; i < nb && i < buckets.length; i++) s.buckets[i] += buckets[i];
        svc.count += count;
      }
      for (const [id, count, errors, sumMs, sparse] of d.servers) {
        let t = svc.servers.get(id);
        if (t === undefined) {
          svc.servers.set(id, (t = new ServerTotals()));
          // a new server's window starts at zero one flush ago, so its first requests count in req/s
          t.window.record(now - 1_000, 0, t.fine);
        }
        t.lastAt = now;
        t.count += count;
        t.errors += errors;
        t.durationSumMs += sumMs;
        for (let i = 0; i + 1 < sparse.length; i += 2) {
          const idx = sparse[i];
          if (idx >= 0 && idx < FINE_BUCKET_COUNT) {
            t.fine[idx] += sparse[i + 1];
            svc.fine[idx] += sparse[i + 1];
          }
        }
      }
    }
    for (const [name, calls, errors] of delta.scripts ?? []) {
      const s = this.scripts.get(name) ?? { calls: 0, errors: 0 };
      s.calls += calls;
      s.errors += errors;
      this.scripts.set(name, s);
    }
    for (const d of delta.tcp ?? []) {
      let t = this.tcp.get(d.name);
      if (t === undefined) {
        t = { results: new Map(), bytesIn: 0, bytesOut: 0, connectErrors: 0, durationSum: 0, buckets: new Float64Array(TCP_DURATION_BUCKETS_SECONDS.length + 1), lastAt: 0 };
        this.tcp.set(d.name, t);
      }
      for (const [result, n] of d.results) t.results.set(result, (t.results.get(result) ?? 0) + n);
      t.bytesIn += d.bytesIn;
      t.bytesOut += d.bytesOut;
      t.connectErrors += d.connectErrors;
      t.durationSum += d.durationSum;
      for (let i = 0; i < t.buckets.length && i < d.buckets.length; i++) t.buckets[i] += d.buckets[i];
      t.lastAt = now;
    }
    for (const [service, protocol, denied, limited] of delta.refused ?? []) {
      const key = `${service}\u0000${protocol}`;
      const r = this.refused.get(key) ?? { service, protocol, denied: 0, limited: 0, lastAt: 0 };
      r.denied += denied;
      r.limited += limited;
      r.lastAt = now;
      this.refused.set(key, r);
    }
    for (const [name, opened, closed] of delta.tunnels ?? []) {
      const t = this.tunnels.get(name) ?? { opened: 0, closed: 0, lastAt: 0 };
      t.opened += opened;
      t.closed += closed;
      t.lastAt = this.#now();
      this.tunnels.set(name, t);
    }
  }

  /** Called about once a second: records the window snapshots, drops what was removed long enough ago. */
  tick(): void {
    const at = this.#now();
    if (typeof this.#live === 'function') this.#live = this.#live();
    const live = this.#live;
    for (const [name, svc] of this.services) {
      // the folded label values are never in a table: they stay
      const prunable = live !== undefined && name !== UNKNOWN_SERVICE && name !== OTHER;
      const liveServers = live?.get(name);
      // a removed service or server is not given new window snapshots: its ring stops growing
      if (prunable && liveServers === undefined) {
        if (at - svc.lastAt > this.#retainRemovedMs) this.services.delete(name);
        else for (const [id, srv] of svc.servers) if (at - srv.lastAt > this.#retainRemovedServerMs) svc.servers.delete(id);
        continue;
      }
      svc.window.record(at, svc.count, svc.fine);
      for (const [id, srv] of svc.servers) {
        if (!prunable || id === OTHER || liveServers?.has(id) === true) srv.window.record(at, srv.count, srv.fine);
        else if (at - srv.lastAt > this.#retainRemovedServerMs) svc.servers.delete(id);
      }
    }
    if (live === undefined) return;
    for (const [name, t] of this.tunnels) {
      if (name !== OTHER && !live.has(name) && at - t.lastAt > this.#retainRemovedMs) this.tunnels.delete(name);
    }
    for (const [name, t] of this.tcp) {
      if (name !== OTHER && name !== UNKNOWN_SERVICE && !live.has(name) && at - t.lastAt > this.#retainRemovedMs) this.tcp.delete(name);
    }
    for (const [key, r] of this.refused) {
      if (r.service !== OTHER && !live.has(r.service) && at - r.lastAt > this.#retainRemovedMs) this.refused.delete(key);
    }
  }

  serviceWindow(name: string): WindowFigures & { points: { at: number; rps: number; p99Ms: number | undefined }[] } {
    const svc = this.services.get(name);
    if (svc === undefined) return { rps: 0, p50Ms: undefined, p99Ms: undefined, points: [] };
    return { ...svc.window.over(this.#now(), svc.count, svc.fine), points: svc.window.points() };
  }

  serverWindow(service: string, id: string): WindowFigures {
    const srv = this.services.get(service)?.servers.get(id);
    if (srv === undefined) return { rps: 0, p50Ms: undefined, p99Ms: undefined };
    return srv.window.over(this.#now(), srv.count, srv.fine);
  }

  /** Latest gauges of every worker that reported recently, by slot. */
  workers(): WorkerReport[] {
    const now = this.#now();
    const out: WorkerReport[] = [];
    for (const [slot, r] of this.#workers) {
      if (now - r.at > this.#staleAfterMs) this.#workers.delete(slot);
      else out.push(r);
    }
    return out.sort((a, b) => a.slot - b.slot);
  }

  /** In-flight requests per service, summed over the workers. */
  inflight(): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.workers()) for (const [svc, n] of w.servers.inflight) out.set(svc, (out.get(svc) ?? 0) + n);
    return out;
  }

  /** TCP service connections open per service, summed over the workers. */
  openTcp(): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.workers()) for (const [svc, n] of w.gauges.openTcp ?? []) out.set(svc, (out.get(svc) ?? 0) + n);
    return out;
  }

  /** Upgrade tunnels open per service, summed over the workers (a killed worker's drop with its gauges). */
  openTunnels(): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.workers()) for (const [svc, n] of w.gauges.openTunnels ?? []) out.set(svc, (out.get(svc) ?? 0) + n);
    return out;
  }

  /** Server up per (service, server): up only when every reporting worker says so. */
  serverUp(): Map<string, Map<string, number>> {
    const out = new Map<string, Map<string, number>>();
    for (const w of this.workers()) {
      for (const [svc, ups] of w.servers.up) {
        let m = out.get(svc);
        if (m === undefined) out.set(svc, (m = new Map()));
        for (const [id, up] of ups) m.set(id, Math.min(m.get(id) ?? 1, up));
      }
    }
    return out;
  }

  processGauges(): { process: string; gauges: ProcessGauges }[] {
    return this.workers().map((w) => ({ process: `worker-${w.slot}`, gauges: w.gauges.process }));
  }

  #service(name: string): ServiceTotals {
    let s = this.services.get(name);
    if (s === undefined) {
      this.services.set(name, (s = new ServiceTotals()));
      s.lastAt = this.#now();
      s.window.record(this.#now() - 1_000, 0, s.fine);
    }
    return s;
  }
}

/**
 * Applies one report's server gauges to what the primary holds for that worker; true = a numbered
 * change was skipped or missing its base, ask for a full set. `continuing`: `g` is the same worker
 * generation's previous state (not a fresh one).
 */
export function applyServerGauges(g: WorkerServerGauges, gauges: WorkerGauges, continuing: boolean, now: number): boolean {
  const seq = gauges.gaugeSeq;
  if (seq === undefined || gauges.full === true) {
    g.inflight.clear();
    g.up.clear();
    for (const [svc, n] of gauges.inflight) g.inflight.set(svc, n);
    for (const [svc, id, up] of gauges.serverUp) upsertUp(g, svc, id, up);
    g.seq = seq;
    g.awaitingFullSince = undefined;
    return false;
  }
  const follows = continuing && g.seq !== undefined && g.awaitingFullSince === undefined && seq === g.seq + 1;
  if (!follows) {
    // keep what is known; ask once, then again if no full set came after a while
    const ask = g.awaitingFullSince === undefined || now - g.awaitingFullSince >= ASK_FULL_AGAIN_MS;
    if (ask) g.awaitingFullSince = now;
    return ask;
  }
  g.seq = seq;
  for (const svc of gauges.servicesRemoved ?? []) {
    g.inflight.delete(svc);
    g.up.delete(svc);
  }
  for (const [svc, id] of gauges.serverUpRemoved ?? []) {
    const m = g.up.get(svc);
    if (m === undefined) continue;
    m.delete(id);
    if (m.size === 0) g.up.delete(svc);
  }
  for (const [svc, n] of gauges.inflight) g.inflight.set(svc, n);
  for (const [svc, id, up] of gauges.serverUp) upsertUp(g, svc, id, up);
  return false;
}

function upsertUp(g: WorkerServerGauges, svc: string, id: string, up: number): void {
  let m = g.up.get(svc);
  if (m === undefined) g.up.set(svc, (m = new Map()));
  m.set(id, up);
}
