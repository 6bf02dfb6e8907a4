// The proxy engine as one worker process sees it: the primary (or a test) creates it, feeds it
// routing tables, asks it to listen, reads its status and drains it. Everything I/O-heavy lives in
// proxy/*; this file is the contract (the factory, proxy/proxy-runtime.ts, implements it).
import type { AddressInfo, Socket } from 'node:net';
import type pino from 'pino';
import type { RouteTable } from '../routing/types.js';
import type { PeerServerStatus, PeerUpstreamStatus } from '../health/peer-health.js';
import type { RequestObserver } from '../metrics/request-metrics.js';
import type { ServerPoolStats } from '../proxy/transport.js';

export interface WorkerTimeouts {
  /** TCP connect to an upstream server */
  readonly connectMs: number;
  /** from request sent to response headers received */
  readonly headersMs: number;
  /** upstream response body idle (no byte for this long) */
  readonly idleMs: number;
  /** client-side keep-alive: idle client connections are closed after this */
  readonly clientKeepAliveMs: number;
  /** a request head must be complete within this long of its first byte (default 10 s; 408 and close) */
  readonly clientHeaderMs?: number;
  /** max gap between two request-body chunks (default 60 s; 0 = none) */
  readonly clientBodyMs?: number;
  /** the whole request received within this long of its head (default 300 s; 0 = none) */
  readonly requestMs?: number;
  /** longest wait for a free upstream connection (default 10 s) */
  readonly queueMs?: number;
  /** an Upgrade tunnel with no byte either way for this long is closed (default 10 min; 0 = none) */
  readonly tunnelIdleMs?: number;
}

export const DEFAULT_CLIENT_HEADER_MS = 10_000;
export const DEFAULT_CLIENT_BODY_MS = 60_000;
export const DEFAULT_REQUEST_MS = 300_000;
export const DEFAULT_QUEUE_MS = 10_000;
export const DEFAULT_TUNNEL_IDLE_MS = 600_000;
export const DEFAULT_MAX_QUEUE_PER_SERVER = 256;

export interface WorkerRuntimeOptions {
  readonly logger: pino.Logger;
  /** Consul node name of this host, for local-first balancing */
  readonly localNode?: string;
  readonly localZone?: string;
  readonly timeouts: WorkerTimeouts;
  /** upper bound of keep-alive connections per upstream server (undici Pool `connections`) */
  readonly maxConnectionsPerServer: number;
  /** data plane engine; default DEFAULT_ENGINE (config.ts) */
  readonly engine?: 'native' | 'undici';
  /** native engine: request head limit in bytes (431 beyond; default 16 KiB) */
  readonly maxHeadBytes?: number;
  /** one pino line per request */
  readonly accessLog: boolean;
  /** CIDR ranges (--trust-forwarded) whose Forwarded / X-Forwarded-* / X-Real-IP are kept; default none */
  readonly trustForwarded?: readonly string[];
  /** request fields whose name has a '_' are forwarded (--underscores-in-headers); default dropped */
  readonly underscoresInHeaders?: boolean;
  /** what a client's FIN after its request means (--client-half-close); default abort */
  readonly clientHalfClose?: import('../proxy/client-half-close.js').ClientHalfClose;
  /** TCP services (--tcp-ports and friends); undefined = no TCP port is ever opened */
  readonly l4?: import('../l4/l4-config.js').L4Config;
  /** the --tls-listen ports: tcp+sni names on them are passed through by the TLS listener, the TCP side opens none of them */
  readonly tlsPorts?: readonly number[];
  /** this worker's part of every service's rate limit: 1 / workers (policy/rate-limit.ts); default 1 */
  readonly rateShare?: number;
  /** requests that may wait for a connection to one upstream server beyond its busy connections (default 256) */
  readonly maxQueuePerServer?: number;
  /** Upgrade protocols passed through (lower case; default ['websocket']); others get 400 */
  readonly upgradeProtocols?: readonly string[];
  readonly now?: () => number;
  readonly random?: () => number;
  /** ACME HTTP-01: answers GET /.well-known/acme-challenge/<token> before routing (balancer/src/tls) */
  readonly acmeChallenge?: import('../tls/acme-challenge.js').ChallengeLookup;
  /** port of the first TLS listener: where `redirect-https` sends plain-HTTP clients */
  readonly httpsPort?: number;
  /** key of the sticky-cookie server ids; every worker of one balancer gets the same */
  readonly stickySecret?: string;
  /** per-request figures (balancer/src/metrics); called once at the end of every request */
  readonly observer?: RequestObserver;
  /** active checks run once per host in the primary: states arrive through applyHealth (no local probes) */
  readonly sharedActiveChecks?: boolean;
  /** a passive ejection decided here, to be relayed to the other workers */
  readonly onPassiveEjection?: (serverId: string, forMs: number) => void;
  /** HTTP/2 client side: h2c prior knowledge on the plain listener, and the bounds (proxy/http2/limits.ts) */
  readonly http2?: {
    readonly h2c?: boolean;
    readonly limits?: Partial<import('../proxy/http2/limits.js').Http2Limits>;
    /** --upstream-ca's PEM: proto=h2 servers' certificates chain to it (else the system store) */
    readonly upstreamCa?: string;
  };
}

/** One server of an upstream: health as PeerHealth reports it, plus pool figures. */
export interface ServerStatus extends PeerServerStatus {
  readonly pool: ServerPoolStats;
}

export interface UpstreamStatus extends Omit<PeerUpstreamStatus, 'servers'> {
  readonly servers: readonly ServerStatus[];
  /** panic mode figures of this worker (upstreams with a panic threshold) */
  readonly panic?: { readonly panicking: boolean; readonly entered: number; readonly picks: number };
}

/** What GET /status asks a worker (admin/status-page.ts): only what one page needs. */
export interface StatusQuery {
  /** upstreams to report server by server (names the table lacks are skipped) */
  readonly upstreams?: readonly string[];
  /** a summary of every upstream of the table: server count, in flight, the servers not ok */
  readonly summary?: boolean;
  /** the request scripts' counts */
  readonly scripts?: boolean;
  /**
   * every upstream's servers that are not in the resting state (see PeerHealth.notable; the others
   * are ok, no error, nothing in flight), and every upstream with panic figures: the dashboard's read
   */
  readonly notable?: boolean;
}

/** One upstream in a few numbers; notOk lists [serverId, status] of its servers that are not ok. */
export interface UpstreamSummary {
  readonly name: string;
  readonly algorithm: string;
  readonly servers: number;
  readonly inflight: number;
  readonly notOk: readonly (readonly [string, 'err' | 'ejected' | 'down'])[];
  readonly panic?: UpstreamStatus['panic'];
}

export interface StatusAnswer {
  readonly upstreams?: UpstreamStatus[];
  readonly summaries?: UpstreamSummary[];
  readonly notable?: UpstreamStatus[];
  readonly scripts?: import('../scripts/script-host.js').ScriptStats[];
}

/** What the primary broadcasts about server health (see health/shared-checker.ts). */
export interface HealthUpdate {
  readonly active?: readonly import('../health/peer-health.js').SharedActiveState[];
  readonly ejections?: readonly { readonly id: string; readonly forMs: number }[];
}

export interface WorkerRuntime {
  /** Atomic swap of the routing table; a table with the same version is a no-op. */
  /** `delta`: names of the upstreams a table delta upserted or removed (the apply then costs only those) */
  applyTable(table: RouteTable, delta?: ReadonlySet<string>): { changed: boolean };
  /** Health decided elsewhere: active states from the shared checker, passive ejections of other workers. */
  applyHealth?(update: HealthUpdate): void;
  /** rate limits shared by demand (policy/rate-shares.ts): this window's demand, and the primary's shares */
  takeRateDemand?(): [string, number][] | undefined;
  applyRateShares?(shares: import('../policy/rate-shares.js').WorkerShares): void;
  /** Start the proxy listener; under node:cluster the port is shared through the primary. */
  listen(host: string, port: number): Promise<AddressInfo>;
  /**
   * Serve a client socket accepted elsewhere, e.g. a TLSSocket from a tls.Server: the engine treats
   * it as one of its own (X-Forwarded-Proto https when it is encrypted, -Port its local port).
   */
  handleSocket(socket: Socket): void;
  /** tcp+sni passthrough on --tls-listen ports (absent without --tcp-ports) */
  readonly tlsPassthrough?: import('../tls/worker-tls.js').TlsPassthrough;
  /** PeerHealth.status of the current table plus pool figures per server. */
  status(): UpstreamStatus[];
  /** what one GET /status page needs: named upstreams in full, or every upstream summarized (cheap) */
  statusQuery?(query: StatusQuery): StatusAnswer;
  /**
   * Server-up and in-flight gauges for the metrics report: what changed since the previous call, or
   * every one when `full` (metrics/server-gauges.ts); `live` = the table's services and servers.
   */
  serverGauges?(full: boolean): import('../metrics/server-gauges.js').ServerGaugeChanges & { readonly live: import('../metrics/server-gauges.js').LiveLookup };
  /** calls/errors of the request scripts of the current table (balancer/src/scripts) */
  scriptStats?(): import('../scripts/script-host.js').ScriptStats[];
  /**
   * Graceful drain: stop accepting, finish in-flight requests, close idle keep-alive connections
   * (busy ones get `Connection: close` on their next response); resolves when all are gone.
   */
  stopAccepting(): Promise<void>;
  /** Stop everything now: listener, client sockets, upstream pools, health-check timers. */
  close(): Promise<void>;
}
