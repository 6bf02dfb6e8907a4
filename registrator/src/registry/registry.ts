// The backend-neutral adapter the bridge talks to. One implementation per backend (Consul today).
import type { ServiceRecord } from '../mapping/types.js';
import type { RegisteredService } from '../reconcile.js';

export type CheckStatus = 'passing' | 'warning' | 'critical';

export type RegistryErrorCode =
  /** no answer: connection refused/reset, timeout, 5xx: the bridge treats the registry as down */
  | 'ERR_REGISTRY_UNAVAILABLE'
  /** the registry answered and refused this one request (4xx): a problem with the record, not an outage */
  | 'ERR_REGISTRY_REJECTED'
  /** the caller aborted (shutdown) */
  | 'ERR_REGISTRY_ABORTED';

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly status?: number;
  constructor(code: RegistryErrorCode, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = opts.status;
  }
}

export interface Registry {
  /** cheap liveness probe of the backend */
  ping(signal: AbortSignal): Promise<void>;
  /** create or replace the service with its checks */
  register(record: ServiceRecord, signal: AbortSignal): Promise<void>;
  deregister(serviceId: string, signal: AbortSignal): Promise<void>;
  /** the services carrying our instance marker */
  listOurs(signal: AbortSignal): Promise<RegisteredService[]>;
  /** set the status of the record's TTL check number checkIndex (index into record.checks) */
  updateTtlCheck(record: ServiceRecord, checkIndex: number, status: CheckStatus, output: string, signal: AbortSignal): Promise<void>;
  close(): void;
}
