// How one long-lived watcher (KV policies, KV scripts, KV certificates, a template's KV dependency)
// reaches Consul inside the connection budget. A blocking query holds a socket for its whole wait, so
// it may run only on a slot the budget reserved for it; when none is left (a small --consul-max-conns
// with every KV watch on), the watcher degrades to polling: a plain, non-blocking read inside the read
// share after a jittered pause. Then the reads keep their socket (a poll holds one for a round trip,
// not for a wait) and the catalog signals, which reserved first, keep theirs. Polling costs latency
// (up to one interval), never a connection beyond the budget.
import { sleep } from '../../../common/backoff.js';
import type { ConsulBudget } from './consul-budget.js';
import { isOverBudget } from './blocking-query.js';

/** What one query of the watcher is told to do: `index` 0 means a plain read under `timeoutMs`. */
export interface WatchCall {
  readonly index: number;
  /** set on a plain (polling) read: its deadline */
  readonly timeoutMs?: number;
}

export interface WatchSlotOptions {
  /** pause between two polls (before jitter); default 2 s */
  readonly pollMs?: number;
  /** deadline of one poll; default 10 s */
  readonly pollTimeoutMs?: number;
  readonly random?: () => number;
}

export const DEFAULT_POLL_MS = 2_000;
const DEFAULT_POLL_TIMEOUT_MS = 10_000;
/** a poll interval is never shorter than this, whatever was configured (bounded request rate) */
const MIN_POLL_MS = 100;

export interface WatchSlot {
  /** true while the watcher holds a reserved slot (blocking queries); false = polling in the read share */
  readonly blocking: boolean;
  /**
   * One query of the watch loop. Blocking: waits out an over-budget pause, then runs `call` with the
   * watcher's index. Polling: reads at once at first and after a failure (the loop backed off), else
   * after a jittered pause; each runs with index 0 inside the read share.
   */
  query<T>(signal: AbortSignal, index: number, call: (c: WatchCall) => Promise<T>): Promise<T>;
  /** A plain read that is not the watch itself (a confirming re-read, a write): inside the read share. */
  read<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T>;
  /** Gives the reserved slot back (idempotent). */
  release(): void;
}

/** Jittered poll pause: between 75 % and 125 % of the interval, never below MIN_POLL_MS. */
export function pollDelay(pollMs: number, random: () => number = Math.random): number {
  const base = Number.isFinite(pollMs) ? pollMs : DEFAULT_POLL_MS;
  return Math.max(MIN_POLL_MS, Math.round(base * (0.75 + 0.5 * random())));
}

/**
 * A slot for one watcher: reserved on the budget if one is left, else polling. Without a budget (tests,
 * a caller that has none) the watcher blocks as it always did.
 */
export function watchSlot(budget: ConsulBudget | undefined, opts: WatchSlotOptions = {}): WatchSlot {
  if (!budget) {
    return {
      blocking: true,
      query: (_signal, index, call) => call({ index }),
      read: (_signal, fn) => fn(),
      release: () => undefined,
    };
  }
  const random = opts.random ?? Math.random;
  const pollMs = opts.pollMs ?? DEFAULT_POLL_MS;
  const pollTimeoutMs = opts.pollTimeoutMs ?? DEFAULT_POLL_TIMEOUT_MS;
  let held = budget.reserve(1) === 1;
  const blocking = held;
  /** after a successful poll the next one waits; the first and one after a failure (the loop backed off) do not */
  let pauseNext = false;
  return {
    blocking,
    async query<T>(signal: AbortSignal, index: number, call: (c: WatchCall) => Promise<T>): Promise<T> {
      if (blocking) {
        await budget.waitPause(signal);
        try {
          const out = await call({ index });
          budget.noteSuccess();
          return out;
        } catch (err) {
          if (isOverBudget(err)) budget.noteOverBudget();
          throw err;
        }
      }
      if (pauseNext) await sleep(pollDelay(pollMs, random), signal);
      pauseNext = false;
      const out = await budget.read(signal, () => call({ index: 0, timeoutMs: pollTimeoutMs }));
      pauseNext = true;
      return out;
    },
    read: (signal, fn) => budget.read(signal, fn),
    release() {
      if (!held) return;
      held = false;
      budget.release(1);
    },
  };
}
