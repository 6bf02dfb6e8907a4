// In each worker: every interval, send the primary what RequestMetrics counted since the last flush
// plus this process's gauges (memory, event-loop lag, in-flight per service, server up). One small
// IPC message per second per worker; nothing is sent per request.
import type { WorkerGauges, WorkerMetricsMessage } from './delta.js';
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

export interface WorkerReporterOptions {
  readonly metrics: RequestMetrics;
  readonly status: () => readonly StatusForGauges[];
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
  stop(): void;
}

export function startWorkerReporter(opts: WorkerReporterOptions): WorkerReporter {
  const sampler = new ProcessSampler();
  const flush = (): void => {
    let gauges: WorkerGauges;
    let live: Map<string, Set<string>> | undefined;
    try {
      const inflight: [string, number][] = [];
      const serverUp: [string, string, number][] = [];
      const liveNow = new Map<string, Set<string>>();
      for (const u of opts.status()) {
        let n = 0;
        const ids = new Set<string>();
        for (const s of u.servers) {
          n += s.inflight;
          ids.add(s.id);
          serverUp.push([u.name, s.id, s.status === 'ok' || s.status === 'err' ? 1 : 0]);
        }
        inflight.push([u.name, n]);
        liveNow.set(u.name, ids);
      }
      gauges = { process: sampler.sample(), inflight, serverUp, openTunnels: opts.metrics.openTunnels() };
      live = liveNow;
    } catch {
      gauges = { process: sampler.sample(), inflight: [], serverUp: [], openTunnels: opts.metrics.openTunnels() };
    }
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
    stop() {
      clearInterval(timer);
      sampler.stop();
    },
  };
}

/** What worker-main holds: the observer for the runtime, and the reporter once the runtime exists. */
export interface WorkerMetrics {
  readonly observer: RequestMetrics;
  /** starts the periodic report; status reads the runtime's health figures, scriptStats its scripts' counts */
  start(status: () => readonly StatusForGauges[], scriptStats?: () => readonly ScriptTotals[] | undefined): void;
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
    start(status, scriptStats) {
      reporter ??= startWorkerReporter({ metrics: observer, status, scriptStats, send, slot, generation, intervalMs: settings.flushIntervalMs });
    },
    finish() {
      reporter?.flush();
      reporter?.stop();
    },
  };
}
