// What the primary has started, in the order it started it, so one list stops it all in reverse:
// the same teardown whether start-up fails half way or the balancer is stopped. A failing step is
// logged and the next one still runs: one part that cannot stop must not keep the others running.
import type pino from 'pino';

export interface StopStep {
  readonly name: string;
  run(): Promise<unknown> | unknown;
}

export class StopList {
  readonly #steps: StopStep[] = [];
  readonly #controller = new AbortController();
  #stopping: Promise<void> | undefined;

  constructor(private readonly log: pino.Logger) {}

  /** aborted first when stopping: every watcher and loop of the primary ends on it */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** `run` is called at stop, after the steps added later than it */
  add(name: string, run: () => Promise<unknown> | unknown): void {
    if (this.#stopping) throw new Error(`stop step "${name}" added while stopping`);
    this.#steps.push({ name, run });
  }

  /** names of the steps, in the order they will run */
  order(): string[] {
    return this.#steps.map((s) => s.name).reverse();
  }

  /** abort, then every step newest first; the same promise however often it is called */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#controller.abort();
      for (const step of [...this.#steps].reverse()) {
        try {
          await step.run();
        } catch (err) {
          this.log.warn({ err, step: step.name }, `stopping ${step.name} failed`);
        }
      }
    })();
    return this.#stopping;
  }
}
