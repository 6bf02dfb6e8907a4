// A worker's access rules and rate limits, asked before the pick (HTTP: proxy-exchange.ts; TCP:
// l4/tcp-service-set.ts). Compiled from the upstream's policy and kept across table swaps while the
// policy is the same (the buckets survive a swap that did not touch the limit). Counts denied and
// limited requests per service for the metrics, and each rate-limited key's demand for the primary,
// which answers with this worker's share of every key (policy/rate-shares.ts).
import type { AccessRules, RateLimitSpec, UpstreamSpec } from '../routing/types.js';
import { AccessCheck } from './access-rules.js';
import { RateLimiter } from './rate-limit.js';
import { boundedReport, demandKey, type WorkerShares } from './rate-shares.js';

export type GuardVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly status: 403 }
  | { readonly ok: false; readonly status: 429; readonly retryAfterS: number };

/** the metrics' protocol label: a TCP service's connections, or an HTTP service's requests */
function protocolLabel(upstream: UpstreamSpec): 'http' | 'tcp' {
  return upstream.protocol === 'tcp' || upstream.protocol === 'tcp+sni' ? 'tcp' : 'http';
}

const OK: GuardVerdict = Object.freeze({ ok: true });
const DENIED: GuardVerdict = Object.freeze({ ok: false, status: 403 });

export interface GuardCounts {
  denied: number;
  limited: number;
}

export class TrafficGuard {
  readonly #access = new WeakMap<AccessRules, AccessCheck>();
  readonly #limiters = new Map<string, { key: string; limiter: RateLimiter }>();
  readonly #counts = new Map<string, GuardCounts>();
  /** demandKey -> takes since the last report */
  #demand = new Map<string, number>();
  #shares: ReadonlyMap<string, number> = new Map();
  #defaultShare: number;

  /** `share`: this worker's part of a key's rate until the primary says (1 / workers); `onRefused`: the metrics (RequestObserver.refused) */
  constructor(share: number, private readonly now: () => number,
    private readonly onRefused?: (service: string, protocol: 'http' | 'tcp', kind: 'denied' | 'limited') => void) {
    this.#defaultShare = share;
  }

  /** `header`: a request header by lower-case name (HTTP); absent for TCP */
  check(upstream: UpstreamSpec, clientIp: string, header?: (name: string) => string | undefined): GuardVerdict {
    const policy = upstream.policy;
    if (policy === undefined || (policy.access === undefined && policy.rateLimit === undefined)) return OK;
    if (policy.access !== undefined) {
      let check = this.#access.get(policy.access);
      if (check === undefined) this.#access.set(policy.access, (check = new AccessCheck(policy.access)));
      if (!check.allows(clientIp)) {
        this.#count(upstream.name).denied++;
        this.onRefused?.(upstream.name, protocolLabel(upstream), 'denied');
        return DENIED;
      }
    }
    const spec = policy.rateLimit;
    if (spec !== undefined) {
      const limiter = this.#limiterOf(upstream.name, spec);
      const by = spec.by.source === 'header' && header !== undefined ? header(spec.by.name) : undefined;
      const key = by === undefined ? `ip:${clientIp}` : `h:${by}`;
      const dk = demandKey(upstream.name, key);
      this.#demand.set(dk, (this.#demand.get(dk) ?? 0) + 1);
      const r = limiter.take(key, this.now(), this.#shares.get(dk) ?? this.#defaultShare);
      if (!r.ok) {
        this.#count(upstream.name).limited++;
        this.onRefused?.(upstream.name, protocolLabel(upstream), 'limited');
        return { ok: false, status: 429, retryAfterS: Math.max(1, Math.ceil(r.retryAfterMs / 1000)) };
      }
    }
    return OK;
  }

  /** the demand since the last call, bounded (undefined when none): what the worker reports each window */
  takeDemand(): [string, number][] | undefined {
    if (this.#demand.size === 0) return undefined;
    const report = boundedReport(this.#demand);
    this.#demand = new Map();
    return report;
  }

  /** the primary's shares: they replace the previous ones (a key not listed gets the default) */
  applyShares(shares: WorkerShares): void {
    if (shares.defaultShare > 0 && shares.defaultShare <= 1) this.#defaultShare = shares.defaultShare;
    this.#shares = new Map(shares.shares.filter(([, v]) => v > 0 && v <= 1));
  }

  /** denied / limited counts per service since start */
  counts(): ReadonlyMap<string, Readonly<GuardCounts>> {
    return this.#counts;
  }

  #count(name: string): GuardCounts {
    let c = this.#counts.get(name);
    if (c === undefined) this.#counts.set(name, (c = { denied: 0, limited: 0 }));
    return c;
  }

  #limiterOf(name: string, spec: RateLimitSpec): RateLimiter {
    const held = this.#limiters.get(name);
    if (held !== undefined && held.limiter.spec === spec) return held.limiter;
    // tables arrive by IPC: an equal limit in a new table is a new object with the same content
    const key = `${spec.ratePerSecond}/${spec.burst}/${spec.by.source}/${spec.by.source === 'header' ? spec.by.name : ''}`;
    if (held !== undefined && held.key === key) {
      this.#limiters.set(name, { key, limiter: held.limiter });
      return held.limiter;
    }
    const limiter = new RateLimiter(spec);
    this.#limiters.set(name, { key, limiter });
    return limiter;
  }
}
