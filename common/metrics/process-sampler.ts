// Per-process gauges (both programs): resident memory, heap, event-loop delay (perf_hooks histogram, reset at every
// sample so each figure covers one interval).
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

const RESOLUTION_MS = 10;

export class ProcessSampler {
  readonly #delay: IntervalHistogram;

  constructor() {
    this.#delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#delay.enable();
  }

  sample(): ProcessGauges {
    const mem = process.memoryUsage();
    const d = this.#delay;
    // the histogram records the whole timer interval (resolution included): the lag is what exceeds it
    const ns = (v: number) => (Number.isFinite(v) ? Math.max(0, v / 1e9 - RESOLUTION_MS / 1000) : 0);
    const out: ProcessGauges = {
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      eventLoopLagMeanSeconds: d.count > 0 ? ns(d.mean) : 0,
      eventLoopLagP99Seconds: d.count > 0 ? ns(d.percentile(99)) : 0,
      eventLoopLagMaxSeconds: d.count > 0 ? ns(d.max) : 0,
    };
    d.reset();
    return out;
  }

  stop(): void {
    this.#delay.disable();
  }
}
