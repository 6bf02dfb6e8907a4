// The backend-neutral adapter the bridge talks to. One implementation per backend (Consul today).
import type { ServiceRecord } from '../mapping/types.js';
import type { RegisteredService } from '../reconcile.js';

export type CheckStatus = 'passing' | 'warning' | 'critical';

export type RegistryErrorCode =
  /** no answer: connection refused/reset, timeout: the bridge treats the registry as down */
  | 'ERR_REGISTRY_UNAVAILABLE'
  /**
   * the registry answered and refused this one request for good (4xx, or a 500 the agent gives a
   * registration it will never accept as it is configured, e.g. script checks disabled): a problem with
   * the record, not retried until the record changes
   */
  | 'ERR_REGISTRY_REJECTED'
  /**
   * the registry answered, but this request failed for now (5xx, 429, 403): that record's failure, not an
   * outage; the bridge retries that container with backoff
   */
  | 'ERR_REGISTRY_RECORD_FAILED'
  /** the caller aborted (shutdown) */
  | 'ERR_REGISTRY_ABORTED';

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly status?: number;
  /** the agent said it is over its connection budget (429, or a bare close of the connection) */
  readonly overBudget: boolean;
  /** what the agent said (its answer body), when it answered with one */
  readonly agentMessage?: string;
  constructor(code: RegistryErrorCode, message: string, opts: { status?: number; cause?: unknown; overBudget?: boolean; agentMessage?: string } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = opts.status;
    this.overBudget = opts.overBudget ?? false;
    if (opts.agentMessage !== undefined) this.agentMessage = opts.agentMessage;
  }
}

export interface Registry {
  /** cheap liveness probe of the backend */
  ping(signal: AbortSignal): Promise<void>;
  /** create or replace the service with its checks */
  register(record: ServiceRecord, signal: AbortSignal): Promise<void>;
  deregister(serviceId: string, signal: AbortSignal): Promise<void>;
  /** the services carrying our instance marker (and leftovers we may adopt, see the backend) */
  listOurs(signal: AbortSignal): Promise<RegisteredService[]>;
  /** set the status of the record's TTL check number checkIndex (index into record.checks) */
  updateTtlCheck(record: ServiceRecord, checkIndex: number, status: CheckStatus, output: string, signal: AbortSignal): Promise<void>;
  /** put a service into maintenance (no new traffic; it stays registered) or take it out */
  setMaintenance(serviceId: string, enable: boolean, reason: string, signal: AbortSignal): Promise<void>;
  /** this registrator is alive: refreshes its presence record (see presence in the backend) */
  heartbeat?(signal: AbortSignal): Promise<void>;
  /** this registrator stops: removes its presence record */
  withdraw?(signal: AbortSignal): Promise<void>;
  close(): void;
}
