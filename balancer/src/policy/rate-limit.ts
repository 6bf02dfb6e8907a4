// Rate limits per service (pure; the clock is passed in): a token bucket per key (nginx limit_req,
// Traefik rateLimit). `rate=100/s` refills 100 tokens a second, `burst=200` is the most saved; a
// request (HTTP) or a new connection (TCP) takes one token, none left = HTTP 429 with Retry-After,
// TCP close. The key is the client address (`rate_by=ip`, the default) or a request header
// (`rate_by=header:<name>`; TCP and requests without the header count by address).
//
// The whole balancer holds the limit, not each worker: a worker's bucket for a key refills at `share`
// of the rate and holds `share` of the burst, the share given per call. The primary sets the shares
// from every worker's demand (policy/rate-shares.ts), so they sum to 1 over the live workers.
import type { RateLimitSpec } from '../routing/types.js';

export const MAX_RATE_PER_SECOND = 1_000_000;
export const MAX_BURST = 10_000_000;
/** buckets kept per service and worker; beyond, full (idle) buckets are forgotten, then the oldest */
export const MAX_BUCKETS = 65_536;

/** "100/s", "6000/m", "2.5/s", "100" (per second) -> tokens per second; undefined when malformed or <= 0. */
export function parseRate(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*(s|m|h|sec|min|hour))?\s*$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  const per = m[2] === undefined || m[2].startsWith('s') ? 1 : m[2].startsWith('m') ? 60 : 3600;
  const r = n / per;
  return Number.isFinite(r) && r > 0 && r <= MAX_RATE_PER_SECOND ? r : undefined;
}

/** "ip" | "header:<name>" */
export function parseRateBy(text: string): RateLimitSpec['by'] | undefined {
  const t = text.trim();
  if (t === 'ip') return { source: 'ip' };
  const m = /^header:([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128})$/.exec(t);
  return m ? { source: 'header', name: m[1].toLowerCase() } : undefined;
}

/** The default burst: one second of the rate (at least one token). */
export function defaultBurst(ratePerSecond: number): number {
  return Math.max(1, Math.ceil(ratePerSecond));
}

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** The buckets of one service in one worker. */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #rate: number;
  readonly #burst: number;

  constructor(readonly spec: RateLimitSpec) {
    this.#rate = spec.ratePerSecond;
    this.#burst = spec.burst;
  }

  /** `share`: this worker's part of the key's rate and burst (0 < share <= 1) */
  take(key: string, now: number, share = 1): TakeResult {
    const rate = this.#rate * share;
    // at least one token can be saved, or a share of a small burst would refuse everything
    const burst = Math.max(1, this.#burst * share);
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= MAX_BUCKETS) this.#evict(now);
      b = { tokens: burst, at: now };
      this.#buckets.set(key, b);
    } else {
      const elapsed = Math.max(0, now - b.at) / 1000;
      // a smaller share also shrinks what was saved
      b.tokens = Math.min(burst, b.tokens + elapsed * rate);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((1 - b.tokens) / rate) * 1000) };
  }

  get size(): number {
    return this.#buckets.size;
  }

  #evict(now: number): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.#rate >= this.#burst) this.#buckets.delete(key);
    }
    // nothing full: drop the oldest quarter (Map order is insertion order)
    if (this.#buckets.size >= MAX_BUCKETS) {
      let n = MAX_BUCKETS >> 2;
      for (const key of this.#buckets.keys()) {
        if (n-- <= 0) break;
        this.#buckets.delete(key);
      }
    }
  }
}
