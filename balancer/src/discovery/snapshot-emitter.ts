// The emitting end of both catalog designs (consul-catalog.ts, per-service/watch.ts): services that
// changed are collected; the first change opens a fixed coalescing window (not extended by later
// ones, which bounds the added latency), and when it closes one snapshot of every service is handed
// to the listeners with the names that changed. The first complete snapshot resolves `ready` and is
// emitted even with nothing marked changed.
import type pino from 'pino';
import type { CatalogInstance, CatalogSnapshot } from '../routing/types.js';

export interface SnapshotEmitterOptions {
  /** the coalescing window */
  readonly debounceMs: number;
  /** the follower's services as last read (name -> its instances) */
  readonly entries: ReadonlyMap<string, { readonly instances: readonly CatalogInstance[] }>;
  /** every followed service has an answer (or was given up on): before that nothing is emitted */
  readonly complete: () => boolean;
  readonly onSnapshot: (snapshot: CatalogSnapshot) => void;
  readonly onChange?: (snapshot: CatalogSnapshot, changed: ReadonlySet<string>) => void;
  readonly logger: pino.Logger;
  /** the follower's lifetime: nothing is emitted after it aborts, and the window's timer is cleared */
  readonly signal: AbortSignal;
}

export class SnapshotEmitter {
  readonly ready: Promise<CatalogSnapshot>;
  #resolveReady!: (s: CatalogSnapshot) => void;
  #readyResolved = false;
  #last: CatalogSnapshot | undefined;
  #timer: NodeJS.Timeout | undefined;
  #emits = 0;
  readonly #changed = new Set<string>();

  constructor(private readonly opts: SnapshotEmitterOptions) {
    this.ready = new Promise<CatalogSnapshot>((resolve) => (this.#resolveReady = resolve));
    opts.signal.addEventListener('abort', () => {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
    }, { once: true });
  }

  /** the first snapshot went out */
  get readyResolved(): boolean {
    return this.#readyResolved;
  }

  /** services marked changed since the last snapshot */
  get pendingChanges(): number {
    return this.#changed.size;
  }

  /** a coalescing window is open */
  get scheduled(): boolean {
    return this.#timer !== undefined;
  }

  get emits(): number {
    return this.#emits;
  }

  current(): CatalogSnapshot | undefined {
    return this.#last;
  }

  /** `name` was added, removed or has other instances: it goes into the next snapshot's changed set. */
  changed(name: string): void {
    this.#changed.add(name);
  }

  /** Opens the window unless one is open. */
  schedule(): void {
    if (this.#timer || this.opts.signal.aborted) return;
    this.#timer = setTimeout(() => this.emitNow(), Math.max(0, this.opts.debounceMs));
  }

  emitNow(): void {
    this.#timer = undefined;
    if (this.opts.signal.aborted || !this.opts.complete()) return;
    if (this.#readyResolved && this.#changed.size === 0) return;
    const services: Record<string, readonly CatalogInstance[]> = {};
    for (const name of [...this.opts.entries.keys()].sort()) services[name] = this.opts.entries.get(name)!.instances;
    const snapshot: CatalogSnapshot = { services };
    const changed = new Set(this.#changed);
    this.#changed.clear();
    if (!this.#readyResolved) {
      this.#readyResolved = true;
      this.#resolveReady(snapshot);
    }
    this.#last = snapshot;
    this.#emits++;
    try {
      this.opts.onSnapshot(snapshot);
      this.opts.onChange?.(snapshot, changed);
    } catch (err) {
      this.opts.logger.error({ err }, 'snapshot listener failed');
    }
  }
}
