// Which Consul writes a catalog index move covered, and what discovery knows about each of them.
// Consul numbers every raft write with one index, and most of them are no service write at all (KV,
// sessions, coordinates, ACLs, check updates): /v1/catalog/services wakes only for a write to the
// services table, and answers that table's index, but the move from P to I also spans every other
// write in (P, I). What is certain (agent/consul/state/catalog.go):
// - I itself is a services-table write (the table's max index), and one answer may cover several;
// - an index an instance of a read names (its CreateIndex/ModifyIndex, a check's, the node's) is a write
//   discovery has seen whole: a registration or check update touches one service (a node check several,
//   which the checks signal follows per node);
// - an index a read names only as its own X-Consul-Index is a deletion (or the global extinction index of
//   a service that no longer exists), and one deletion may cover many services: deleteNodeTxn removes
//   every service of a node at one index.
// So a move is explained outright only when every index in (P, I] is one an instance named; otherwise
// the summary must be read (catalog-summary.ts), and the catalog answers' own indexes must each be named
// by some read once the summary's re-reads are done, or the services not read since are re-read.
// Pure bookkeeping, no I/O.

/** Past this many indexes in one window the ledger stops counting and answers "too many". */
export const MAX_WINDOW = 4096;
/** Named indexes kept at most (a bound on memory: beyond it the oldest window is given up). */
const MAX_NAMED = 65_536;

/** How a read named an index: by an instance, check or node it carries, or only as the read's own index. */
export type Naming = 'instance' | 'read';

export class WriteLedger {
  /** every write at or below this index is accounted for */
  #coveredTo = 0;
  readonly #byInstance = new Set<number>();
  readonly #byRead = new Set<number>();
  /** indexes /v1/catalog/services answered with in the window: each a services-table write */
  readonly #answers = new Set<number>();

  get coveredTo(): number {
    return this.#coveredTo;
  }

  /** The first catalog answer (or a restart): everything up to `index` is the baseline. */
  reset(index: number): void {
    this.#coveredTo = Math.max(0, index);
    this.#byInstance.clear();
    this.#byRead.clear();
    this.#answers.clear();
  }

  /** Indexes named by an answer that discovery has applied. */
  attribute(indexes: Iterable<number>, naming: Naming = 'instance'): void {
    const into = naming === 'instance' ? this.#byInstance : this.#byRead;
    for (const i of indexes) if (i > this.#coveredTo) into.add(i);
    if (this.#byInstance.size + this.#byRead.size > MAX_NAMED) {
      this.#byInstance.clear();
      this.#byRead.clear();
    }
  }

  /** A /v1/catalog/services answer's own index (a services-table write). */
  noteAnswer(index: number): void {
    if (index > this.#coveredTo) this.#answers.add(index);
  }

  /** How many indexes in (coveredTo, target] nothing names; MAX_WINDOW + 1 when the window is larger. */
  unattributed(target: number): number {
    return this.#count(target, (i) => !this.#byInstance.has(i) && !this.#byRead.has(i));
  }

  /** The highest index in (coveredTo, target] nothing names (0 when there is none): a read that started
   * after it was current reflects every write a gap of the window may hide. */
  lastUnattributed(target: number): number {
    if (target - this.#coveredTo > MAX_WINDOW) return target;
    for (let i = target; i > this.#coveredTo; i--) if (!this.#byInstance.has(i) && !this.#byRead.has(i)) return i;
    return 0;
  }

  /** How many indexes in (coveredTo, target] no instance names (deletions, writes nothing read, other writes). */
  notByInstance(target: number): number {
    return this.#count(target, (i) => !this.#byInstance.has(i));
  }

  /** The catalog answers' own indexes in (coveredTo, target] that no read names at all. */
  answersUnnamed(target: number): number[] {
    const out: number[] = [];
    for (const i of this.#answers) if (i <= target && !this.#byInstance.has(i) && !this.#byRead.has(i)) out.push(i);
    return out.sort((a, b) => a - b);
  }

  #count(target: number, open: (i: number) => boolean): number {
    if (target - this.#coveredTo > MAX_WINDOW) return MAX_WINDOW + 1;
    let n = 0;
    for (let i = this.#coveredTo + 1; i <= target; i++) if (open(i)) n++;
    return n;
  }

  /** The window up to `target` is explained (or re-read): move the baseline, forget what it held. */
  close(target: number): void {
    if (target <= this.#coveredTo) return;
    this.#coveredTo = target;
    for (const set of [this.#byInstance, this.#byRead, this.#answers]) for (const i of set) if (i <= target) set.delete(i);
  }
}
