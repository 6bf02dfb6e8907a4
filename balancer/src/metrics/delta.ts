// What a worker sends the primary every flush interval (plain JSON over the cluster IPC): the
// request figures counted since its previous flush, and its current gauges. The primary adds the
// deltas into its own totals; process gauges replace the worker's previous ones, per-server gauges
// come as changes (see WorkerGauges.gaugeSeq) so an idle flush does not carry every server.
import type { ProcessGauges } from '../../../common/metrics/process-sampler.js';

export type { ProcessGauges };

/** [code, method, protocol, count, requestBytes, responseBytes, durationSumSeconds, per-bucket counts (not cumulative; last = +Inf)] */
export type SeriesDelta = [number, string, string, number, number, number, number, number[]];
/** [serverId, count, errors (5xx), durationSumMs, sparse fine histogram: index, count, index, count...] */
export type ServerDelta = [string, number, number, number, number[]];

export interface ServiceDelta {
  readonly name: string;
  readonly retries: number;
  readonly series: SeriesDelta[];
  readonly servers: ServerDelta[];
  /** gRPC calls ended, [grpc-status, count]; absent = none */
  readonly grpc?: [number, number][];
}

/** TCP connections of one service that ended since the last delta (metrics/edge-metrics.ts) */
export interface TcpDelta {
  readonly name: string;
  /** [result ('relayed' or why not), connections] */
  readonly results: [string, number][];
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly connectErrors: number;
  readonly durationSum: number;
  /** per TCP_DURATION_BUCKETS_SECONDS bucket (not cumulative; last = +Inf) */
  readonly buckets: number[];
}

/** [service, protocol ('http' | 'tcp'), denied by the access rules, refused by the rate limit] */
export type RefusedDelta = [string, string, number, number];

export interface MetricsDelta {
  /** the bucket bounds the series were counted with (a mismatch with the primary's is dropped) */
  readonly bucketsSeconds: number[];
  readonly services: ServiceDelta[];
  /** [script, calls, errors] */
  readonly scripts: [string, number, number][];
  /** [service, upgrade tunnels opened, closed] */
  readonly tunnels?: [string, number, number][];
  readonly tcp?: TcpDelta[];
  readonly refused?: RefusedDelta[];
}

export interface WorkerGauges {
  readonly process: ProcessGauges;
  /** [service, in-flight requests] */
  readonly inflight: [string, number][];
  /** [service, serverId, up (1) or not (0)] */
  readonly serverUp: [string, string, number][];
  /** [service, upgrade tunnels open now] */
  readonly openTunnels?: [string, number][];
  /** [service, TCP connections open now] */
  readonly openTcp?: [string, number][];
  /**
   * Numbers the server gauges (inflight, serverUp) of one worker process from 0. Absent: they are
   * the whole set, replacing the previous one (older workers, test doubles). Present: with `full`
   * they are the whole set; without, only what changed since report gaugeSeq - 1 (upserts), plus
   * the removals below. A primary that missed a number asks for a full set (`metrics-full`).
   */
  readonly gaugeSeq?: number;
  readonly full?: boolean;
  /** [service, serverId] no longer in the worker's table (changes only) */
  readonly serverUpRemoved?: [string, string][];
  /** services no longer in the worker's table: their in-flight and server-up gauges go (changes only) */
  readonly servicesRemoved?: string[];
}

/** The IPC message (a member of WorkerToPrimary). */
export interface WorkerMetricsMessage {
  readonly type: 'metrics';
  readonly slot: number;
  readonly generation: number;
  readonly delta?: MetricsDelta;
  readonly gauges: WorkerGauges;
}
