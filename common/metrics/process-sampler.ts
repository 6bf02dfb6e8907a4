// Per-process gauges (both programs): resident memory, heap, event-loop delay over the last interval.
// The delay is measured here, not with perf_hooks.monitorEventLoopDelay: resetting that histogram
// (needed for per-interval figures) also forgets its previous timer tick, so the delay spanning the
// reset is never recorded; a block right after a sample (the sample runs in a timer callback, the
// data plane's work follows it) vanished entirely. Our own 20 ms timer keeps its last tick across
// samples and records each tick's lateness into a perf_hooks histogram. 20 ms, not 10: an idle
// process spends ~8 ms CPU/s on it (monitorEventLoopDelay at 10 ms: ~6; a JS timer every 10 ms:
// 10-20; measured side by side on the busy 2-core VM); a block may be under-read by up to 20 ms.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

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

export class ProcessSampler {
  readonly #delay: RecordableHistogram = createHistogram();
  #lastTick = performance.now();
  readonly #timer: NodeJS.Timeout;

  constructor() {
    this.#timer = setInterval(() => {
      const now = performance.now();
      // how late this tick is (Node re-arms an interval from the start of its callback); 1 ns = on time
      this.#delay.record(Math.max(1, Math.round((now - this.#lastTick - RESOLUTION_MS) * 1e6)));
      this.#lastTick = now;
    }, RESOLUTION_MS);
    this.#timer.unref();
  }

  sample(): ProcessGauges {
    const mem = process.memoryUsage();
    const d = this.#delay;
    const s = (ns: number) => (Number.isFinite(ns) && ns > 1 ? ns / 1e9 : 0);
    const out: ProcessGauges = {
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      eventLoopLagMeanSeconds: d.count > 0 ? s(d.mean) : 0,
      eventLoopLagP99Seconds: d.count > 0 ? s(d.percentile(99)) : 0,
      eventLoopLagMaxSeconds: d.count > 0 ? s(d.max) : 0,
    };
    d.reset();
    return out;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
