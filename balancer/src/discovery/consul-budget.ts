// The connection budget towards one Consul agent. Real agents allow each client IP
// limits.http_max_conns_per_client (200) connections and refuse the next one with a raw 429 and a
// close; the registrator and every other client on the host share those 200. Two guarantees here:
// - a hard cap: one undici Agent whose pool opens at most `maxConns` sockets to the agent, so no code
//   path can exceed the budget, whatever it asks for;
// - a soft, adaptive share for plain reads: long-held blocking queries reserve their slots, the reads
//   share the rest; a 429 or a bare close ("over budget": others on the host hold the connections)
//   halves that share and pauses every new request for a jittered, growing delay, so a storm of 429s
//   never becomes a hot loop. Successes win the share back one slot at a time.
import { Agent, type Dispatcher } from 'undici';
import { backoffDelay, sleep, type BackoffPolicy } from '../../../common/backoff.js';

export const DEFAULT_CONSUL_MAX_CONNS = 16;

export interface ConsulBudgetOptions {
  /** hard cap on concurrent connections to the agent (--consul-max-conns) */
  readonly maxConns: number;
  /** pause policy after an over-budget answer; default 250 ms doubling to 10 s */
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
  readonly now?: () => number;
  /** --consul-ca: the PEM the agent's certificate is verified against (instead of the system store) */
  readonly ca?: string;
  /** tests: a dispatcher to use instead of the capped Agent */
  readonly dispatcher?: Dispatcher;
}

export interface ConsulBudgetStats {
  readonly maxConns: number;
  /** slots held by long blocking queries */
  readonly reserved: number;
  /** current share of plain reads (adaptive) */
  readonly readLimit: number;
  readonly readsInFlight: number;
  readonly peakInFlight: number;
  /** 429s and bare closes seen */
  readonly overBudget: number;
  /** total time new requests were held back by over-budget pauses */
  readonly pausedMs: number;
}

const SUCCESSES_PER_SLOT = 8;

export class ConsulBudget {
  readonly dispatcher: Dispatcher;
  readonly maxConns: number;
  readonly #policy: BackoffPolicy;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #ownsDispatcher: boolean;
  #reserved = 0;
  #readLimit: number;
  #inFlight = 0;
  #peak = 0;
  #strikes = 0;
  #successes = 0;
  #pausedUntil = 0;
  #overBudget = 0;
  #pausedMs = 0;
  readonly #waiters: (() => void)[] = [];

  constructor(opts: ConsulBudgetOptions) {
    this.maxConns = Math.max(1, Math.floor(opts.maxConns));
    this.#policy = opts.backoff ?? { baseMs: 250, maxMs: 10_000, factor: 2 };
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#ownsDispatcher = opts.dispatcher === undefined;
    // connections is undici's per-origin socket cap: requests beyond it queue instead of connecting
    this.dispatcher = opts.dispatcher ?? new Agent({ connections: this.maxConns, pipelining: 1, keepAliveTimeout: 30_000, ...(opts.ca ? { connect: { ca: opts.ca } } : {}) });
    this.#readLimit = this.maxConns;
  }

  /**
   * Reserve `n` slots for long-held blocking queries (at most maxConns - 1, so reads always keep one).
   * Returns how many were granted.
   */
  reserve(n: number): number {
    const granted = Math.max(0, Math.min(n, this.maxConns - 1 - this.#reserved));
    this.#reserved += granted;
    this.#readLimit = Math.min(this.#readLimit, this.#readShareMax());
    return granted;
  }

  release(n: number): void {
    this.#reserved = Math.max(0, this.#reserved - n);
    this.#wake();
  }

  /** Milliseconds until the current over-budget pause ends (0 = none). */
  pauseLeftMs(): number {
    return Math.max(0, this.#pausedUntil - this.#now());
  }

  /** Read slots free now (0 while paused). */
  freeReadSlots(): number {
    if (this.pauseLeftMs() > 0) return 0;
    return Math.max(0, this.#readLimit - this.#inFlight);
  }

  /** Wait out an over-budget pause (blocking queries call this before each request). */
  async waitPause(signal: AbortSignal): Promise<void> {
    for (let i = 0; i < 100 && !signal.aborted; i++) {
      const left = this.pauseLeftMs();
      if (left <= 0) return;
      this.#pausedMs += left;
      await sleep(left, signal);
    }
  }

  /** One plain read inside the read share: waits for a slot and for any over-budget pause. */
  async read<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    await this.#acquire(signal);
    try {
      const out = await fn();
      this.noteSuccess();
      return out;
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_CONSUL_OVER_BUDGET') this.noteOverBudget();
      throw err;
    } finally {
      this.#inFlight--;
      this.#wake();
    }
  }

  noteSuccess(): void {
    this.#strikes = 0;
    if (this.#readLimit < this.#readShareMax() && ++this.#successes >= SUCCESSES_PER_SLOT) {
      this.#successes = 0;
      this.#readLimit++;
      this.#wake();
    }
  }

  /** A 429 or a bare close: halve the read share, pause every new request. */
  noteOverBudget(): void {
    this.#overBudget++;
    this.#successes = 0;
    this.#readLimit = Math.max(1, Math.floor(this.#readLimit / 2));
    const delay = backoffDelay(this.#policy, this.#strikes++, this.#random);
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#now() + delay);
  }

  stats(): ConsulBudgetStats {
    return {
      maxConns: this.maxConns,
      reserved: this.#reserved,
      readLimit: this.#readLimit,
      readsInFlight: this.#inFlight,
      peakInFlight: this.#peak,
      overBudget: this.#overBudget,
      pausedMs: this.#pausedMs,
    };
  }

  async close(): Promise<void> {
    for (const w of this.#waiters.splice(0)) w();
    if (this.#ownsDispatcher) await this.dispatcher.close().catch(() => undefined);
  }

  #readShareMax(): number {
    return Math.max(1, this.maxConns - this.#reserved);
  }

  async #acquire(signal: AbortSignal): Promise<void> {
    // bounded: each pass waits for a wake-up or the pause, and the signal ends it
    for (;;) {
      if (signal.aborted) throw signal.reason ?? new Error('aborted');
      const left = this.pauseLeftMs();
      if (left > 0) {
        this.#pausedMs += left;
        await sleep(left, signal);
        continue;
      }
      if (this.#inFlight < this.#readLimit) {
        this.#inFlight++;
        if (this.#inFlight + this.#reserved > this.#peak) this.#peak = this.#inFlight + this.#reserved;
        return;
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.#waiters.push(done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** every waiter re-checks (the share may have grown by more than one) */
  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}
