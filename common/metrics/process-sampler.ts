// Per-process gauges (both programs): resident memory, heap, event-loop delay over the last interval.
// The delay comes from perf_hooks.monitorEventLoopDelay (its 20 ms timer lives in C++: an idle process
// spends ~4 ms CPU/s on it, against ~7 for a JS timer at 20 ms, measured side by side on the 2-core VM).
// Its reset() (needed for per-interval figures) also forgets the previous tick, so the delay spanning
// a sample is never recorded: a block right after a sample (the sample runs in a timer callback, the
// data plane's work follows it) vanished (e683331). A one-shot "bridge" timer armed at each reset
// measures exactly that span and is merged into the figures. A block may be under-read by up to 20 ms.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface ProcessGauges {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /** event-loop delay over the last interval, seconds */
  readonly eventLoopLagMeanSeconds: number;
  readonly eventLoopLagP99Seconds: number;
  readonly eventLoopLagMaxSeconds: number;
}

const RESOLUTION_MS = 20;
/** 1 ms past the histogram's own next tick, so that tick (the one reset drops) always runs first */
const BRIDGE_MS = RESOLUTION_MS + 1;

/** The figures of one interval: the histogram's ticks plus at most one bridge lateness, in seconds. */
export function mergeLag(
  ticks: { readonly count: number; readonly mean: number; readonly p99: number; readonly max: number },
  bridgeLagSeconds: number | undefined,
): { mean: number; p99: number; max: number } {
  // the histogram records whole intervals (resolution included), in ns: the lag is what exceeds it
  const lag = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e9 - RESOLUTION_MS / 1000) : 0);
  const n = ticks.count;
  const mean = n > 0 ? lag(ticks.mean) : 0;
  const p99 = n > 0 ? lag(ticks.p99) : 0;
  const max = n > 0 ? lag(ticks.max) : 0;
  if (bridgeLagSeconds === undefined) return { mean, p99, max };
  const b = Math.max(0, bridgeLagSeconds);
  return {
    mean: (mean * n + b) / (n + 1),
    // under 100 values the 99th percentile is the largest one; above, one value moves it by one rank at most
    p99: n + 1 <= 100 ? Math.max(p99, b) : p99,
    max: Math.max(max, b),
  };
}

export class ProcessSampler {
  readonly #delay: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  #bridge: NodeJS.Timeout | undefined;
  /** the bridge's lateness since the last sample; undefined = it has not fired yet */
  #bridgeLagSeconds: number | undefined;

  constructor() {
    this.#delay.enable();
    this.#armBridge();
  }

  sample(): ProcessGauges {
    const mem = process.memoryUsage();
    const d = this.#delay;
    const lag = mergeLag({ count: d.count, mean: d.mean, p99: d.percentile(99), max: d.max }, this.#bridgeLagSeconds);
    d.reset();
    this.#armBridge();
    return {
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      eventLoopLagMeanSeconds: lag.mean,
      eventLoopLagP99Seconds: lag.p99,
      eventLoopLagMaxSeconds: lag.max,
    };
  }

  stop(): void {
    this.#delay.disable();
    clearTimeout(this.#bridge);
    this.#bridge = undefined;
  }

  /** measures the span reset() drops: from now to the first tick after it (one already pending spans it) */
  #armBridge(): void {
    this.#bridgeLagSeconds = undefined;
    if (this.#bridge !== undefined) return;
    const armedAt = performance.now();
    this.#bridge = setTimeout(() => {
      this.#bridge = undefined;
      this.#bridgeLagSeconds = (performance.now() - armedAt - BRIDGE_MS) / 1000;
    }, BRIDGE_MS);
    this.#bridge.unref();
  }
}
