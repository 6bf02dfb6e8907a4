// Per-key serial execution with coalescing: one key's tasks never run concurrently and run in call order.
// Because every task re-reads the full state of its key (events are hints), a call made while another
// call for the same key is still waiting to start joins that waiting run instead of adding another one.

interface Waiting {
  readonly task: () => Promise<void>;
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

interface Slot {
  running: boolean;
  /** settles when the running task ends */
  current?: Promise<void>;
  waiting?: Waiting;
}

export class KeyedSerialQueue {
  private readonly slots = new Map<string, Slot>();

  /** Runs task for key after any running task for key; resolves when a run started after this call ends. */
  run(key: string, task: () => Promise<void>): Promise<void> {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { running: false };
      this.slots.set(key, slot);
    }
    if (slot.waiting) return slot.waiting.promise;
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    slot.waiting = { task, promise, resolve, reject };
    if (!slot.running) this.startNext(key, slot);
    return promise;
  }

  /** A task for key is running now. */
  running(key: string): boolean {
    return this.slots.get(key)?.running === true;
  }

  /** Number of keys with a running or waiting task. */
  get activeKeys(): number {
    return this.slots.size;
  }

  /** Resolves when nothing runs or waits (bounded by the caller's own timeout). */
  async idle(): Promise<void> {
    while (this.slots.size > 0) {
      const pending = [...this.slots.values()].flatMap((s) => [s.current, s.waiting?.promise.catch(() => undefined)]);
      await Promise.all(pending);
      await new Promise((r) => setImmediate(r));
    }
  }

  private startNext(key: string, slot: Slot): void {
    const next = slot.waiting;
    if (!next) {
      this.slots.delete(key);
      return;
    }
    slot.waiting = undefined;
    slot.running = true;
    slot.current = (async () => {
      try {
        await next.task();
        next.resolve();
      } catch (err) {
        next.reject(err);
      } finally {
        slot.running = false;
        slot.current = undefined;
        this.startNext(key, slot);
      }
    })();
  }
}
