// Consul catalog watcher on a connection budget: whatever the number of services, at most
// `budget.maxConns` connections to the agent.
//
// Three blocking queries are change signals, each holding one connection:
// - /v1/catalog/services: service names and tags; it wakes on every write to the services table (an
//   instance registered, changed or removed, a node leaving) and answers that table's index, compared
//   canonically (Consul lists tags in Go map order, another on every answer);
// - /v1/health/state/any?filter=Status != "passing": every non-passing check (registrations start
//   critical, health flaps, TTL expiry, maintenance, a failed node's serfHealth); each entry names its
//   service or node. An agent that answers the filter 400 gets state/critical + state/warning instead.
// A service a signal names is re-read with one plain GET /v1/health/service/<name>; the reads share the
// rest of the budget (bounded concurrency, adaptive on 429s).
//
// What a catalog move covers is not what it shows (write-ledger.ts, from agent/consul/state/catalog.go):
// the move from P to I spans every raft write in (P, I] — KV, sessions, coordinates, ACLs, check
// updates, most of them no catalog change — and I itself is a services-table write. A read names a
// write whole when one of its instances (or checks, or the node) carries that index: a registration or
// check update touches one service. A read that names an index only as its own X-Consul-Index names a
// deletion, and one deletion may remove instances of many services (deleteNodeTxn: a node leaving, all
// its services at one index; a name gone answers the global service_last_extinction index). So
// (explain-step.ts, a pure decision):
// - every index of the move named by an instance: what those reads show is current (a registration
//   with checks shows after 3 requests), the sweep below follows;
// - else: first the service whose membership changed last (a deploy's next change), then the catalog
//   summary (catalog-summary.ts: every service's instance count and nodes, one request), re-reading the
//   services whose count or nodes differ: a node leave re-reads every service it had;
// - once those reads are done, what is left is either deletions a read named (the summary counted
//   them: done) or indexes no read names. Such a gap is KV/coordinate noise or a write the summary
//   cannot see (one instance out and another in inside one answer, an ID re-registered on another port,
//   no check to name it), and on plain HTTP nothing tells them apart: after 50 ms for the checks signal,
//   every service not read since the gap is re-read (a rescan). That is the price of exactness under
//   noise; it is bounded: one rescan at a time (a gap during one queues at most one more, which
//   re-reads only what the first read before the gap), behind every read a signal names, in at most half
//   the read share.
// - and even a window every index of which a read named is followed by that rescan (explain-step.ts
//   `verify`): one index may write several services (a /v1/txn: one instance moved to another port,
//   count kept, and an instance of another service added, which a read names at that index), and
//   nothing but a read of each tells which; it re-reads only services whose last read began before the
//   window's end, and folds under churn into one background sweep. A sweep read (and a gap rescan's) is a probe: the same
//   GET filtered to match no instance answers `[]` with the service's own index (follower-core.ts
//   SWEEP_PROBE_FILTER says why that index is enough); only a service whose index moved is read in full.
// A third signal, /v1/catalog/nodes, follows node writes: a node re-registered with a new address
// (ensureNodeTxn) moves the node's and its services' indexes but not the services table's, so
// /v1/catalog/services does not wake, yet every instance without a Service.Address moves; a node whose
// row changes re-reads its services. The periodic resync (default 5 min) stays as a safety net.
// Why not one blocking query per service: past the agent's 200 connections per client the agent
// refuses them. Why not /v1/health/state/any: it lists every check of the catalog on every change.
//
// Answers are compared per service by content; a burst of changes is coalesced in a short window
// (latest wins); every emit says which services changed so the table is rebuilt only for them.
//
// Every decision above is follower-core.ts's (pure: events in, commands out, scenario-table tested).
// This file is the shell around it: the HTTP requests and their signal loops (backoff, rate limit,
// blocking index), the connection budget, the timers and the clock, the snapshot emitter and the stats.
import { setMaxListeners } from 'node:events';
import type pino from 'pino';
import { backoffDelay, sleep, type BackoffPolicy, DEFAULT_BACKOFF } from '../../../common/backoff.js';
import type { CatalogSnapshot } from '../routing/types.js';
import { blockingGet, isOverBudget, type ConsulEndpoint } from './blocking-query.js';
import { CATALOG_SUMMARY_PATH } from './catalog-summary.js';
import { ConsulBudget, DEFAULT_CONSUL_MAX_CONNS } from './consul-budget.js';
import { FollowerCore, SWEEP_PROBE_FILTER, type CoreTimer, type FollowerCommand, type FollowerEvent } from './follower-core.js';
import { DEFAULT_POLL_MS, pollDelay } from './watch-slot.js';
import { SnapshotEmitter } from './snapshot-emitter.js';

export { canonicalServicesText } from './follower-core.js';

export interface CatalogWatcherOptions {
  readonly endpoint: ConsulEndpoint;
  /** blocking query wait */
  readonly waitMs: number;
  /** minimum time between the starts of two queries of one signal loop */
  readonly minQueryIntervalMs: number;
  /** coalescing window: the first change opens it, the snapshot is emitted when it closes */
  readonly debounceMs: number;
  /** only these services; undefined = all (except "consul" itself, which is never proxied unless listed) */
  readonly services?: readonly string[];
  /** without `services`: "consul" too (templates list every service, as consul-template does) */
  readonly everyService?: boolean;
  readonly backoff?: BackoffPolicy;
  readonly logger: pino.Logger;
  readonly random?: () => number;
  readonly now?: () => number;
  /**
   * Before the first snapshot, how long a service whose health read keeps failing may hold it back
   * (default 5 s, the time the primary waits at start); after that it is left out until it answers.
   */
  readonly startGraceMs?: number;
  /** the connection budget (shared with the renderer); default: a private one of maxConns */
  readonly budget?: ConsulBudget;
  /** used when no budget is given (--consul-max-conns, default 16) */
  readonly maxConns?: number;
  /** full re-read of every service at this period (safety net); 0 = never; default 5 min */
  readonly resyncMs?: number;
  /** deadline of one plain read; default 30 s */
  readonly readTimeoutMs?: number;
  /** called with every snapshot whose content differs from the previous one */
  readonly onSnapshot: (snapshot: CatalogSnapshot) => void;
  /** the same event with the names of the services that changed (added, removed or new instances) */
  readonly onChange?: (snapshot: CatalogSnapshot, changed: ReadonlySet<string>) => void;
  /** reachability changes: false after a failed query, true after the next successful one */
  readonly onReachability?: (reachable: boolean, err?: Error) => void;
  /** a service's answer had bad instances (skipped) or was unusable (last good kept) */
  readonly onWarning?: (service: string, warning: string) => void;
}

export interface CatalogWatcherStats {
  readonly services: number;
  /** requests sent (signals + reads) */
  readonly queries: number;
  readonly reads: number;
  readonly errors: number;
  readonly emits: number;
  /** full re-reads triggered by an unexplained catalog change or the periodic resync */
  readonly rescans: number;
  /** reads made by the sweeps behind explained windows (explain-step.ts `verify`), a rescan reason of their own */
  readonly sweepReads?: number;
  /** rescan reads (the sweep's and a gap's) made as probes (the service's index only, an empty answer), and the probes whose index had moved (then read in full) */
  readonly sweepProbes?: number;
  readonly sweepProbesChanged?: number;
  /** why each rescan started (reason -> count) */
  readonly rescanReasons: Readonly<Record<string, number>>;
  /** catalog summary reads (a catalog move no signal explained) */
  readonly summaries: number;
  /** false once the agent refused the catalog summary (then unexplained moves rescan) */
  readonly summaryUsable: boolean;
  /** catalog moves whose unnamed indexes were all deletions the summary counted */
  readonly deletionsCounted: number;
  /** rescans asked for while one was under way, folded into the one queued behind it */
  readonly rescansCoalesced: number;
  readonly bodyBytes: number;
  /** answers that were unusable for a service (its last good instances kept) */
  readonly unusableAnswers: number;
  /** 429s and bare closes from the agent (over budget) */
  readonly throttled: number;
  readonly budget: ReturnType<ConsulBudget['stats']>;
  /** requests sent and not yet answered (the blocking signals at rest) */
  readonly outstanding: number;
  /** nothing to do until Consul answers a signal: no read pending, no change being explained or emitted */
  readonly settled: boolean;
  /** the agent answered the filtered checks query 400: state/critical and state/warning are followed instead */
  readonly checksFilterRefused: boolean;
  /** change signals replaced by a fallback (counted once each) */
  readonly signalFallbacks: number;
  /** the indexes the two signals last answered with */
  /** (nodes: the index mode's nodes signal) */
  readonly indexes: { readonly catalog: number; readonly checks: number; readonly nodes?: number };
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
  stats(): CatalogWatcherStats;
  /** service names of the last /v1/catalog/services answer (after the filter) */
  serviceNames(): ReadonlySet<string>;
  /** a service's tags as /v1/catalog/services lists them (union over its instances) */
  tagsOf(name: string): readonly string[];
}

/** catalog services and non-passing checks; the nodes signal reserves its own slot when it may */
const SIGNALS = 2;
/** below this budget the nodes signal polls (node writes are rare; a small budget's slots go to the KV watches) */
const NODES_SIGNAL_MIN_CONNS = 8;
/** the non-passing checks: critical and warning in one query (Consul 1.4+ filter) */
export const NON_PASSING_CHECKS_PATH = '/v1/health/state/any';
export const NON_PASSING_CHECKS_FILTER = 'Status != "passing"';

export function watchConsulCatalog(opts: CatalogWatcherOptions, outerSignal: AbortSignal): CatalogWatcher {
  const log = opts.logger;
  // one internal signal linked once to the caller's: every read and sleep listens on it (many at once
  // by design, so the listener warning is off for it alone)
  const lifetime = new AbortController();
  setMaxListeners(0, lifetime.signal);
  const signal = lifetime.signal;
  if (outerSignal.aborted) lifetime.abort(outerSignal.reason);
  else outerSignal.addEventListener('abort', () => lifetime.abort(outerSignal.reason), { once: true });
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  const policy = opts.backoff ?? DEFAULT_BACKOFF;
  const ownsBudget = opts.budget === undefined;
  const budget = opts.budget ?? new ConsulBudget({ maxConns: opts.maxConns ?? DEFAULT_CONSUL_MAX_CONNS, random, now });
  const endpoint: ConsulEndpoint = { ...opts.endpoint, dispatcher: opts.endpoint.dispatcher ?? budget.dispatcher };
  const reserved = budget.reserve(SIGNALS);
  const nodesReserved = reserved >= SIGNALS && budget.maxConns >= NODES_SIGNAL_MIN_CONNS ? budget.reserve(1) : 0;
  let extraReserved = 0;
  const readTimeoutMs = opts.readTimeoutMs ?? 30_000;

  const core = new FollowerCore({ services: opts.services, everyService: opts.everyService, stale: endpoint.stale === true, startGraceMs: opts.startGraceMs ?? 5_000 });
  const emitter: SnapshotEmitter = new SnapshotEmitter({
    debounceMs: opts.debounceMs, entries: core.entries, complete: () => core.complete(now()), logger: log, signal,
    onSnapshot: (snapshot) => {
      // the changed services went out with it (and the first snapshot no longer waits for anyone)
      void feed({ kind: 'emitted' });
      opts.onSnapshot(snapshot);
    },
    onChange: opts.onChange,
  });

  let isReachable: boolean | undefined;
  let queries = 0;
  let reads = 0;
  let errors = 0;
  let summaries = 0;
  /** body bytes of the signals and the summary (the core counts its service reads') */
  let signalBytes = 0;
  let outstanding = 0;
  /** service reads not yet settled (the end waits for them) */
  let readsInFlight = 0;
  const timers = new Map<CoreTimer, NodeJS.Timeout>();
  const retryTimers = new Map<string, NodeJS.Timeout>();
  let resyncTimer: NodeJS.Timeout | undefined;

  const markReachable = (ok: boolean, err?: Error) => {
    if (ok === isReachable) return;
    isReachable = ok;
    opts.onReachability?.(ok, err);
  };

  /** Hands one event to the core and does what it says, in order. */
  function feed(event: FollowerEvent): void {
    if (signal.aborted) return;
    const s = budget.stats();
    const commands = core.step(event, { now: now(), freeReadSlots: budget.freeReadSlots(), readLimit: s.readLimit, pauseLeftMs: budget.pauseLeftMs() });
    for (const c of commands) run(c);
  }

  function run(c: FollowerCommand): void {
    switch (c.kind) {
      case 'read':
        readService(c.service);
        return;
      case 'probe':
        probeService(c.service);
        return;
      case 'read-summary':
        readSummary();
        return;
      case 'set-timer': {
        const old = timers.get(c.timer);
        if (old) clearTimeout(old);
        const ms = 'ms' in c ? c.ms : backoffDelay(policy, c.backoffAttempt, random);
        timers.set(c.timer, setTimeout(() => {
          timers.delete(c.timer);
          feed({ kind: 'timer', timer: c.timer });
        }, ms));
        return;
      }
      case 'clear-timer': {
        const t = timers.get(c.timer);
        if (t) clearTimeout(t);
        timers.delete(c.timer);
        return;
      }
      case 'retry-read': {
        const delay = backoffDelay(policy, c.attempt, random);
        log[c.attempt === 0 ? 'warn' : 'debug']({ service: c.service, err: c.message, code: c.code, retryInMs: delay }, 'consul read failed, keeping last good data');
        const timer = setTimeout(() => {
          retryTimers.delete(c.service);
          feed({ kind: 'retry-due', service: c.service });
        }, delay);
        timer.unref();
        retryTimers.set(c.service, timer);
        return;
      }
      case 'cancel-retry': {
        const t = retryTimers.get(c.service);
        if (t) clearTimeout(t);
        retryTimers.delete(c.service);
        return;
      }
      case 'changed':
        emitter.changed(c.service);
        return;
      case 'emit-soon':
        emitter.schedule();
        return;
      case 'warning':
        log.warn({ service: c.service, warning: c.warning }, 'consul answer warning');
        opts.onWarning?.(c.service, c.warning);
        return;
      case 'log':
        log[c.level](c.fields, c.msg);
        return;
    }
  }

  /** One plain GET of a service's health; the core learns its answer or its failure. */
  function readService(name: string): void {
    readsInFlight++;
    // budget.read takes its slot at once when one is free (the core counted it so)
    budget.read(signal, () => {
      queries++;
      reads++;
      outstanding++;
      return blockingGet<unknown>(endpoint, `/v1/health/service/${encodeURIComponent(name)}`, {}, { index: 0, waitMs: opts.waitMs, signal, timeoutMs: readTimeoutMs })
        .finally(() => outstanding--);
    }).then((res) => {
      if (signal.aborted) return;
      if (core.follows(name)) markReachable(true);
      feed({ kind: 'read-answered', service: name, index: res.index, body: res.body, bytes: res.bytes });
    }, (err: unknown) => {
      if (signal.aborted) return;
      errors++;
      const e = err as Error & { code?: string };
      markReachable(false, e);
      feed({ kind: 'read-failed', service: name, message: e.message, ...(e.code !== undefined ? { code: e.code } : {}) });
    }).catch((err: unknown) => log.error({ err, service: name }, 'consul read handling failed')).finally(() => readsInFlight--);
  }

  /** The sweep's probe: the same GET filtered to match no instance, for its X-Consul-Index (follower-core.ts SWEEP_PROBE_FILTER). */
  function probeService(name: string): void {
    readsInFlight++;
    budget.read(signal, () => {
      queries++;
      reads++;
      outstanding++;
      return blockingGet<unknown>(endpoint, `/v1/health/service/${encodeURIComponent(name)}`, { filter: SWEEP_PROBE_FILTER }, { index: 0, waitMs: opts.waitMs, signal, timeoutMs: readTimeoutMs })
        .finally(() => outstanding--);
    }).then((res) => {
      if (signal.aborted) return;
      signalBytes += res.bytes;
      if (core.follows(name)) markReachable(true);
      feed({ kind: 'probe-answered', service: name, index: res.index });
    }, (err: unknown) => {
      if (signal.aborted) return;
      errors++;
      const e = err as Error & { status?: number };
      feed({ kind: 'probe-failed', service: name, message: e.message, ...(e.status !== undefined ? { status: e.status } : {}) });
    }).catch((err: unknown) => log.error({ err, service: name }, 'consul probe handling failed')).finally(() => readsInFlight--);
  }

  /** One non-blocking read of the catalog summary (catalog-summary.ts). */
  function readSummary(): void {
    budget.read(signal, () => {
      queries++;
      summaries++;
      outstanding++;
      return blockingGet<unknown>(endpoint, CATALOG_SUMMARY_PATH, {}, { index: 0, waitMs: opts.waitMs, signal, timeoutMs: readTimeoutMs })
        .finally(() => outstanding--);
    }).then((res) => {
      if (signal.aborted) return;
      signalBytes += res.bytes;
      feed({ kind: 'summary-answered', index: res.index, body: res.body });
    }, (err: unknown) => {
      if (signal.aborted) return;
      errors++;
      const e = err as Error & { status?: number; code?: string };
      feed({ kind: 'summary-failed', message: e.message, ...(e.status !== undefined ? { status: e.status } : {}), ...(e.code !== undefined ? { code: e.code } : {}) });
    }).catch((err: unknown) => log.error({ err }, 'consul summary handling failed'));
  }

  // ---- signals ----

  /**
   * One blocking-query loop: pause while over budget, rate limit, query, hand over, back off. Without a
   * reserved slot (`blocking` false: the budget had none left, e.g. a second watcher on a small one) it
   * polls instead: a plain read inside the read share after a jittered pause, never a held connection.
   */
  async function signalLoop<T>(name: string, path: string, onBody: (body: T, index: number, first: boolean, text: string) => void, onFirstFailure?: () => void, params: Record<string, string> = {}, blocking = true, refused?: (err: unknown) => boolean): Promise<void> {
    let index = 0;
    let failuresInRow = 0;
    let lastStart = 0;
    let first = true;
    if (!blocking) log.info({ watcher: name, maxConns: budget.maxConns }, 'no consul connection left for this change signal: polling it in the read share');
    while (!signal.aborted) {
      await budget.waitPause(signal);
      const gap = lastStart + opts.minQueryIntervalMs - now();
      if (gap > 0) await sleep(gap, signal);
      if (!blocking && !first) await sleep(pollDelay(DEFAULT_POLL_MS, random), signal);
      if (signal.aborted) break;
      lastStart = now();
      try {
        queries++;
        const res = blocking
          ? await (outstanding++, blockingGet<T>(endpoint, path, params, { index, waitMs: opts.waitMs, signal }).finally(() => outstanding--))
          // budget.read notes the success or the 429 itself
          : await budget.read(signal, () => blockingGet<T>(endpoint, path, params, { index: 0, waitMs: opts.waitMs, signal, timeoutMs: readTimeoutMs }));
        if (signal.aborted) break;
        signalBytes += res.bytes;
        if (blocking) budget.noteSuccess();
        index = res.index;
        if (failuresInRow > 0) log.info({ watcher: name, failures: failuresInRow }, 'consul query recovered');
        failuresInRow = 0;
        markReachable(true);
        onBody(res.body, res.index, first, res.text);
        first = false;
      } catch (err) {
        if (signal.aborted) break;
        errors++;
        // the agent answered and refused the query itself: the caller follows another one instead
        if (refused?.(err)) return;
        if (blocking && isOverBudget(err)) budget.noteOverBudget();
        const delay = backoffDelay(policy, failuresInRow, random);
        const e = err as Error & { code?: string };
        log[failuresInRow === 0 ? 'warn' : 'debug']({ watcher: name, err: e.message, code: e.code, retryInMs: delay }, 'consul query failed, keeping last good data');
        if (failuresInRow === 0) onFirstFailure?.();
        failuresInRow++;
        index = 0; // after an error, start over: the agent may have restarted with a new index space
        first = true; // and the next answer is a new baseline
        markReachable(false, e);
        await sleep(delay, signal);
      }
    }
  }

  const onChecks = (body: unknown, index: number, first: boolean) => feed({ kind: 'checks', index, body, first });

  /**
   * The checks signal. An agent (or a proxy before it) without the filter language answers the filtered
   * query 400: then critical and warning are followed as two queries (the critical one in this slot, the
   * warning one in a slot of its own if the budget has one left, else polled in the read share).
   */
  const checksLoop = async (blocking: boolean): Promise<void> => {
    const refused = (err: unknown) => (err as { status?: number }).status === 400;
    let wasRefused = false;
    await signalLoop<unknown>('checks', NON_PASSING_CHECKS_PATH, onChecks, () => feed({ kind: 'signal-failed', signal: 'checks' }), { filter: NON_PASSING_CHECKS_FILTER }, blocking, (err) => (wasRefused = refused(err)));
    if (!wasRefused || signal.aborted) return;
    log.warn({ path: NON_PASSING_CHECKS_PATH, filter: NON_PASSING_CHECKS_FILTER }, 'consul refused the checks filter (400): following /v1/health/state/critical and /v1/health/state/warning instead');
    feed({ kind: 'checks-filter-refused' });
    extraReserved = blocking ? budget.reserve(1) : 0;
    const rows: Record<'critical' | 'warning', unknown[]> = { critical: [], warning: [] };
    const onState = (state: 'critical' | 'warning') => (body: unknown, index: number, first: boolean) => {
      rows[state] = Array.isArray(body) ? body : [];
      onChecks([...rows.critical, ...rows.warning], index, first);
    };
    await Promise.all([
      signalLoop<unknown>('checks-critical', '/v1/health/state/critical', onState('critical'), undefined, {}, blocking),
      signalLoop<unknown>('checks-warning', '/v1/health/state/warning', onState('warning'), undefined, {}, extraReserved >= 1),
    ]);
  };

  const scheduleResync = () => {
    const every = opts.resyncMs ?? 300_000;
    if (every <= 0 || signal.aborted) return;
    resyncTimer = setTimeout(() => {
      feed({ kind: 'resync' });
      scheduleResync();
    }, Math.round(every * (0.9 + 0.2 * random())));
    resyncTimer.unref();
  };
  scheduleResync();

  signal.addEventListener('abort', () => {
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
    if (resyncTimer) clearTimeout(resyncTimer);
    for (const t of retryTimers.values()) clearTimeout(t);
    retryTimers.clear();
  }, { once: true });

  const loops = [
    // the slots granted go to the catalog signal first, then to the checks signal
    signalLoop<unknown>('catalog', '/v1/catalog/services', (body, index, first, text) => feed({ kind: 'catalog', index, body, first, text }), undefined, {}, reserved >= 1),
    checksLoop(reserved >= 2),
    signalLoop<unknown>('nodes', '/v1/catalog/nodes', (body, index, first) => feed({ kind: 'nodes', index, body, first }), () => feed({ kind: 'signal-failed', signal: 'nodes' }), {}, nodesReserved >= 1),
  ].map((p) => p.catch((err) => log.error({ err }, 'consul watch loop crashed')));

  const done = (async () => {
    await Promise.all(loops);
    // reads in flight end with the signal
    const deadline = now() + 5_000;
    while (readsInFlight > 0 && now() < deadline) await sleep(10);
    budget.release(reserved + nodesReserved + extraReserved);
    if (ownsBudget) await budget.close();
  })();

  return {
    ready: emitter.ready,
    current: () => emitter.current(),
    reachable: () => isReachable === true,
    done,
    stats: () => {
      const c = core.stats();
      return {
        services: c.services, queries, reads, errors, emits: emitter.emits, rescans: c.rescans, sweepReads: c.sweepReads, sweepProbes: c.sweepProbes, sweepProbesChanged: c.sweepProbesChanged, rescanReasons: c.rescanReasons, summaries, summaryUsable: c.summaryUsable,
        deletionsCounted: c.deletionsCounted, rescansCoalesced: c.rescansCoalesced, bodyBytes: signalBytes + c.readBytes, unusableAnswers: c.unusableAnswers,
        throttled: budget.stats().overBudget, budget: budget.stats(), outstanding,
        checksFilterRefused: c.checksFilterRefused, signalFallbacks: c.signalFallbacks,
        settled: outstanding === reserved + nodesReserved + extraReserved && core.settled() && !emitter.scheduled && emitter.pendingChanges === 0,
        indexes: c.indexes,
      };
    },
    serviceNames: () => core.serviceNames(),
    tagsOf: (name) => core.tagsOf(name),
  };
}
