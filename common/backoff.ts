// Jittered exponential backoff, an abortable sleep and a bounded signal, shared by every retry loop of
// both programs (registrator and balancer).
// Pure arithmetic: randomness is injected so tests can pin it.

export interface BackoffPolicy {
  /** first delay */
  readonly baseMs: number;
  /** upper bound of any delay */
  readonly maxMs: number;
  /** growth per consecutive failure, default 2 */
  readonly factor?: number;
}

// capped at 10 s so a recovered Consul or Docker engine is noticed quickly
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ baseMs: 250, maxMs: 10_000, factor: 2 });

/**
 * Delay before retry number `attempt` (0 = first retry): "full jitter" between half and all of the
 * exponential value, so many watchers failing together do not retry together.
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  const exp = Math.min(policy.maxMs, policy.baseMs * Math.pow(factor, Math.max(0, Math.min(attempt, 30))));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/** Resolves after ms, or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A signal that aborts when the parent aborts or after timeoutMs, whichever comes first. */
export function withTimeout(parent: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
  return parent ? AbortSignal.any([parent, timeout]) : timeout;
}
