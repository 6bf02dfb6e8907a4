// At most one warning per key per interval (a scanner asking for a thousand names must not flood
// the log); the key map is bounded.
import type pino from 'pino';

export class RateLimitedLog {
  readonly #last = new Map<string, number>();
  constructor(private readonly log: pino.Logger, private readonly intervalMs: number, private readonly maxKeys: number, private readonly now: () => number = Date.now) {}

  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const last = this.#last.get(key);
    if (last !== undefined && t - last < this.intervalMs) return;
    if (this.#last.size >= this.maxKeys) this.#last.clear();
    this.#last.set(key, t);
    this.log.warn(fields, msg);
  }
}
