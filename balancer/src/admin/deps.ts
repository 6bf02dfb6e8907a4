// What the admin API's routes are given: built in main.ts/primary.ts, plain interfaces so tests pass
// doubles. Every route file is `(app, deps) => void` over this.
import type { ScriptStats } from '../scripts/script-host.js';
import type { FastifyInstance } from 'fastify';
import type pino from 'pino';
import type { TableHolder } from '../routing/table-holder.js';
import type { TableDefaults } from '../routing/tag-options.js';
import type { StatusAnswer, StatusQuery, UpstreamStatus } from '../worker/runtime.js';
import type { BalancerMetrics } from '../metrics/balancer-metrics.js';

export interface WorkerStatusSource {
  /** every worker's whole status (the dashboard; GET /status when statusQuery is absent) */
  status(): Promise<readonly { workerId: number; pid?: number; generation: number; upstreams: readonly UpstreamStatus[]; scripts?: readonly ScriptStats[] }[]>;
  /** only what one GET /status page needs (Supervisor.statusQuery); absent = status() filtered here */
  statusQuery?(query: StatusQuery): Promise<readonly { workerId: number; pid?: number; generation: number; answer: StatusAnswer }[]>;
}

/** Which live workers did not acknowledge a table version (empty and live=true: every one did). */
export interface AppliedResult {
  readonly live: boolean;
  readonly notAcked: readonly { readonly workerId: number; readonly pid?: number }[];
}

export interface AdminDeps {
  readonly holder: TableHolder;
  readonly defaults: TableDefaults;
  readonly logger: pino.Logger;
  readonly workers?: WorkerStatusSource;
  /** bearer token; undefined = no authentication */
  readonly token?: string;
  /** extra figures for /healthz and /metrics (supervisor, discovery, dump) */
  readonly metrics?: () => Record<string, unknown>;
  /** false while Consul is unreachable (reported, never fails /healthz: the last table still serves) */
  readonly consulReachable?: () => boolean | undefined;
  /**
   * Resolves once the workers serve the given table version, so a successful POST/DELETE means
   * "live everywhere" as with dyups; absent = answer right after the table swap in the primary.
   */
  readonly applied?: (version: string) => Promise<boolean | AppliedResult>;
  /** Host names (besides the listen address and localhost) the admin API answers to; "*" = any */
  readonly allowedHosts?: readonly string[];
  /** the configured admin listen host, for the Host check */
  readonly listenHost?: string;
  /** bound on upstreams defined through the API (413 beyond), default 1000 */
  readonly maxUpstreams?: number;
  /** bound on servers in one POST (400 beyond), default 1000 */
  readonly maxServers?: number;
  /** set when upstreams cannot be changed here (reload mode: the rendered config is the source) */
  readonly readOnlyReason?: string;
  /** TLS certificates and ACME (routes/certs.ts); undefined = no TLS listener */
  readonly tls?: import('../tls/tls-primary.js').TlsHandle;
  /** Prometheus figures for GET /metrics and the dashboard (balancer/src/metrics); absent = /metrics answers JSON */
  readonly balancerMetrics?: BalancerMetrics;
  /** shown by the dashboard */
  readonly mode?: 'dynamic' | 'reload';
  readonly consulEnabled?: boolean;
  /** --scripts-kv: uploads and deletes are written to Consul KV first (a failed write changes nothing) */
  readonly scriptStore?: import('../scripts/script-kv-sync.js').ScriptStore;
}

/** One admin route file: registers its routes on the app. */
export type AdminRoutes = (app: FastifyInstance, deps: AdminDeps) => void;
