// IPC between the primary and its workers. Plain JSON; every request carries a seq the reply echoes.
import type { TableDelta } from '../routing/table-delta.js';
import type { RouteTable } from '../routing/types.js';
import type { ScriptStats } from '../scripts/script-host.js';
import type { HealthUpdate, StatusAnswer, StatusQuery, UpstreamStatus, WorkerTimeouts } from '../worker/runtime.js';
import type { CertDelta } from '../tls/cert-snapshot.js';
import type { WorkerTlsOptions } from '../tls/tls-settings.js';
import type { TlsListenerAddress } from '../tls/worker-tls.js';
import type { ChallengeAnswer, ChallengeRelayOptions, ChallengeRequest } from '../tls/acme-challenge-relay.js';
import type { WorkerMetricsMessage } from '../metrics/delta.js';

/** Everything a worker needs to build its runtime (serialisable: no logger, no functions). */
export interface WorkerInitOptions {
  readonly listenHost: string;
  readonly listenPort: number;
  readonly localNode?: string;
  readonly localZone?: string;
  readonly timeouts: WorkerTimeouts;
  readonly maxConnectionsPerServer: number;
  readonly engine?: 'native' | 'undici';
  readonly maxHeadBytes?: number;
  /** --h2c and the --http2-* bounds */
  readonly http2?: import('../proxy/http2/http2-config.js').Http2Config;
  readonly accessLog: boolean;
  /** --trust-forwarded CIDR ranges, validated by the config parser */
  readonly trustForwarded?: readonly string[];
  /** --underscores-in-headers */
  readonly underscoresInHeaders?: boolean;
  /** --client-half-close */
  readonly clientHalfClose?: import('../proxy/client-half-close.js').ClientHalfClose;
  /** TCP services, TLS passthrough, PROXY protocol (balancer/src/l4) */
  readonly l4?: import('../l4/l4-config.js').L4Config;
  /** this worker's part of every service's rate limit: 1 / workers */
  readonly rateShare?: number;
  /** key of the sticky-cookie server ids (the same in every worker) */
  readonly stickySecret?: string;
  /** active checks run in the primary (SharedActiveChecker); states come as `health` messages */
  readonly sharedActiveChecks?: boolean;
  readonly maxQueuePerServer?: number;
  readonly upgradeProtocols?: readonly string[];
  readonly logLevel: string;
  /** module exporting createWorkerRuntime; undefined = the real engine (tests may substitute) */
  readonly runtimeModule?: string;
  /** --tls-listen and friends; undefined = no TLS listener */
  readonly tls?: WorkerTlsOptions;
  /** ACME HTTP-01: the plain listener asks the primary for challenge tokens (it reads Consul KV in its budget) */
  readonly acmeChallenges?: ChallengeRelayOptions;
  /** request metrics (balancer/src/metrics): histogram buckets and label caps; undefined = not counted */
  readonly metrics?: { readonly bucketsSeconds: readonly number[]; readonly maxServersPerService: number; readonly flushIntervalMs?: number };
}

export type PrimaryToWorker =
  | { readonly type: 'init'; readonly generation: number; readonly options: WorkerInitOptions; readonly table: RouteTable }
  | { readonly type: 'table'; readonly seq: number; readonly table: RouteTable }
  /** server health decided elsewhere: shared active-check states, other workers' passive ejections */
  | { readonly type: 'health'; readonly update: HealthUpdate }
  /** the change from the worker's table (delta.from) to the new one; answered by ack, or gap */
  | { readonly type: 'table-delta'; readonly seq: number; readonly delta: TableDelta }
  | { readonly type: 'status'; readonly seq: number }
  | { readonly type: 'drain'; readonly seq: number }
  // TLS (balancer/src/tls): certificates as a versioned delta, session ticket keys (base64, 48 bytes)
  | { readonly type: 'tls-certs'; readonly seq: number; readonly delta: CertDelta }
  | { readonly type: 'tls-ticket-keys'; readonly keys: string }
  /** metrics: the primary missed a report of this worker's server gauges; the next report carries them all */
  | { readonly type: 'metrics-full' }
  /** the answer to a worker's acme-challenge request */
  | ChallengeAnswer
  /** GET /status: what one page needs (worker/runtime.ts StatusQuery); answered by status-answer */
  | { readonly type: 'status-query'; readonly seq: number; readonly query: StatusQuery }
  /** this worker's share of each rate-limited key (policy/rate-shares.ts) */
  | { readonly type: 'rate-shares'; readonly shares: import('../policy/rate-shares.js').WorkerShares };

export type WorkerToPrimary =
  | { readonly type: 'hello' }
  | { readonly type: 'ready'; readonly address: { address: string; port: number; family: string }; readonly version: string; readonly tls?: readonly TlsListenerAddress[] }
  | { readonly type: 'ack'; readonly seq: number; readonly changed: boolean; readonly version: string; readonly applyMs?: number }
  /** this worker ejected a server (passive health): relayed to the other workers */
  | { readonly type: 'ejected'; readonly id: string; readonly forMs: number }
  /** a delta did not apply: the worker serves `have`, not delta.from; the primary sends the full table */
  | { readonly type: 'gap'; readonly seq: number; readonly have: string }
  | { readonly type: 'status'; readonly seq: number; readonly upstreams: UpstreamStatus[]; readonly version: string; readonly scripts?: ScriptStats[] }
  | { readonly type: 'drained'; readonly seq: number }
  | { readonly type: 'fatal'; readonly message: string; readonly code?: string }
  /** ok false: the delta was against another version; the primary sends the full set */
  | { readonly type: 'tls-certs-ack'; readonly seq: number; readonly ok: boolean; readonly version: string }
  | WorkerMetricsMessage
  /** ACME HTTP-01: a token's key authorization, looked up by the primary (answered by acme-challenge-answer) */
  | ChallengeRequest
  | { readonly type: 'status-answer'; readonly seq: number; readonly version: string; readonly answer: StatusAnswer }
  /** rate-limited keys' demand in the last window: [demandKey, count] */
  | { readonly type: 'rate-demand'; readonly counts: readonly (readonly [string, number])[] };

export function isWorkerMessage(m: unknown): m is WorkerToPrimary {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}
