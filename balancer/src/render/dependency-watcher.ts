// Keeps one blocking-query loop per dependency the templates currently need. A loop reports a value
// only when its content changed (a blocking query's return is no proof of change), backs off with
// full jitter on errors, and stops on abort or when the dependency is no longer needed.
import type pino from 'pino';
import { sleep } from '../../../common/backoff.js';
import type { ConsulEndpoint } from '../discovery/blocking-query.js';
import { fetchDependency, type FetchOptions, type FetchResult } from './consul-fetch.js';
import { depKey, type Dependency, type DependencyValue } from './dependencies.js';

export interface DependencyWatcherOptions {
  readonly endpoint: ConsulEndpoint;
  readonly logger: pino.Logger;
  readonly signal: AbortSignal;
  /** Consul `wait` of each blocking query; default 60 s */
  readonly blockingWaitMs?: number;
  /** first error backoff; doubles per consecutive error up to maxBackoffMs; default 250 ms */
  readonly baseBackoffMs?: number;
  /** default 10 s */
  readonly maxBackoffMs?: number;
  /** minimum time between two queries of one dependency (rate limit); default 20 ms */
  readonly minIntervalMs?: number;
  readonly random?: () => number;
  /** injectable for tests */
  readonly fetch?: (endpoint: ConsulEndpoint, dep: Dependency, opts: FetchOptions) => Promise<FetchResult>;
  /** called with a dependency's new value whenever its content changed (and on its first answer) */
  readonly onValue: (key: string, value: DependencyValue) => void;
  /** called on a failed query (after logging), e.g. for status */
  readonly onError?: (key: string, err: Error) => void;
}

interface Loop {
  readonly dep: Dependency;
  readonly abort: AbortController;
  lastJson?: string;
}

export class DependencyWatcher {
  private readonly loops = new Map<string, Loop>();
  private readonly log: pino.Logger;

  constructor(private readonly opts: DependencyWatcherOptions) {
    this.log = opts.logger.child({ component: 'render-watcher' });
  }

  /** Dependencies being watched, by key. */
  keys(): string[] {
    return [...this.loops.keys()];
  }

  /** Dependencies being watched. */
  dependencies(): Dependency[] {
    return [...this.loops.values()].map((l) => l.dep);
  }

  /** Watch exactly `deps`: start loops for new ones, stop loops for ones no longer listed. */
  set(deps: Iterable<Dependency>): { added: string[]; removed: string[] } {
    const wanted = new Map<string, Dependency>();
    for (const d of deps) wanted.set(depKey(d), d);
    const added: string[] = [];
    const removed: string[] = [];
    for (const [key, loop] of this.loops) {
      if (!wanted.has(key)) {
        loop.abort.abort();
        this.loops.delete(key);
        removed.push(key);
      }
    }
    if (this.opts.signal.aborted) return { added, removed };
    for (const [key, dep] of wanted) {
      if (this.loops.has(key)) continue;
      const loop: Loop = { dep, abort: new AbortController() };
      this.loops.set(key, loop);
      added.push(key);
      void this.run(key, loop).catch((err: unknown) => this.log.error({ err, dep: key }, 'watch loop crashed'));
    }
    return { added, removed };
  }

  stop(): void {
    for (const loop of this.loops.values()) loop.abort.abort();
    this.loops.clear();
  }

  private async run(key: string, loop: Loop): Promise<void> {
    const signal = AbortSignal.any([this.opts.signal, loop.abort.signal]);
    const fetch = this.opts.fetch ?? fetchDependency;
    const waitMs = this.opts.blockingWaitMs ?? 60_000;
    const base = this.opts.baseBackoffMs ?? 250;
    const max = this.opts.maxBackoffMs ?? 10_000;
    const minInterval = this.opts.minIntervalMs ?? 20;
    const random = this.opts.random ?? Math.random;
    let index = 0;
    let failures = 0;
    while (!signal.aborted) {
      const started = Date.now();
      try {
        const r = await fetch(this.opts.endpoint, loop.dep, { index, waitMs, signal });
        if (signal.aborted) return;
        if (failures > 0) this.log.info({ dep: key, failures }, 'consul query recovered');
        failures = 0;
        index = r.index;
        const json = JSON.stringify(r.value);
        if (json !== loop.lastJson) {
          loop.lastJson = json;
          this.opts.onValue(key, r.value);
        }
        const elapsed = Date.now() - started;
        if (elapsed < minInterval) await sleep(minInterval - elapsed, signal);
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        // Full jitter: spreads retries of many loops after an outage.
        const delay = Math.round(random() * Math.min(max, base * 2 ** Math.min(failures - 1, 16)));
        this.log.warn({ dep: key, err: (err as Error).message, code: (err as { code?: string }).code, failures, retryInMs: delay }, 'consul query failed');
        this.opts.onError?.(key, err as Error);
        index = 0;
        await sleep(delay, signal);
      }
    }
  }
}
