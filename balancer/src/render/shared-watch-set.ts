// One watch set for every template, on the same Consul connection budget as dynamic discovery.
// consul-template holds one blocking query per dependency, so 300 `service` calls are 300
// connections and the agent refuses what passes its 200 per client IP. Here:
// - `services` and every `service "<name>"` come from one shared catalog watcher (the one dynamic mode
//   uses: two blocking change signals + bounded plain reads of only the services that changed),
//   whatever the number of services and templates;
// - each KV `key` / `prefix` keeps a blocking query of its own, holding a reserved budget slot, for at
//   most a share of the budget; KV dependencies past that share poll inside the read share (a plain
//   read after a jittered pause, discovery/watch-slot.ts), so they can never crowd the catalog reads out.
// A dependency's value is reported only when its content changed, as the per-dependency watcher did.
import { setMaxListeners } from 'node:events';
import type pino from 'pino';
import { sleep } from '../../../common/backoff.js';
import type { ConsulEndpoint } from '../discovery/blocking-query.js';
import type { ConsulBudget } from '../discovery/consul-budget.js';
import { watchConsulCatalog, type CatalogWatcher } from '../discovery/consul-catalog.js';
import { watchConsulPerService } from '../discovery/per-service/watch.js';
import type { ConsulWatchDesign } from '../config.js';
import { DEFAULT_POLL_MS, pollDelay } from '../discovery/watch-slot.js';
import type { CatalogSnapshot } from '../routing/types.js';
import { instanceViews, summaryViews } from './catalog-views.js';
import { fetchDependency, type FetchOptions, type FetchResult } from './consul-fetch.js';
import { depKey, type Dependency, type DependencyValue } from './dependencies.js';
import { DependencyWatcher } from './dependency-watcher.js';

/** What the renderer needs of a watch set (DependencyWatcher has the same surface). */
export interface DependencySource {
  set(deps: Iterable<Dependency>): { added: string[]; removed: string[] };
  keys(): string[];
  dependencies(): Dependency[];
  stop(): void;
}

export interface SharedWatchSetOptions {
  readonly endpoint: ConsulEndpoint;
  readonly budget: ConsulBudget;
  readonly logger: pino.Logger;
  readonly signal: AbortSignal;
  /** blocking query wait (catalog signals and KV); default 60 s */
  readonly waitMs?: number;
  /** default 10 ms */
  readonly minQueryIntervalMs?: number;
  /** coalescing window of catalog changes; default 2 ms */
  readonly debounceMs?: number;
  /** periodic full re-read of the catalog; default 5 min (the index design's) */
  readonly resyncMs?: number;
  /** --consul-watch: the index design (default) or one blocking query per service over HTTP/2 */
  readonly watch?: ConsulWatchDesign;
  /** --consul-ca PEM for the per-service HTTP/2 sessions */
  readonly ca?: string;
  /** KV polling pause for dependencies past the reserved share; default 2 s */
  readonly kvPollMs?: number;
  /** KV error backoff (the per-dependency loops') */
  readonly baseBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly onValue: (key: string, value: DependencyValue) => void;
  readonly onError?: (key: string, err: Error) => void;
}

/** deadline of one poll of a KV dependency inside the read share */
const POLL_TIMEOUT_MS = 10_000;

export class SharedWatchSet implements DependencySource {
  readonly #opts: SharedWatchSetOptions;
  readonly #log: pino.Logger;
  readonly #lifetime = new AbortController();
  readonly #wanted = new Map<string, Dependency>();
  /** last JSON reported per catalog dependency (KV values are compared by their own loop) */
  readonly #lastJson = new Map<string, string>();
  readonly #kv: DependencyWatcher;
  /** KV keys holding a reserved slot */
  readonly #reservedKv = new Set<string>();
  readonly #kvShare: number;
  #catalog: CatalogWatcher | undefined;
  #snapshot: CatalogSnapshot | undefined;
  #pendingDeliver = false;

  constructor(opts: SharedWatchSetOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'render-watch' });
    setMaxListeners(0, this.#lifetime.signal);
    if (opts.signal.aborted) this.#lifetime.abort();
    else opts.signal.addEventListener('abort', () => this.#lifetime.abort(), { once: true });
    // what the catalog leaves: 2 signals, and at least half of the rest stays with reads
    this.#kvShare = Math.max(0, Math.floor((opts.budget.maxConns - 2) / 2));
    const endpoint: ConsulEndpoint = { ...opts.endpoint, dispatcher: opts.endpoint.dispatcher ?? opts.budget.dispatcher };
    this.#kv = new DependencyWatcher({
      endpoint,
      logger: opts.logger,
      signal: this.#lifetime.signal,
      blockingWaitMs: opts.waitMs,
      minIntervalMs: opts.minQueryIntervalMs,
      baseBackoffMs: opts.baseBackoffMs,
      maxBackoffMs: opts.maxBackoffMs,
      fetch: (ep, dep, fo) => this.#fetchKv(ep, dep, fo),
      onValue: opts.onValue,
      onError: opts.onError,
    });
  }

  keys(): string[] {
    return [...this.#wanted.keys()];
  }

  dependencies(): Dependency[] {
    return [...this.#wanted.values()];
  }

  /** the shared catalog's figures (requests, reads, budget), undefined before a catalog dependency */
  catalogStats(): ReturnType<CatalogWatcher['stats']> | undefined {
    return this.#catalog?.stats();
  }

  set(deps: Iterable<Dependency>): { added: string[]; removed: string[] } {
    const next = new Map<string, Dependency>();
    for (const d of deps) next.set(depKey(d), d);
    const added: string[] = [];
    const removed: string[] = [];
    for (const key of this.#wanted.keys()) {
      if (next.has(key)) continue;
      removed.push(key);
      this.#lastJson.delete(key);
    }
    for (const key of next.keys()) if (!this.#wanted.has(key)) added.push(key);
    this.#wanted.clear();
    for (const [k, d] of next) this.#wanted.set(k, d);
    if (this.#lifetime.signal.aborted) return { added, removed };

    const kvDeps = [...next.values()].filter((d) => d.kind === 'key' || d.kind === 'prefix');
    const kvChange = this.#kv.set(kvDeps);
    for (const key of kvChange.removed) {
      if (this.#reservedKv.delete(key)) this.#opts.budget.release(1);
    }
    if (kvDeps.length < next.size) this.#ensureCatalog();
    // values for new catalog dependencies come from what the catalog already holds (after this call)
    if (this.#snapshot && added.some((k) => !k.startsWith('key:') && !k.startsWith('prefix:'))) this.#deliverSoon();
    return { added, removed };
  }

  stop(): void {
    this.#lifetime.abort();
    this.#kv.stop();
    if (this.#reservedKv.size > 0) this.#opts.budget.release(this.#reservedKv.size);
    this.#reservedKv.clear();
  }

  /** resolves when the catalog watcher's loops have exited (after stop or the signal) */
  async closed(): Promise<void> {
    await this.#catalog?.done;
  }

  #ensureCatalog(): void {
    if (this.#catalog) return;
    const o = this.#opts;
    // the same design dynamic mode would use (same CatalogWatcher surface)
    const watch = o.watch === 'per-service' ? watchConsulPerService : watchConsulCatalog;
    this.#log.info({ design: o.watch ?? 'index' }, 'render catalog watch started');
    this.#catalog = watch({
      endpoint: o.endpoint,
      budget: o.budget,
      ca: o.ca,
      waitMs: o.waitMs ?? 60_000,
      minQueryIntervalMs: o.minQueryIntervalMs ?? 10,
      debounceMs: o.debounceMs ?? 2,
      resyncMs: o.resyncMs,
      everyService: true,
      logger: o.logger.child({ component: 'render-discovery' }),
      onSnapshot: () => undefined,
      onChange: (snapshot, changed) => {
        this.#snapshot = snapshot;
        this.#deliver(changed);
      },
      onReachability: (ok, err) => {
        if (!ok && err) o.onError?.('catalog', err);
      },
    }, this.#lifetime.signal);
  }

  #deliverSoon(): void {
    if (this.#pendingDeliver) return;
    this.#pendingDeliver = true;
    queueMicrotask(() => {
      this.#pendingDeliver = false;
      this.#deliver(undefined);
    });
  }

  /**
   * Reports the catalog dependencies whose view changed: those of the changed services, `services`
   * when the list moved, and every one not reported yet. `changed` undefined = look at all of them.
   */
  #deliver(changed: ReadonlySet<string> | undefined): void {
    const snapshot = this.#snapshot;
    const catalog = this.#catalog;
    if (!snapshot || !catalog || this.#lifetime.signal.aborted) return;
    for (const [key, dep] of this.#wanted) {
      let value: DependencyValue;
      if (dep.kind === 'service') {
        if (changed && !changed.has(dep.name) && this.#lastJson.has(key)) continue;
        value = { kind: 'service', value: instanceViews(snapshot.services[dep.name], dep.tag) };
      } else if (dep.kind === 'services') {
        value = { kind: 'services', value: summaryViews(catalog.serviceNames(), (n) => catalog.tagsOf(n)) };
      } else {
        continue;
      }
      const json = JSON.stringify(value.value);
      if (this.#lastJson.get(key) === json) continue;
      this.#lastJson.set(key, json);
      try {
        this.#opts.onValue(key, value);
      } catch (err) {
        this.#log.error({ err, dep: key }, 'dependency listener failed');
      }
    }
  }

  /** A KV query: blocking on a reserved slot while the KV share lasts, else a short poll in the read share. */
  async #fetchKv(endpoint: ConsulEndpoint, dep: Dependency, fo: FetchOptions): Promise<FetchResult> {
    const key = depKey(dep);
    if (!this.#reservedKv.has(key) && this.#reservedKv.size < this.#kvShare && this.#opts.budget.reserve(1) === 1) {
      this.#reservedKv.add(key);
    }
    if (this.#reservedKv.has(key)) return fetchDependency(endpoint, dep, fo);
    // a plain read (no wait: it holds a read slot for a round trip only) after a jittered pause
    if (fo.index > 0) await sleep(pollDelay(this.#opts.kvPollMs ?? DEFAULT_POLL_MS), fo.signal);
    return this.#opts.budget.read(fo.signal, () => fetchDependency(endpoint, dep, { ...fo, index: 0, timeoutMs: POLL_TIMEOUT_MS }));
  }
}
