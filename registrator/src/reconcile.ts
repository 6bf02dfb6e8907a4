// Pure diff: the services a container (or the whole host) should have against what the registry holds.
// Content is compared through a fingerprint, so a changed tag, port or check re-registers the service.
import { createHash } from 'node:crypto';
import type { CheckSpec, ServiceRecord } from './mapping/types.js';

/** What the registry reports about one of our services. */
export interface RegisteredService {
  readonly id: string;
  readonly name: string;
  /** container the service was registered for ('' when unknown, e.g. registered by an older version) */
  readonly containerId: string;
  /** fingerprint stored at registration ('' when unknown: always re-registered) */
  readonly fingerprint: string;
}

export interface ReconcilePlan {
  readonly register: readonly ServiceRecord[];
  readonly deregister: readonly RegisteredService[];
}

/** The parts of a check that define it; the live status of a health-mirroring check is pushed, not registered. */
function checkIdentity(c: CheckSpec): CheckSpec {
  if (c.mirrorsDockerHealth) {
    const { initialStatus: _ignored, ...rest } = c;
    return rest;
  }
  return c;
}

/** Canonical JSON: object keys sorted, so equal content gives equal text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Pure: a short content hash of everything the registry stores for the record. */
export function fingerprintOf(r: ServiceRecord): string {
  const content = {
    id: r.id,
    name: r.name,
    address: r.address,
    port: r.port,
    tags: r.tags,
    meta: r.meta,
    checks: r.checks.map(checkIdentity),
    containerId: r.containerId,
  };
  return createHash('sha256').update(canonical(content)).digest('hex').slice(0, 20);
}

/**
 * Pure: register what is missing or different, deregister what is registered but not desired.
 * `mayRemove` decides for registered services nobody desires (e.g. only our own, or -cleanup).
 */
export function reconcile(
  desired: readonly ServiceRecord[],
  registered: readonly RegisteredService[],
  mayRemove: (s: RegisteredService) => boolean = () => true,
): ReconcilePlan {
  const registeredById = new Map(registered.map((s) => [s.id, s]));
  const desiredIds = new Set<string>();
  const register: ServiceRecord[] = [];
  for (const record of desired) {
    if (desiredIds.has(record.id)) continue; // a duplicate SERVICE_ID: first one wins
    desiredIds.add(record.id);
    const current = registeredById.get(record.id);
    if (!current || current.fingerprint !== fingerprintOf(record)) register.push(record);
  }
  const deregister = registered.filter((s) => !desiredIds.has(s.id) && mayRemove(s));
  return { register, deregister };
}
