// Prometheus exposition. Families are plain data built fresh for each scrape from the primary's
// state; prom-client's Registry formats them (text 0.0.4 or OpenMetrics 1.0). Fresh objects per
// scrape matter: prom-client renames counter objects in place for OpenMetrics, which would corrupt a
// long-lived family for the next text scrape.
import promClient from 'prom-client';

export type FamilyType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
  /** histogram lines only: name_bucket / name_sum / name_count */
  readonly metricName?: string;
}

export interface Family {
  /** full name; counters end in _total */
  readonly name: string;
  readonly help: string;
  readonly type: FamilyType;
  readonly samples: readonly Sample[];
}

export const PROMETHEUS_CONTENT_TYPE: string = promClient.Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE: string = promClient.Registry.OPENMETRICS_CONTENT_TYPE;

/** OpenMetrics only when the scraper asks for it (Prometheus sends it first in Accept when enabled). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('application/openmetrics-text');
}

export async function renderFamilies(families: readonly Family[], openMetrics: boolean): Promise<{ contentType: string; body: string }> {
  const contentType = openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
  const registry = new promClient.Registry<promClient.RegistryContentType>();
  registry.setContentType(contentType as promClient.RegistryContentType);
  for (const f of families) {
    const metric = {
      name: f.name,
      help: f.help,
      type: f.type,
      aggregator: 'sum',
      async get() {
        return { name: this.name, help: f.help, type: f.type, aggregator: 'sum', values: f.samples };
      },
      reset() {},
    };
    registry.registerMetric(metric as unknown as promClient.Metric);
  }
  return { contentType, body: await registry.metrics() };
}

/** Histogram lines from per-bucket (not cumulative) counts; the last count is the +Inf bucket. */
export function histogramSamples(name: string, labels: Readonly<Record<string, string | number>>, bounds: readonly number[],
  counts: ArrayLike<number>, sum: number): Sample[] {
  const out: Sample[] = [];
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    cumulative += counts[i] ?? 0;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: bounds[i] }, value: cumulative });
  }
  cumulative += counts[bounds.length] ?? 0;
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cumulative });
  out.push({ metricName: `${name}_sum`, labels, value: sum });
  out.push({ metricName: `${name}_count`, labels, value: cumulative });
  return out;
}

/** A small cumulative histogram for figures the primary observes itself (swap latency, reloads). */
export class LocalHistogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    let b = 0;
    while (b < this.bounds.length && v > this.bounds[b]) b++;
    this.counts[b]++;
    this.sum += v;
    this.count++;
  }

  samples(name: string, labels: Readonly<Record<string, string | number>> = {}): Sample[] {
    return histogramSamples(name, labels, this.bounds, this.counts, this.sum);
  }
}
