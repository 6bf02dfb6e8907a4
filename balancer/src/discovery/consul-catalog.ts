// Consul catalog watcher: one blocking query on /v1/catalog/services plus one per service on
// /v1/health/service/<name>, started and stopped as services come and go. Every answer is only a
// hint: the per-service instance lists are compared by content, a burst of changes is coalesced in
// a short window (latest wins) and a snapshot is emitted only when its content differs from the last
// one. Errors back off with jitter per watcher; the last good data of a failing watcher is kept.
import type pino from 'pino';
import { backoffDelay, sleep, type BackoffPolicy, DEFAULT_BACKOFF } from '../../../common/backoff.js';
import { canonicalJson } from '../routing/table-version.js';
import type { CatalogInstance, CatalogSnapshot } from '../routing/types.js';
import { blockingGet, type ConsulEndpoint } from './blocking-query.js';
import { toInstances } from './health-entries.js';

export interface CatalogWatcherOptions {
  readonly endpoint: ConsulEndpoint;
  /** blocking query wait */
  readonly waitMs: number;
  /** minimum time between the starts of two queries of one watcher */
  readonly minQueryIntervalMs: number;
  /** coalescing window: the first change opens it, the snapshot is emitted when it closes */
  readonly debounceMs: number;
  /** only these services; undefined = all (except "consul" itself, which is never proxied unless listed) */
  readonly services?: readonly string[];
  readonly backoff?: BackoffPolicy;
  readonly logger: pino.Logger;
  readonly random?: () => number;
  readonly now?: () => number;
  /**
   * Before the first snapshot, how long a service whose health query keeps failing may hold it back
   * (default 5 s, the time the primary waits at start); after that it is left out until it answers.
   * Without a bound one failing query (e.g. refused beyond the agent's http_max_conns_per_client)
   * kept every Consul change out forever.
   */
  readonly startGraceMs?: number;
  /** called with every snapshot whose content differs from the previous one */
  readonly onSnapshot: (snapshot: CatalogSnapshot) => void;
  /** reachability changes: false after a failed query, true after the next successful one */
  readonly onReachability?: (reachable: boolean, err?: Error) => void;
}

export interface CatalogWatcher {
  /** resolves with the first complete snapshot (service list + every service's instances) */
  readonly ready: Promise<CatalogSnapshot>;
  /** the last emitted snapshot */
  current(): CatalogSnapshot | undefined;
  reachable(): boolean;
  /** resolves when every loop has exited after the signal aborted */
  readonly done: Promise<void>;
  /** figures for the admin API */
  stats(): { services: number; queries: number; errors: number; emits: number };
}

const WATCH_ALL_EXCEPT = new Set(['consul']);

export function watchConsulCatalog(opts: CatalogWatcherOptions, signal: AbortSignal): CatalogWatcher {
  const log = opts.logger;
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  const policy = opts.backoff ?? DEFAULT_BACKOFF;
  const allow = opts.services ? new Set(opts.services) : undefined;

  /** service -> instances, present only once the service's first health answer arrived */
  const instances = new Map<string, readonly CatalogInstance[]>();
  const serviceWatchers = new Map<string, { controller: AbortController; done: Promise<void> }>();
  let knownServices: Set<string> | undefined;
  let lastEmittedKey: string | undefined;
  let lastEmitted: CatalogSnapshot | undefined;
  let emitTimer: NodeJS.Timeout | undefined;
  let isReachable: boolean | undefined; // unknown until the first answer or failure
  let queries = 0;
  let errors = 0;
  let emits = 0;
  let resolveReady!: (s: CatalogSnapshot) => void;
  const ready = new Promise<CatalogSnapshot>((resolve) => (resolveReady = resolve));
  let readyResolved = false;

  const markReachable = (ok: boolean, err?: Error) => {
    if (ok === isReachable) return;
    isReachable = ok;
    opts.onReachability?.(ok, err);
  };

  /** services whose health query failed before their first answer -> time of that first failure */
  const failedBeforeFirstAnswer = new Map<string, number>();
  const startGraceMs = opts.startGraceMs ?? 5_000;
  // Before the first snapshot every service must have answered (a partial table at start would drop
  // services the dump still has), for startGraceMs at most. Afterwards a new service that keeps
  // failing must not hold back updates of all the others: it is simply left out until it answers.
  const gaveUpOn = (s: string) => {
    const failedAt = failedBeforeFirstAnswer.get(s);
    return failedAt !== undefined && (readyResolved || now() - failedAt >= startGraceMs);
  };
  const complete = () =>
    knownServices !== undefined &&
    [...knownServices].every((s) => instances.has(s) || gaveUpOn(s));

  const emitNow = () => {
    emitTimer = undefined;
    if (signal.aborted || !complete()) return;
    const services: Record<string, readonly CatalogInstance[]> = {};
    for (const name of [...instances.keys()].sort()) services[name] = instances.get(name)!;
    const snapshot: CatalogSnapshot = { services };
    const key = canonicalJson(snapshot);
    if (!readyResolved) {
      readyResolved = true;
      resolveReady(snapshot);
    }
    if (key === lastEmittedKey) return;
    lastEmittedKey = key;
    lastEmitted = snapshot;
    emits++;
    try {
      opts.onSnapshot(snapshot);
    } catch (err) {
      log.error({ err }, 'snapshot listener failed');
    }
  };

  // A fixed window opened by the first change (not extended by later ones) bounds the added latency.
  const scheduleEmit = () => {
    if (emitTimer || signal.aborted) return;
    emitTimer = setTimeout(emitNow, Math.max(0, opts.debounceMs));
  };
  signal.addEventListener('abort', () => {
    if (emitTimer) clearTimeout(emitTimer);
    emitTimer = undefined;
  }, { once: true });

  /** One blocking-query loop: rate limit, query, hand the body over, back off on errors. */
  async function loop<T>(
    name: string,
    path: string,
    params: Record<string, string | undefined>,
    loopSignal: AbortSignal,
    onBody: (body: T) => void,
    onFailure?: () => void,
  ) {
    let index = 0;
    let failures = 0;
    let lastStart = 0;
    while (!loopSignal.aborted) {
      const gap = lastStart + opts.minQueryIntervalMs - now();
      if (gap > 0) await sleep(gap, loopSignal);
      if (loopSignal.aborted) break;
      lastStart = now();
      try {
        queries++;
        const res = await blockingGet<T>(opts.endpoint, path, params, { index, waitMs: opts.waitMs, signal: loopSignal });
        if (loopSignal.aborted) break;
        index = res.index;
        if (failures > 0) log.info({ watcher: name, failures }, 'consul query recovered');
        failures = 0;
        markReachable(true);
        onBody(res.body);
      } catch (err) {
        if (loopSignal.aborted) break;
        errors++;
        const delay = backoffDelay(policy, failures, random);
        const level = failures === 0 ? 'warn' : 'debug';
        log[level]({ watcher: name, err: (err as Error).message, code: (err as { code?: string }).code, retryInMs: delay }, 'consul query failed, keeping last good data');
        failures++;
        index = 0; // after an error, start over: the agent may have restarted with a new index space
        markReachable(false, err as Error);
        onFailure?.();
        await sleep(delay, loopSignal);
      }
    }
  }

  const startService = (name: string) => {
    const controller = new AbortController();
    const loopSignal = AbortSignal.any([signal, controller.signal]);
    const done = loop<unknown>(`health:${name}`, `/v1/health/service/${encodeURIComponent(name)}`, {}, loopSignal, (body) => {
      if (controller.signal.aborted) return;
      const next = toInstances(name, body);
      const prev = instances.get(name);
      if (prev && canonicalJson(prev) === canonicalJson(next)) return;
      instances.set(name, next);
      failedBeforeFirstAnswer.delete(name);
      scheduleEmit();
    }, () => {
      if (instances.has(name)) return;
      if (!failedBeforeFirstAnswer.has(name)) failedBeforeFirstAnswer.set(name, now());
      // every failed retry re-checks: once the start grace is over the others go out without it
      scheduleEmit();
    }).catch((err) => log.error({ err, service: name }, 'service watcher crashed'));
    serviceWatchers.set(name, { controller, done });
  };

  const onServices = (body: Record<string, unknown>) => {
    const names = new Set(
      Object.keys(body ?? {}).filter((n) => (allow ? allow.has(n) : !WATCH_ALL_EXCEPT.has(n))),
    );
    let changed = knownServices === undefined;
    for (const name of names) {
      if (!serviceWatchers.has(name)) {
        startService(name);
        log.debug({ service: name }, 'watching service');
      }
    }
    for (const [name, w] of serviceWatchers) {
      if (names.has(name)) continue;
      w.controller.abort();
      serviceWatchers.delete(name);
      failedBeforeFirstAnswer.delete(name);
      if (instances.delete(name)) changed = true;
      log.debug({ service: name }, 'service gone, watcher stopped');
    }
    knownServices = names;
    // an empty catalog is complete at once; otherwise the health watchers trigger the emit
    if (changed || names.size === 0) scheduleEmit();
  };

  const catalogDone = loop<Record<string, unknown>>('catalog', '/v1/catalog/services', {}, signal, onServices);

  const done = (async () => {
    await catalogDone;
    await Promise.all([...serviceWatchers.values()].map((w) => w.done));
  })();

  return {
    ready,
    current: () => lastEmitted,
    reachable: () => isReachable === true,
    done,
    stats: () => ({ services: serviceWatchers.size, queries, errors, emits }),
  };
}
