// Rescans one at a time: a rescan asked for while one runs is queued (at most one, with the highest
// threshold asked, under the first reason), and starts when the running one has no read left; by then
// the reads the first made after a later gap cover it, so the second re-reads only what the first read
// before (the shell skips a service whose read started after the threshold was current). Pure state,
// no I/O, no timers.

export interface RescanRequest {
  /** a short fixed phrase, counted per reason */
  readonly reason: string;
  /** services whose read started after this index was current are left out */
  readonly threshold: number;
}

export type RescanAsk =
  /** none runs: start this one now */
  | { readonly kind: 'start'; readonly rescan: RescanRequest }
  /** one runs: this one waits behind it; `coalesced` when it was folded into one already waiting */
  | { readonly kind: 'queued'; readonly coalesced: boolean };

export class RescanQueue {
  #running = false;
  #queued: RescanRequest | undefined;

  get running(): boolean {
    return this.#running;
  }

  get queued(): RescanRequest | undefined {
    return this.#queued;
  }

  ask(rescan: RescanRequest): RescanAsk {
    if (!this.#running) {
      this.#running = true;
      return { kind: 'start', rescan };
    }
    const before = this.#queued;
    this.#queued = { reason: before?.reason ?? rescan.reason, threshold: Math.max(before?.threshold ?? 0, rescan.threshold) };
    return { kind: 'queued', coalesced: before !== undefined };
  }

  /** The running rescan has no read left: the one to start next, if any (it is then the running one). */
  finished(): RescanRequest | undefined {
    if (!this.#running) return undefined;
    const next = this.#queued;
    this.#queued = undefined;
    this.#running = next !== undefined;
    return next;
  }
}
