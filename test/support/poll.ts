// Polling with a deadline, the one way tests wait for a state they cannot be told about (no sleep as
// synchronization): the probe runs at once, then every `intervalMs` until it returns a value.

type Probe<T> = () => T | undefined | false | Promise<T | undefined | false>;

/**
 * Resolves with the probe's first value other than undefined and false; past `timeoutMs` throws an
 * error naming `what`. A probe that throws fails the wait at once.
 */
export function until<T>(what: string, probe: Probe<T>, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  return poll(what, probe, timeoutMs, intervalMs, false);
}

/**
 * As `until`, but a probe that throws counts as "not yet" (a server still starting refuses
 * connections); the last error is part of the timeout message.
 */
export function untilRetryingErrors<T>(what: string, probe: Probe<T>, timeoutMs = 10_000, intervalMs = 25): Promise<T> {
  return poll(what, probe, timeoutMs, intervalMs, true);
}

async function poll<T>(what: string, probe: Probe<T>, timeoutMs: number, intervalMs: number, retryErrors: boolean): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastErr: Error | undefined;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      if (!retryErrors) throw err;
      lastErr = err as Error;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
