// In each worker: every interval, send the primary what RequestMetrics counted since the last flush
// plus this process's gauges (memory, event-loop lag, in-flight per service, server up). One small
// IPC message per second per worker; nothing is sent per request. Server up and in-flight go as
// changes since the previous report (runtime.serverGauges; a full set first and when the primary
// asks), so an idle report costs nothing per server however large the table.
import type { WorkerGauges, WorkerMetricsMessage } from './delta.js';
import type { LiveLookup, ServerGaugeChanges } from './server-gauges.js';
import { ProcessSampler } from '../../../common/metrics/process-sampler.js';
import { RequestMetrics } from './request-metrics.js';

/** The part of the worker runtime's status() the gauges need. */
export interface StatusForGauges {
  readonly name: string;
  readonly servers: readonly { readonly id: string; readonly status: string; readonly inflight: number }[];
}

/** The part of the script host's stats the counts need. */
export interface ScriptTotals {
  readonly name: string;
  readonly version: string;
  readonly calls: number;
  readonly errors: number;
}

/** runtime.serverGauges: the changes since the last call, or all of them when `full` */
export type ServerGaugeSource = (full: boolean) => ServerGaugeChanges & { readonly live: LiveLookup };

/** RequestMetrics.retain runs after a report that removed servers, and at least this often (tunnels of removed services) */
const RETAIN_EVERY_FLUSHES = 60;

export interface WorkerReporterOptions {
  readonly metrics: RequestMetrics;
  /** the whole status: read each flush only when serverGauges is absent (runtime doubles) */
  readonly status: () => readonly StatusForGauges[];
  readonly serverGauges?: ServerGaugeSource;
  /** the script host's cumulative counts (runtime.scriptStats); read at each flush */
  readonly scriptStats?: () => readonly ScriptTotals[] | undefined;
  readonly send: (msg: WorkerMetricsMessage) => void;
  readonly slot: number;
  readonly generation: number;
  readonly intervalMs?: number;
}

export interface WorkerReporter {
  /** send now (before a drain completes, so nothing counted is lost) */
  flush(): void;
  /** the next report carries every server gauge (the primary missed one) */
  requestFull(): void;
  stop(): void;
}

export function startWorkerReporter(opts: WorkerReporterOptions): WorkerReporter {
  const sampler = new ProcessSampler();
  let gaugeSeq = 0;
  let wantFull = true;
  let sinceRetain = 0;
  /** the server gauges as changes; undefined = the whole set from status() */
  const changedGauges = (source: ServerGaugeSource): { gauges: WorkerGauges; live: LiveLookup | undefined } => {
    const process = sampler.sample();
    const openTunnels = opts.metrics.openTunnels();
    const openTcp = opts.metrics.edge.openTcp();
    const seq = gaugeSeq++;
    try {
      const g = source(wantFull);
      wantFull = false;
      const removed = g.serverUpRemoved.length > 0 || g.servicesRemoved.length > 0;
      const retain = g.full || removed || ++sinceRetain >= RETAIN_EVERY_FLUSHES;
      if (retain) sinceRetain = 0;
      return {
        gauges: {
          process, inflight: g.inflight, serverUp: g.serverUp, openTunnels, openTcp, gaugeSeq: seq, full: g.full,
          ...(g.serverUpRemoved.length > 0 ? { serverUpRemoved: g.serverUpRemoved } : {}),
          ...(g.servicesRemoved.length > 0 ? { servicesRemoved: g.servicesRemoved } : {}),
        },
        live: retain ? g.live : undefined,
      };
    } catch {
      // a runtime being replaced: nothing this time, and everything the next (what was sent is unsure)
      wantFull = true;
      return { gauges: { process, inflight: [], serverUp: [], openTunnels, openTcp, gaugeSeq: seq, full: false }, live: undefined };
    }
  };
  /** the whole set from status() (a runtime without serverGauges) */
  const wholeGauges = (): { gauges: WorkerGauges; live: LiveLookup | undefined } => {
    try {
      const inflight: [string, number][] = [];
      const serverUp: [string, string, number][] = [];
      const live = new Map<string, Set<string>>();
      for (const u of opts.status()) {
        let n = 0;
        const ids = new Set<string>();
        for (const s of u.servers) {
          n += s.inflight;
          ids.add(s.id);
          serverUp.push([u.name, s.id, s.status === 'ok' || s.status === 'err' ? 1 : 0]);
        }
        inflight.push([u.name, n]);
        live.set(u.name, ids);
      }
      return { gauges: { process: sampler.sample(), inflight, serverUp, openTunnels: opts.metrics.openTunnels(), openTcp: opts.metrics.edge.openTcp() }, live };
    } catch {
      return { gauges: { process: sampler.sample(), inflight: [], serverUp: [], openTunnels: opts.metrics.openTunnels(), openTcp: opts.metrics.edge.openTcp() }, live: undefined };
    }
  };
  const flush = (): void => {
    const { gauges, live } = opts.serverGauges !== undefined ? changedGauges(opts.serverGauges) : wholeGauges();
    try {
      const scripts = opts.scriptStats?.();
      if (scripts !== undefined) opts.metrics.scriptTotals(scripts);
    } catch {
      // a runtime being replaced: its counts come with the next flush
    }
    opts.send({ type: 'metrics', slot: opts.slot, generation: opts.generation, delta: opts.metrics.takeDelta(), gauges });
    // after the delta: what removed servers counted has just been sent
    if (live !== undefined) opts.metrics.retain(live);
  };
  const timer = setInterval(flush, opts.intervalMs ?? 1_000);
  timer.unref();
  return {
    flush,
    requestFull() {
      wantFull = true;
    },
    stop() {
      clearInterval(timer);
      sampler.stop();
    },
  };
}

/** What worker-main holds: the observer for the runtime, and the reporter once the runtime exists. */
export interface WorkerMetrics {
  readonly observer: RequestMetrics;
  /**
   * starts the periodic report; status reads the runtime's health figures (when it has no
   * serverGauges), scriptStats its scripts' counts
   */
  start(status: () => readonly StatusForGauges[], scriptStats?: () => readonly ScriptTotals[] | undefined, serverGauges?: ServerGaugeSource): void;
  /** the primary asks for every server gauge in the next report */
  sendFullGauges(): void;
  /** last report (drain), then stop */
  finish(): void;
}

export function createWorkerMetrics(
  settings: { readonly bucketsSeconds: readonly number[]; readonly maxServersPerService: number; readonly flushIntervalMs?: number } | undefined,
  generation: number, slot: number, send: (msg: WorkerMetricsMessage) => void,
): WorkerMetrics | undefined {
  if (settings === undefined) return undefined;
  const observer = new RequestMetrics(settings);
  let reporter: WorkerReporter | undefined;
  return {
    observer,
    start(status, scriptStats, serverGauges) {
      reporter ??= startWorkerReporter({ metrics: observer, status, scriptStats, serverGauges, send, slot, generation, intervalMs: settings.flushIntervalMs });
    },
    sendFullGauges() {
      reporter?.requestFull();
    },
    finish() {
      reporter?.flush();
      reporter?.stop();
    },
  };
}
