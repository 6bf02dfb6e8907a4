// At most `limit` plain reads in flight at once (a service's first read, its read after a failure, a
// poll past the budget), first come first served. A held query costs the agent nothing until its
// service changes; a plain read costs one whole answer now. Thousands of them together (every service
// at start, or all at once after the agent came back) each wait behind all the others, and on a busy
// agent every one outlives its read deadline, is retried after its backoff, and the storm repeats: the
// table never fills (README.md, "Plain reads, bounded"). More reads in flight do not make an agent
// answer faster; they only make each answer later. The limit follows the agent's answer rate
// (stream-schedule.ts plainReadLimit, set by watch.ts every second).

export interface ReadGateStats {
  readonly limit: number;
  /** the highest limit set so far */
  readonly peakLimit: number;
  readonly inFlight: number;
  /** the most plain reads in flight at once */
  readonly peak: number;
  /** reads waiting to start */
  readonly waiting: number;
}

export class ReadGate {
  #limit: number;
  #peakLimit: number;
  #inFlight = 0;
  #peak = 0;
  /** waiting readers, first come first served (a Set iterates in insertion order) */
  readonly #waiting = new Set<() => void>();

  constructor(limit: number) {
    this.#limit = Math.max(1, Math.floor(limit));
    this.#peakLimit = this.#limit;
  }

  get limit(): number {
    return this.#limit;
  }

  /** A new limit; a higher one admits waiting reads at once, a lower one lets the reads in flight finish. */
  setLimit(limit: number): void {
    this.#limit = Math.max(1, Math.floor(limit));
    if (this.#limit > this.#peakLimit) this.#peakLimit = this.#limit;
    while (this.#inFlight < this.#limit && this.#waiting.size > 0) this.#admitNext();
  }

  /**
   * Resolves with the function that ends this read (calling it again does nothing) once the read may
   * start, or with undefined when `signal` aborts first.
   */
  enter(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (signal.aborted) return Promise.resolve(undefined);
    if (this.#inFlight < this.#limit && this.#waiting.size === 0) return Promise.resolve(this.#start());
    return new Promise((resolve) => {
      const admit = () => {
        signal.removeEventListener('abort', onAbort);
        this.#waiting.delete(admit);
        resolve(this.#start());
      };
      const onAbort = () => {
        this.#waiting.delete(admit);
        resolve(undefined);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiting.add(admit);
    });
  }

  stats(): ReadGateStats {
    return { limit: this.#limit, peakLimit: this.#peakLimit, inFlight: this.#inFlight, peak: this.#peak, waiting: this.#waiting.size };
  }

  #start(): () => void {
    this.#inFlight++;
    if (this.#inFlight > this.#peak) this.#peak = this.#inFlight;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#inFlight--;
      if (this.#inFlight < this.#limit) this.#admitNext();
    };
  }

  #admitNext(): void {
    const next = this.#waiting.values().next();
    if (!next.done) next.value();
  }
}
