// A fixed log-spaced latency histogram (bounds 0.25 ms x 1.25^k up to ~2 min) for the dashboard's
// p50/p99: fine enough for a quantile within ~12 %, cheap to index (one log) and to ship as sparse
// pairs. The Prometheus histogram uses the configured buckets instead; this one never leaves the
// balancer.
const BASE_MS = 0.25;
const FACTOR = 1.25;
const LOG_FACTOR = Math.log(FACTOR);
export const FINE_BUCKET_COUNT = 60;

/** Upper bound (ms) of bucket i; the last bucket is open-ended. */
export function fineBucketUpperMs(i: number): number {
  return i >= FINE_BUCKET_COUNT - 1 ? Infinity : BASE_MS * FACTOR ** i;
}

export function fineBucketIndex(ms: number): number {
  if (!(ms > BASE_MS)) return 0;
  const i = Math.ceil(Math.log(ms / BASE_MS) / LOG_FACTOR);
  return i >= FINE_BUCKET_COUNT ? FINE_BUCKET_COUNT - 1 : i;
}

/**
 * Quantile q (0..1) of a bucket-count array, interpolated linearly inside the bucket (as Prometheus'
 * histogram_quantile does); undefined when the histogram is empty.
 */
export function fineQuantileMs(counts: ArrayLike<number>, q: number): number | undefined {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i];
  if (total <= 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c <= 0) continue;
    if (seen + c >= rank) {
      const lower = i === 0 ? 0 : fineBucketUpperMs(i - 1);
      const upper = fineBucketUpperMs(i);
      if (upper === Infinity) return lower;
      return lower + (upper - lower) * ((rank - seen) / c);
    }
    seen += c;
  }
  return fineBucketUpperMs(counts.length - 2);
}
