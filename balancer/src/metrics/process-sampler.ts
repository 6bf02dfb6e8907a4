// Per-process gauges: resident memory, heap, event-loop delay (perf_hooks histogram, reset at every
// sample so each figure covers one interval).
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { ProcessGauges } from './delta.js';

export class ProcessSampler {
  readonly #delay: IntervalHistogram;

  constructor() {
    this.#delay = monitorEventLoopDelay({ resolution: 10 });
    this.#delay.enable();
  }

  sample(): ProcessGauges {
    const mem = process.memoryUsage();
    const d = this.#delay;
    const ns = (v: number) => (Number.isFinite(v) ? v / 1e9 : 0);
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
