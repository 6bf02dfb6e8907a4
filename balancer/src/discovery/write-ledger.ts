// Which Consul writes a catalog index move covered, and which of them discovery has accounted for.
// Consul numbers every write with one raft index, and one agent write touches at most one service
// instance (a registration with its checks, a deregistration, a check update). A /v1/catalog/services
// answer that moves from P to I may cover several writes: a deregistration of a quiet service and a
// registration elsewhere can arrive in one answer, and reading the second must not make the first look
// explained. So a move is explained only when every index in (P, I] is: named by an answer we read
// (an instance's or check's CreateIndex/ModifyIndex, or a service answer's own index, its tombstone),
// or credited to a change the catalog answer shows by itself (a service name gone).
// Pure bookkeeping, no I/O.

/** Past this many indexes in one window the ledger stops counting and answers "too many". */
export const MAX_WINDOW = 4096;
/** Attributed indexes kept at most (a bound on memory: beyond it the oldest window is given up). */
const MAX_ATTRIBUTED = 65_536;

export class WriteLedger {
  /** every write at or below this index is accounted for */
  #coveredTo = 0;
  readonly #attributed = new Set<number>();

  get coveredTo(): number {
    return this.#coveredTo;
  }

  /** The first catalog answer (or a restart): everything up to `index` is the baseline. */
  reset(index: number): void {
    this.#coveredTo = Math.max(0, index);
    this.#attributed.clear();
  }

  /** Indexes named by an answer that discovery has applied. */
  attribute(indexes: Iterable<number>): void {
    for (const i of indexes) if (i > this.#coveredTo) this.#attributed.add(i);
    if (this.#attributed.size > MAX_ATTRIBUTED) this.#attributed.clear();
  }

  /** How many indexes in (coveredTo, target] nothing accounts for; MAX_WINDOW + 1 when the window is larger. */
  unattributed(target: number): number {
    if (target - this.#coveredTo > MAX_WINDOW) return MAX_WINDOW + 1;
    let open = 0;
    for (let i = this.#coveredTo + 1; i <= target; i++) if (!this.#attributed.has(i)) open++;
    return open;
  }

  /** The window up to `target` is explained (or re-read): move the baseline, forget what it held. */
  close(target: number): void {
    if (target <= this.#coveredTo) return;
    this.#coveredTo = target;
    for (const i of this.#attributed) if (i <= target) this.#attributed.delete(i);
  }
}
