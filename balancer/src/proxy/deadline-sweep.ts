// One coarse clock for many connections. `socket.setTimeout` allocates a Timeout and a bound
// function on every call and refreshes the timer on every read and write: at several state changes
// per request that was a measurable part of the native engine's CPU. Here a connection keeps a plain
// deadline (epoch ms, 0 = none) that it moves with a field store, and one unref'd interval per
// engine side looks at all of them; a deadline is honoured within one tick. The request body gate
// (request-body-gate.ts) keeps its idle and total limits on one too, whatever the engine.
export interface Expiring {
  /** epoch ms; 0 = no deadline */
  deadline: number;
  /** the deadline passed: act, or move it */
  expire(now: number): void;
}

/** Tick for a set of timeouts: an eighth of the shortest, within [10 ms, 500 ms]. */
export function tickFor(timeoutsMs: readonly number[]): number {
  let min = Infinity;
  for (const t of timeoutsMs) if (t > 0 && t < min) min = t;
  return Math.max(10, Math.min(500, Math.floor(min / 8)));
}

export class DeadlineSweep {
  readonly #members = new Set<Expiring>();
  #timer: NodeJS.Timeout | undefined;

  /** `onError`: an expire() threw (a bug): that member is dropped (the owner closes it), the clock goes on for the others */
  constructor(readonly tickMs: number, readonly now: () => number = Date.now, readonly onError?: (err: unknown, member: Expiring) => void) {}

  get size(): number {
    return this.#members.size;
  }

  add(m: Expiring): void {
    this.#members.add(m);
    if (this.#timer === undefined) {
      this.#timer = setInterval(sweepOnce, this.tickMs, this);
      this.#timer.unref();
    }
  }

  delete(m: Expiring): void {
    // the interval stops at the next tick that finds no member, not here: members that come and go
    // one at a time (one request after another) would otherwise arm and clear an interval each
    this.#members.delete(m);
  }

  /** Expire every member whose deadline passed (the interval calls this; tests may too). */
  sweep(): void {
    if (this.#members.size === 0) {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = this.now();
    for (const m of this.#members) {
      const d = m.deadline;
      if (d !== 0 && d <= now) {
        try {
          m.expire(now);
        } catch (err) {
          this.#members.delete(m);
          this.onError?.(err, m);
        }
      }
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#members.clear();
  }
}

function sweepOnce(s: DeadlineSweep): void {
  s.sweep();
}
