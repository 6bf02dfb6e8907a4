// Which host names want an ACME certificate, and when one is due. Pure.
import type { CatalogInstance, CatalogSnapshot } from '../routing/types.js';

const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;

/**
 * Names of services tagged `tls=acme`: the hosts of their `urlprefix-<host>/...` tags and their
 * `host=<name>` tags (any instance). Wildcards and IP addresses cannot be validated over HTTP-01 and
 * come back as problems.
 */
export function acmeNames(snapshot: CatalogSnapshot | undefined): { names: string[]; problems: string[] } {
  const names = new Set<string>();
  const problems: string[] = [];
  for (const [service, instances] of Object.entries(snapshot?.services ?? {})) {
    const own = serviceAcmeNames(service, instances);
    if (own === NONE) continue;
    for (const n of own.names) names.add(n);
    problems.push(...own.problems);
  }
  return { names: [...names].sort(), problems: [...new Set(problems)] };
}

type ServiceNames = { readonly names: readonly string[]; readonly problems: readonly string[] };
const NONE: ServiceNames = { names: [], problems: [] };
/** per (frozen, shared between snapshots) instance list: the catalog wakes the ACME loop on every change */
const byList = new WeakMap<readonly CatalogInstance[], { readonly service: string; readonly result: ServiceNames }>();

function serviceAcmeNames(service: string, instances: readonly CatalogInstance[]): ServiceNames {
  const hit = byList.get(instances);
  if (hit !== undefined && hit.service === service) return hit.result;
  let result = NONE;
  if (instances.some((i) => i.tags.includes('tls=acme'))) {
    const names: string[] = [];
    const problems: string[] = [];
    for (const inst of instances) {
      for (const tag of inst.tags) {
        let host: string | undefined;
        if (tag.startsWith('urlprefix-')) {
          const rest = tag.slice('urlprefix-'.length).split(' ')[0];
          if (!rest.startsWith('/')) host = rest.split('/')[0].split(':')[0];
        } else if (tag.startsWith('host=')) host = tag.slice(5);
        if (host === undefined || host === '') continue;
        const name = host.toLowerCase().replace(/\.$/, '');
        if (DNS_NAME.test(name) && !/^[0-9.]+$/.test(name)) names.push(name);
        else problems.push(`service ${service}: "${host}" cannot get an ACME certificate over HTTP-01 (wildcard, IP or not a DNS name)`);
      }
    }
    result = { names, problems };
  }
  if (Object.isFrozen(instances)) byList.set(instances, { service, result });
  return result;
}

export interface RenewalState {
  /** when our last certificate for the name was stored (ms) */
  readonly issuedAt?: number;
  /** an admin asked for a new certificate at this time (ms) */
  readonly forceRenewAt?: number;
  readonly failures?: number;
  /** no attempt before this (backoff after a failure, ms) */
  readonly nextAttemptAt?: number;
  readonly lastError?: string;
}

export type DueReason = 'missing' | 'renewal' | 'forced';

/** Due at two thirds of the lifetime, when missing, or when forced after the last issuance. */
export function renewalDue(cert: { notBefore: string; notAfter: string } | undefined, state: RenewalState | undefined, nowMs: number): DueReason | undefined {
  if (state?.forceRenewAt !== undefined && state.forceRenewAt > (state.issuedAt ?? 0)) return 'forced';
  if (!cert) return 'missing';
  const from = Date.parse(cert.notBefore);
  const to = Date.parse(cert.notAfter);
  return nowMs >= from + ((to - from) * 2) / 3 ? 'renewal' : undefined;
}

/** Pause after the n-th consecutive failure: base * 2^(n-1), at most one hour. */
export function retryDelayMs(baseMs: number, failures: number): number {
  return Math.min(3_600_000, baseMs * 2 ** Math.max(0, Math.min(failures - 1, 20)));
}
