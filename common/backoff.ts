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

/** A per-call signal tied to a long-lived parent; dispose() unlinks it at once. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** removes the listener on the parent and clears the timer (idempotent) */
  dispose(): void;
}

/**
 * A signal that aborts when the parent aborts or after timeoutMs. Unlike AbortSignal.any([parent,
 * AbortSignal.timeout()]), which on Node 20 adds every call's signal to the parent's dependent set for
 * the parent's whole life (about 58 bytes per call that GC cannot reclaim), this links a per-call
 * controller by a listener that is removed on dispose(), on timeout or when the parent aborts.
 */
export function linkedSignal(parent: AbortSignal | undefined, timeoutMs: number): LinkedSignal {
  const controller = new AbortController();
  const ms = Math.max(1, Math.ceil(timeoutMs));
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => {
    dispose();
    controller.abort(parent?.reason);
  };
  function dispose(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    parent?.removeEventListener('abort', onAbort);
  }
  if (parent?.aborted) {
    controller.abort(parent.reason);
  } else {
    parent?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => {
      dispose();
      controller.abort(new DOMException(`The operation was aborted due to timeout (${ms} ms)`, 'TimeoutError'));
    }, ms);
    timer.unref();
  }
  return { signal: controller.signal, dispose };
}

/** Runs fn with a signal bounded by the parent and timeoutMs, and unlinks that signal when fn settles. */
export async function withDeadline<T>(parent: AbortSignal | undefined, timeoutMs: number, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const linked = linkedSignal(parent, timeoutMs);
  try {
    return await fn(linked.signal);
  } finally {
    linked.dispose();
  }
}

/**
 * A signal that aborts when the parent aborts or after timeoutMs, whichever comes first. The link to
 * the parent lives until one of the two happens (memory bounded by calls per timeout window); a
 * caller that can scope its call should prefer withDeadline, which unlinks as soon as the call ends.
 */
export function withTimeout(parent: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  return linkedSignal(parent, timeoutMs).signal;
}
