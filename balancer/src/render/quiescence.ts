// consul-template's `wait` (quiescence) timers: after a change, wait until `min` passes with no further
// change, but never longer than `max` after the first change of the burst. Timers are injected so
// tests drive it with a fake clock.
import { parseDurationMs } from '../routing/tag-options.js';

export interface WaitSpec {
  readonly minMs: number;
  readonly maxMs: number;
}

export interface TimerClock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_CLOCK: TimerClock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export class WaitSpecError extends Error {
  readonly code = 'ERR_WAIT_SPEC';
}

/** "5s:10s" -> {5000, 10000}; "5s" -> max = 4 x min (consul-template's default); "0" disables. */
export function parseWaitSpec(text: string): WaitSpec {
  const [minText, maxText, extra] = text.split(':');
  if (extra !== undefined) throw new WaitSpecError(`wait "${text}": expected min or min:max`);
  const minMs = parseDurationMs(minText ?? '');
  if (minMs === undefined) throw new WaitSpecError(`wait "${text}": bad min duration "${minText}"`);
  const maxMs = maxText === undefined ? minMs * 4 : parseDurationMs(maxText);
  if (maxMs === undefined) throw new WaitSpecError(`wait "${text}": bad max duration "${maxText}"`);
  if (maxMs < minMs) throw new WaitSpecError(`wait "${text}": max must be >= min`);
  // Node fires a longer timer after 1 ms, which would turn quiescence into none
  if (maxMs > 2_147_483_647) throw new WaitSpecError(`wait "${text}": longer than a timer can wait (24 days)`);
  return { minMs, maxMs };
}

/**
 * Collapses a burst of changes into one `onQuiet` call. With min = 0 there is no waiting: every
 * notify() calls onQuiet at once (synchronously).
 */
export class Quiescence {
  private minTimer: unknown = undefined;
  private maxTimer: unknown = undefined;

  constructor(
    private readonly wait: WaitSpec,
    private readonly onQuiet: () => void,
    private readonly clock: TimerClock = REAL_CLOCK,
  ) {}

  /** true while a burst is being waited out */
  get pending(): boolean {
    return this.minTimer !== undefined || this.maxTimer !== undefined;
  }

  /** A change arrived: restart the min timer; start the max timer if this opens a burst. */
  notify(): void {
    if (this.wait.minMs <= 0) {
      this.onQuiet();
      return;
    }
    if (this.minTimer !== undefined) this.clock.clearTimeout(this.minTimer);
    this.minTimer = this.clock.setTimeout(() => this.fire(), this.wait.minMs);
    if (this.maxTimer === undefined) this.maxTimer = this.clock.setTimeout(() => this.fire(), Math.max(this.wait.maxMs, this.wait.minMs));
  }

  /** Drop a pending burst without firing (shutdown). */
  cancel(): void {
    if (this.minTimer !== undefined) this.clock.clearTimeout(this.minTimer);
    if (this.maxTimer !== undefined) this.clock.clearTimeout(this.maxTimer);
    this.minTimer = undefined;
    this.maxTimer = undefined;
  }

  private fire(): void {
    this.cancel();
    this.onQuiet();
  }
}
