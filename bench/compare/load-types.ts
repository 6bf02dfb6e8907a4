// What the load client is told and what it reports.
export interface LoadSpec {
  readonly url: string;
  readonly host: string;
  readonly connections: number;
  /** total requests per second over all connections; 0 = closed loop, as fast as answers come */
  readonly rps: number;
  /** seconds of load before the measured phase, on the same connections (not reported) */
  readonly warmupS: number;
  readonly durationS: number;
  readonly timeoutMs: number;
}

export interface LoadSecond {
  readonly second: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly resets: number;
  /** latency figures of the requests answered in this second (ms), NaN when none */
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface LoadResult {
  /** epoch ms of the load start, to line up with other series */
  readonly startedAt: number;
  readonly elapsedS: number;
  readonly requests: number;
  readonly ok: number;
  readonly non2xx: number;
  /** transport errors: resets, refused connections, timeouts */
  readonly errors: number;
  readonly resets: number;
  /** paced runs: requests that were due but could not be sent before the end (the target fell behind) */
  readonly unsent: number;
  readonly errorCodes: Record<string, number>;
  /** answered requests per second */
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** latency from the scheduled send time (coordinated-omission corrected); equals the above when not paced */
  readonly fromSchedule: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly series: readonly LoadSecond[];
}
