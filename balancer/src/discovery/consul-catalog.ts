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
//   window's end, and folds under churn into one background sweep.
// A third signal, /v1/catalog/nodes, follows node writes: a node re-registered with a new address
// (ensureNodeTxn) moves the node's and its services' indexes but not the services table's, so
// /v1/catalog/services does not wake, yet every instance without a Service.Address moves; a node whose
// row changes re-reads its services. The periodic resync (default 5 min) stays as a safety net.
// Why not one blocking query per service: past the agent's 200 connections per client the agent
// refuses them. Why not /v1/health/state/any: it lists every check of the catalog on every change.
//
// Answers are compared per service by content; a burst of changes is coalesced in a short window
// (latest wins); every emit says which services changed so the table is rebuilt only for them.
import { setMaxListeners } from 'node:events';
import type pino from 'pino';
import { backoffDelay, sleep, type BackoffPolicy, DEFAULT_BACKOFF } from '../../../common/backoff.js';
import { canonicalJson } from '../routing/table-version.js';
import type { CatalogInstance, CatalogSnapshot } from '../routing/types.js';
import { blockingGet, isOverBudget, type ConsulEndpoint } from './blocking-query.js';
import { CATALOG_SUMMARY_PATH, parseCatalogSummary, servicesWithOtherCounts, type ServiceSummary } from './catalog-summary.js';
import { ConsulBudget, DEFAULT_CONSUL_MAX_CONNS } from './consul-budget.js';
import { answerIndexes, parseHealthAnswer } from './health-entries.js';
import { DEFAULT_POLL_MS, pollDelay } from './watch-slot.js';
import { nextExplainStep, VERIFY_REASON } from './explain-step.js';
import { WriteLedger } from './write-ledger.js';
import { RescanQueue, type RescanRequest } from './rescan-queue.js';
import { SnapshotEmitter } from './snapshot-emitter.js';

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

const WATCH_ALL_EXCEPT = new Set(['consul']);
/** how long an unexplained catalog index move waits for the health signals to explain it */
const EXPLAIN_WINDOW_MS = 300;
/** how long a move the summary cannot locate waits for the checks signal before a rescan */
const CHECKS_GRACE_MS = 50;
/** up to this many services, an unexplained change re-reads them all at once (cheaper than waiting) */
const IMMEDIATE_RESCAN_MAX = 32;
/** how many recently changed services an unexplained change re-reads before a full rescan (no summary) */
const RECENT_MAX = 8;
/** with a summary: the last-changed service first (a deploy's deregistration), then the summary */
const RECENT_BEFORE_SUMMARY = 1;
/** summaries per unexplained move (again only when later moves extended it) before a rescan */
const MAX_SUMMARIES_PER_WINDOW = 3;
/** catalog services and non-passing checks; the nodes signal reserves its own slot when it may */
const SIGNALS = 2;
/** below this budget the nodes signal polls (node writes are rare; a small budget's slots go to the KV watches) */
const NODES_SIGNAL_MIN_CONNS = 8;
/** the non-passing checks: critical and warning in one query (Consul 1.4+ filter) */
export const NON_PASSING_CHECKS_PATH = '/v1/health/state/any';
export const NON_PASSING_CHECKS_FILTER = 'Status != "passing"';

interface CheckRow {
  readonly Node?: unknown;
  readonly CheckID?: unknown;
  readonly Status?: unknown;
  readonly ServiceID?: unknown;
  readonly ServiceName?: unknown;
  readonly ModifyIndex?: unknown;
}

/** A /v1/catalog/services answer as text with each service's tags sorted (names sorted too). */
export function canonicalServicesText(body: unknown): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return JSON.stringify(body);
  const record = body as Record<string, unknown>;
  let out = '';
  for (const name of Object.keys(record).sort()) {
    const tags = record[name];
    out += JSON.stringify(name) + ':' + (Array.isArray(tags) ? JSON.stringify([...tags].map(String).sort()) : JSON.stringify(tags ?? null)) + '\n';
  }
  return out;
}

/** The nodes of a /v1/health/service answer's entries (every kind, as the summary counts them). */
function answerNodes(body: unknown): Set<string> {
  const out = new Set<string>();
  if (!Array.isArray(body)) return out;
  for (const e of body as { Node?: { Node?: unknown } }[]) {
    const n = e?.Node?.Node;
    if (typeof n === 'string') out.add(n);
  }
  return out;
}

function sameMembers(a: readonly CatalogInstance[], b: readonly CatalogInstance[]): boolean {
  if (a.length !== b.length) return false;
  const ids = new Set(a.map((i) => `${i.node}\u0000${i.serviceId}`));
  return b.every((i) => ids.has(`${i.node}\u0000${i.serviceId}`));
}

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
  const allow = opts.services ? new Set(opts.services) : undefined;
  const ownsBudget = opts.budget === undefined;
  const budget = opts.budget ?? new ConsulBudget({ maxConns: opts.maxConns ?? DEFAULT_CONSUL_MAX_CONNS, random, now });
  const endpoint: ConsulEndpoint = { ...opts.endpoint, dispatcher: opts.endpoint.dispatcher ?? budget.dispatcher };
  const reserved = budget.reserve(SIGNALS);
  const nodesReserved = reserved >= SIGNALS && budget.maxConns >= NODES_SIGNAL_MIN_CONNS ? budget.reserve(1) : 0;
  const readTimeoutMs = opts.readTimeoutMs ?? 30_000;
  const startGraceMs = opts.startGraceMs ?? 5_000;

  /** service -> its instances and canonical key, present once the service's first answer arrived */
  const entries = new Map<string, { instances: readonly CatalogInstance[]; key: string; node: Set<string>; count: number; nodes: Set<string> }>();
  let known: Set<string> | undefined;
  const tagKeys = new Map<string, string>();
  let catalogIndex = 0;
  /** which writes the catalog moves covered and which the answers read account for */
  const ledger = new WriteLedger();
  let explainTimer: NodeJS.Timeout | undefined;
  /** the catalog index up to which a move waits to be explained (0 = none) */
  let pendingExplain = 0;
  /** per window: recent services tried, summaries read and the index the last one reflected */
  let triedRecent = new Set<string>();
  let windowSummaries = 0;
  let summaryAt = 0;
  let summaryFailures = 0;
  let summaryInFlight = false;
  let summaryUsable = true;
  /** when the pending move began to wait, and the reads its own steps asked for (a guess, the summary's) */
  let windowOpenedAt = 0;
  let windowReads = new Set<string>();
  /** per-service signal rows of the critical and warning lists, and per node for node checks */
  let checkRows: CheckRow[] = [];
  let serviceCheckKeys = new Map<string, string>();
  let nodeCheckKeys = new Map<string, string>();
  let checksSettled = false; // first answer (or failure) of the checks signal
  /** node -> its address and ModifyIndex as /v1/catalog/nodes last listed it */
  let nodeKeys: Map<string, string> | undefined;
  let nodesSettled = false; // first answer (or failure) of the nodes signal
  let nodesIndex = 0;
  /** per service: the highest index its reads are known to reflect (a read started after that index was known) */
  const readCovers = new Map<string, number>();
  /** highest index the check signals answered with: once it reaches a catalog move, they have spoken */
  let checksIndex = 0;

  const dirty = new Set<string>();
  /** reads a rescan asked for: started after every read in `dirty` (a signal's read never waits behind a rescan) */
  const bulk = new Set<string>();
  /** a rescan's reads of services whose read was in flight from before the rescan's threshold */
  const bulkAgain = new Set<string>();
  const inFlight = new Set<string>();
  const again = new Set<string>();
  const retryTimers = new Map<string, NodeJS.Timeout>();
  const failures = new Map<string, number>();
  const failedBeforeFirstAnswer = new Map<string, number>();
  /** names gone from the catalog whose (empty) answer is still to be read for the index it names */
  const gone = new Set<string>();

  let resyncTimer: NodeJS.Timeout | undefined;
  let isReachable: boolean | undefined;
  let queries = 0;
  let reads = 0;
  let errors = 0;
  let rescans = 0;
  let sweepReads = 0;
  /** the reason of the rescan under way */
  let rescanReason = '';
  const rescanReasons: Record<string, number> = {};
  let summaries = 0;
  let deletionsCounted = 0;
  let rescansCoalesced = 0;
  /** one rescan at a time (its reads in `bulk`, `bulkAgain`, `bulkInFlight`), at most one queued behind it */
  const rescanQueue = new RescanQueue();
  let bulkInFlight = 0;
  /** the agent refused the filtered checks query: critical and warning are followed apart */
  let checksFilterRefused = false;
  let signalFallbacks = 0;
  let bodyBytes = 0;
  let unusableAnswers = 0;
  let outstanding = 0;
  let initialReadDone = false;

  const markReachable = (ok: boolean, err?: Error) => {
    if (ok === isReachable) return;
    isReachable = ok;
    opts.onReachability?.(ok, err);
  };

  const gaveUpOn = (s: string): boolean => {
    const failedAt = failedBeforeFirstAnswer.get(s);
    return failedAt !== undefined && (emitter.readyResolved || now() - failedAt >= startGraceMs);
  };
  const complete = (): boolean => known !== undefined && initialReadDone && [...known].every((s) => entries.has(s) || gaveUpOn(s));

  const emitter: SnapshotEmitter = new SnapshotEmitter({ debounceMs: opts.debounceMs, entries, complete: () => complete(), onSnapshot: opts.onSnapshot, onChange: opts.onChange, logger: log, signal });

  // ---- reads: one plain GET per dirty service, bounded by the budget ----

  /** highest index any signal has answered with: a read started now reflects at least that */
  const knownIndex = () => Math.max(catalogIndex, checksIndex, nodesIndex);
  /** `atIndex`: the signal index that asks for the read; a read that covers it is not repeated */
  const markDirty = (name: string, atIndex = Number.POSITIVE_INFINITY) => {
    if (!known?.has(name) && !gone.has(name)) return;
    // (a ?stale read may lag the index the signal saw: then every signal reads)
    if (!endpoint.stale && (readCovers.get(name) ?? 0) >= atIndex) return;
    if (inFlight.has(name)) again.add(name);
    else {
      bulk.delete(name);
      dirty.add(name);
    }
  };
  /** A rescan's read of `name`, unless its read already reflects `atIndex` or one is pending. */
  const markBulk = (name: string, atIndex: number) => {
    if (!endpoint.stale && (readCovers.get(name) ?? 0) >= atIndex) return;
    if (inFlight.has(name)) {
      if (!again.has(name)) bulkAgain.add(name);
    } else if (!dirty.has(name)) bulk.add(name);
  };
  /** a rescan reads in at most half the read share: a read a signal names always finds a slot */
  const bulkShare = () => Math.max(1, Math.floor(budget.stats().readLimit / 2));

  let pumpTimer: NodeJS.Timeout | undefined;
  /** the reads to start, a signal's first, each with the queue it waits in */
  function* pending(): Generator<[string, Set<string>]> {
    for (const name of dirty) yield [name, dirty];
    for (const name of bulk) yield [name, bulk];
  }
  /** Starts reads while the budget has free read slots; the rest wait in `dirty`, not as promises. */
  const pump = () => {
    if (signal.aborted) return;
    const pause = budget.pauseLeftMs();
    if (pause > 0) {
      if (!pumpTimer && (dirty.size > 0 || bulk.size > 0)) {
        pumpTimer = setTimeout(() => {
          pumpTimer = undefined;
          pump();
        }, pause);
      }
      return;
    }
    for (const [name, queue] of pending()) {
      if (budget.freeReadSlots() <= 0) break;
      const fromBulk = queue === bulk;
      if (fromBulk && bulkInFlight >= bulkShare()) break;
      if (inFlight.has(name)) continue;
      queue.delete(name);
      inFlight.add(name);
      if (fromBulk) {
        bulkInFlight++;
        if (rescanReason === VERIFY_REASON) sweepReads++;
      }
      readCovers.set(name, knownIndex());
      void readService(name).finally(() => {
        inFlight.delete(name);
        if (fromBulk) bulkInFlight--;
        if (again.delete(name)) {
          bulkAgain.delete(name);
          dirty.add(name);
        } else if (bulkAgain.delete(name)) bulk.add(name);
        afterRead();
      });
    }
  };

  const afterRead = () => {
    maybeEndRescan();
    if (!initialReadDone && dirty.size === 0 && bulk.size === 0 && inFlight.size === 0) initialReadDone = true;
    if (dirty.size > 0 || bulk.size > 0) pump();
    if (complete()) emitter.schedule();
    if (pendingExplain > 0) checkExplained();
  };

  async function readService(name: string): Promise<void> {
    const t = retryTimers.get(name);
    if (t) {
      clearTimeout(t);
      retryTimers.delete(name);
    }
    try {
      const res = await budget.read(signal, () => {
        queries++;
        reads++;
        outstanding++;
        return blockingGet<unknown>(endpoint, `/v1/health/service/${encodeURIComponent(name)}`, {}, { index: 0, waitMs: opts.waitMs, signal, timeoutMs: readTimeoutMs })
          .finally(() => outstanding--);
      });
      if (signal.aborted) return;
      if (!known?.has(name)) {
        // a name gone: its answer's index is the extinction index, a deletion (maybe of many services)
        if (gone.delete(name)) ledger.attribute([res.index], 'read');
        readCovers.delete(name);
        return;
      }
      bodyBytes += res.bytes;
      markReachable(true);
      if ((failures.get(name) ?? 0) > 0) log.info({ service: name, failures: failures.get(name) }, 'consul read recovered');
      failures.delete(name);
      const parsed = parseHealthAnswer(name, res.body);
      for (const w of parsed.warnings) {
        log.warn({ service: name, warning: w }, 'consul answer warning');
        opts.onWarning?.(name, w);
      }
      if (!parsed.usable) {
        unusableAnswers++;
        if (!entries.has(name) && !failedBeforeFirstAnswer.has(name)) failedBeforeFirstAnswer.set(name, now());
        return;
      }
      failedBeforeFirstAnswer.delete(name);
      // the writes this answer reflects (its own index: the service's latest write, a tombstone too)
      ledger.attribute(answerIndexes(res.body), 'instance');
      // its own index only says the service's latest write is that one: a deletion, which may have
      // removed instances of many services at once (a node leaving)
      ledger.attribute([res.index], 'read');
      const count = Array.isArray(res.body) ? res.body.length : 0;
      const key = canonicalJson(parsed.instances);
      const prev = entries.get(name);
      const nodes = answerNodes(res.body);
      if (prev && prev.key === key) {
        prev.count = count;
        prev.nodes = nodes;
        return;
      }
      entries.set(name, { instances: parsed.instances, key, node: new Set(parsed.instances.map((i) => i.node)), count, nodes });
      emitter.changed(name);
      // only membership changes predict the next unexplained move (a deploy's deregistration follows
      // its registration); health flips would push those services out of the short list
      if (!prev || !sameMembers(prev.instances, parsed.instances)) noteRecent(name);
    } catch (err) {
      if (signal.aborted) return;
      errors++;
      readCovers.delete(name); // a failed read reflects nothing
      const n = failures.get(name) ?? 0;
      failures.set(name, n + 1);
      const e = err as Error & { code?: string };
      if (e.code === 'ERR_CONSUL_BODY_TOO_LARGE') unusableAnswers++;
      if (!entries.has(name) && !failedBeforeFirstAnswer.has(name)) failedBeforeFirstAnswer.set(name, now());
      markReachable(false, e);
      const delay = backoffDelay(policy, n, random);
      log[n === 0 ? 'warn' : 'debug']({ service: name, err: e.message, code: e.code, retryInMs: delay }, 'consul read failed, keeping last good data');
      // retried after its own backoff (over-budget pauses are on top, in the budget)
      const timer = setTimeout(() => {
        retryTimers.delete(name);
        markDirty(name);
        pump();
      }, delay);
      timer.unref();
      retryTimers.set(name, timer);
    }
  }

  /**
   * Re-reads every service whose last read started before `threshold` was current (a read that started
   * after reflects every write up to it). One at a time: asked for while one is under way, it is queued
   * (at most one, with the highest threshold asked) and starts when the first ends, so it re-reads only
   * what the first read before the later gap. `reason`: a short fixed phrase (counted per reason in
   * stats); `detail`: for the log.
   */
  const rescanAll = (reason: string, detail?: Record<string, unknown>, threshold = Number.POSITIVE_INFINITY) => {
    if (!known) return;
    const asked = rescanQueue.ask({ reason, threshold });
    if (asked.kind === 'queued') {
      if (asked.coalesced) rescansCoalesced++;
      return;
    }
    startRescan(asked.rescan, detail);
  };
  const startRescan = ({ reason, threshold }: RescanRequest, detail?: Record<string, unknown>) => {
    if (!known) return;
    rescans++;
    rescanReason = reason;
    rescanReasons[reason] = (rescanReasons[reason] ?? 0) + 1;
    for (const name of known) markBulk(name, threshold);
    const queued = bulk.size + bulkAgain.size;
    // the sweep behind every explained window is routine: logged at debug, like one with nothing to read
    log[queued === 0 || reason === VERIFY_REASON ? 'debug' : 'info']({ reason, ...detail, services: known.size, reads: queued }, 'consul rescan');
    maybeEndRescan();
    pump();
  };
  /** The rescan under way has no read left: the queued one (if any) starts. */
  const maybeEndRescan = () => {
    if (!rescanQueue.running || bulk.size > 0 || bulkAgain.size > 0 || bulkInFlight > 0) return;
    const next = rescanQueue.finished();
    if (next && !signal.aborted) startRescan(next, { queued: true });
  };

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
        bodyBytes += res.bytes;
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

  // ModifyIndex too: any write to a non-passing check (its output, a re-registration) re-reads its service
  const rowKey = (r: CheckRow) => `${String(r.ServiceID ?? '')}\u0000${String(r.CheckID ?? '')}\u0000${String(r.Status ?? '')}\u0000${String(r.ModifyIndex ?? '')}`;

  /** Services (and nodes) whose non-passing checks differ from the previous answer. */
  const onChecks = (body: unknown, index: number, first: boolean) => {
    checkRows = Array.isArray(body) ? (body as CheckRow[]) : [];
    const byService = new Map<string, string[]>();
    const byNode = new Map<string, string[]>();
    for (const r of checkRows) {
      if (typeof r !== 'object' || r === null) continue;
      const svc = typeof r.ServiceName === 'string' ? r.ServiceName : '';
      const target = svc ? byService : byNode;
      const k = svc || String(r.Node ?? '');
      let list = target.get(k);
      if (!list) target.set(k, (list = []));
      list.push(rowKey(r));
    }
    const nextServiceKeys = new Map<string, string>();
    for (const [k, list] of byService) nextServiceKeys.set(k, list.sort().join('\n'));
    const nextNodeKeys = new Map<string, string>();
    for (const [k, list] of byNode) nextNodeKeys.set(k, list.sort().join('\n'));
    if (!first || checksSettled) {
      for (const name of new Set([...nextServiceKeys.keys(), ...serviceCheckKeys.keys()])) {
        if (nextServiceKeys.get(name) !== serviceCheckKeys.get(name)) markDirty(name, index);
      }
      for (const node of new Set([...nextNodeKeys.keys(), ...nodeCheckKeys.keys()])) {
        if (nextNodeKeys.get(node) === nodeCheckKeys.get(node)) continue;
        for (const [name, e] of entries) if (e.node.has(node)) markDirty(name, index);
      }
    }
    serviceCheckKeys = nextServiceKeys;
    nodeCheckKeys = nextNodeKeys;
    if (first) settleChecks();
    pump();
  };

  const settleChecks = () => {
    if (checksSettled) return;
    checksSettled = true;
    maybeInitialRead();
  };

  /**
   * The nodes signal. A node re-registered with another address (an agent back with a new IP) is a
   * node write (ensureNodeTxn): it moves the node's and each of its services' indexes, not the services
   * table's, so /v1/catalog/services does not wake, and no check changes; yet every instance without a
   * Service.Address now has the new address. A node whose row changed (or went) re-reads its services.
   */
  const onNodes = (body: unknown, index: number, first: boolean) => {
    if (index > nodesIndex) nodesIndex = index;
    const next = new Map<string, string>();
    if (Array.isArray(body)) {
      for (const r of body as { Node?: unknown; Address?: unknown; ModifyIndex?: unknown }[]) {
        if (typeof r === 'object' && r !== null && typeof r.Node === 'string') next.set(r.Node, `${String(r.Address ?? '')}\u0000${String(r.ModifyIndex ?? '')}`);
      }
    }
    const previous = nodeKeys;
    nodeKeys = next;
    if (previous && (!first || nodesSettled)) {
      for (const node of new Set([...previous.keys(), ...next.keys()])) {
        if (previous.get(node) === next.get(node)) continue;
        for (const [name, e] of entries) if (e.nodes.has(node) || e.node.has(node)) markDirty(name, index);
      }
    }
    settleNodes();
    pump();
  };
  const settleNodes = () => {
    if (nodesSettled) return;
    nodesSettled = true;
    maybeInitialRead();
  };

  /** The first read of every service starts once the signals have a baseline (no change falls between). */
  let initialReadStarted = false;
  const maybeInitialRead = () => {
    if (initialReadStarted || known === undefined || !checksSettled || !nodesSettled) return;
    initialReadStarted = true;
    if (known.size === 0) {
      initialReadDone = true;
      emitter.schedule();
      return;
    }
    for (const name of known) dirty.add(name);
    pump();
  };

  /** services changed lately, most recent last: a deploy's next change is usually one of them */
  const recent = new Map<string, true>();
  const noteRecent = (name: string) => {
    recent.delete(name);
    recent.set(name, true);
    if (recent.size > RECENT_MAX) recent.delete(recent.keys().next().value as string);
  };
  /**
   * A check signal's answer. A registration or deregistration with checks moves the checks index too:
   * once it has reached the pending catalog move, waiting longer cannot explain more.
   */
  const onChecksAt = (body: unknown, index: number, first: boolean) => {
    if (index > checksIndex) checksIndex = index;
    onChecks(body, index, first);
    if (pendingExplain > 0 && checksIndex >= pendingExplain) {
      checkExplained();
    }
  };

  const closeWindow = (target: number) => {
    ledger.close(target);
    if (pendingExplain <= target) pendingExplain = 0;
    triedRecent = new Set();
    windowReads = new Set();
    windowOpenedAt = pendingExplain > 0 ? now() : 0; // what later moves added waits afresh
    windowSummaries = 0;
    summaryAt = 0;
    summaryFailures = 0;
  };

  /** the service whose membership changed last and whose last read may predate the move */
  const nextRecent = (target: number): string | undefined => {
    for (const name of [...recent.keys()].reverse()) {
      if (triedRecent.has(name) || !known?.has(name)) continue;
      if ((readCovers.get(name) ?? 0) >= target) continue; // a read started after the move reflects it
      return name;
    }
    return undefined;
  };

  /**
   * Explains the pending catalog move once no read is pending: done when every write it covers is
   * accounted for; else the last-changed service, then the summary, then (no summary) a rescan.
   */
  const readPending = (name: string) => dirty.has(name) || bulk.has(name) || inFlight.has(name) || again.has(name);
  const checkExplained = () => {
    if (explainTimer) clearTimeout(explainTimer);
    explainTimer = undefined;
    if (pendingExplain === 0 || signal.aborted) return;
    const target = pendingExplain;
    const recentBudget = summaryUsable ? RECENT_BEFORE_SUMMARY : RECENT_MAX;
    const step = nextExplainStep({
      notByInstance: ledger.notByInstance(target),
      unnamed: ledger.unattributed(target),
      answersUnnamed: ledger.answersUnnamed(target).length,
      ownReadsPending: [...windowReads].some(readPending),
      // a rescan's reads are not waited for: most started before the move, and they come last
      anyReadUnderWay: dirty.size > 0 || inFlight.size > bulkInFlight,
      waitLeftMs: windowOpenedAt + EXPLAIN_WINDOW_MS - now(),
      checksCaughtUp: checksIndex >= target,
      checksGraceLeftMs: windowOpenedAt + CHECKS_GRACE_MS - now(),
      guess: triedRecent.size < recentBudget ? nextRecent(target) : undefined,
      summaryUsable,
      summaryReflects: summaryAt >= target,
      summariesLeft: windowSummaries < MAX_SUMMARIES_PER_WINDOW,
      summaryInFlight,
    });
    switch (step.kind) {
      case 'explained':
        closeWindow(target);
        rescanAll(step.verify, { target }, target);
        return;
      case 'await-reads':
        return; // re-checked when it is answered (afterRead)
      case 'wait':
        explainTimer = setTimeout(checkExplained, step.ms);
        return;
      case 'guess':
        triedRecent.add(step.service);
        windowReads.add(step.service);
        markDirty(step.service);
        pump();
        return;
      case 'summary':
        void readSummary(target);
        return;
      case 'deletions-counted':
        deletionsCounted++;
        log.debug({ target }, 'catalog move explained by the summary');
        closeWindow(target);
        rescanAll(step.verify, { target }, target);
        return;
      case 'rescan': {
        // the window's end, not its last gap: an index above the gap that a read named may have written
        // services no read names too (a /v1/txn; the randomized test's seed 7 at 5,000 writes)
        const threshold = target;
        closeWindow(target);
        rescanAll(step.reason, { target, threshold }, threshold);
        return;
      }
    }
  };

  /** One non-blocking read of the catalog summary; services whose instance count differs are re-read. */
  async function readSummary(target: number): Promise<void> {
    summaryInFlight = true;
    windowSummaries++;
    try {
      const res = await budget.read(signal, () => {
        queries++;
        summaries++;
        outstanding++;
        return blockingGet<unknown>(endpoint, CATALOG_SUMMARY_PATH, {}, { index: 0, waitMs: opts.waitMs, signal, timeoutMs: readTimeoutMs })
          .finally(() => outstanding--);
      });
      if (signal.aborted) return;
      bodyBytes += res.bytes;
      const parsed = parseCatalogSummary(res.body);
      if (!parsed.ok) {
        summaryUsable = false;
        log.warn({ reason: parsed.reason }, 'consul catalog summary unusable, unexplained catalog moves rescan');
        return;
      }
      summaryFailures = 0;
      // a ?stale answer may lag: it explains only what it reflects
      if (res.index >= target) summaryAt = Math.max(summaryAt, res.index);
      const held = new Map<string, ServiceSummary>();
      for (const [name, e] of entries) held.set(name, { count: e.count, nodes: e.nodes });
      for (const name of servicesWithOtherCounts(parsed.services, held, (n) => known?.has(n) === true)) {
        windowReads.add(name);
        markDirty(name);
      }
    } catch (err) {
      if (signal.aborted) return;
      errors++;
      const e = err as Error & { status?: number; code?: string };
      // an agent without the endpoint (404, 405), or a token that may not read it all (403)
      if (e.status === 404 || e.status === 403 || e.status === 405 || e.status === 400 || e.code === 'ERR_CONSUL_BAD_ANSWER') {
        summaryUsable = false;
        log.warn({ err: e.message, status: e.status }, 'consul catalog summary not available, unexplained catalog moves rescan');
      } else if (++summaryFailures < 3) {
        // transient: try again after a backoff (the budget adds its over-budget pause)
        windowSummaries--;
        explainTimer = setTimeout(checkExplained, backoffDelay(policy, summaryFailures, random));
      } else {
        summaryAt = 0;
        windowSummaries = MAX_SUMMARIES_PER_WINDOW;
      }
    } finally {
      summaryInFlight = false;
    }
    pump();
    if (!explainTimer) afterRead();
  }

  /** the last /v1/catalog/services answer, canonical: most moves (an instance of a known service) leave it as it was */
  let servicesText: string | undefined;

  /** New, removed and re-tagged service names of a catalog/services answer; true when there is any. */
  const applyServiceNames = (body: unknown, firstEver: boolean): boolean => {
    const record = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    const names = new Set(Object.keys(record).filter((n) => (allow ? allow.has(n) : opts.everyService === true || !WATCH_ALL_EXCEPT.has(n))));
    let visible = false;
    const previous = known ?? new Set<string>();
    known = names;
    for (const name of names) {
      gone.delete(name);
      const tags = Array.isArray(record[name]) ? (record[name] as unknown[]).map(String).sort().join('\u0000') : '';
      if (!previous.has(name)) {
        visible = true;
        if (!firstEver) dirty.add(name);
      } else if (tagKeys.get(name) !== tags) {
        visible = true;
        markDirty(name);
      }
      tagKeys.set(name, tags);
    }
    for (const name of previous) {
      if (names.has(name)) continue;
      visible = true;
      // read once more: its answer names the extinction index (the last time any service lost its last
      // instance), which may be the write this move covers
      tagKeys.delete(name);
      readCovers.delete(name);
      failures.delete(name);
      failedBeforeFirstAnswer.delete(name);
      const t = retryTimers.get(name);
      if (t) clearTimeout(t);
      retryTimers.delete(name);
      if (entries.delete(name)) emitter.changed(name);
      bulk.delete(name);
      bulkAgain.delete(name);
      gone.add(name);
      windowReads.add(name);
      if (inFlight.has(name)) again.add(name);
      else dirty.add(name);
      log.debug({ service: name }, 'service gone');
    }
    return visible;
  };

  const onServices = (body: unknown, index: number, first: boolean, text?: string) => {
    const firstEver = known === undefined;
    // the same names and tags as last time: nothing to walk (thousands of names and their tags per move)
    // (canonical: Consul lists each service's tags in Go map order, another on every answer)
    const canonical = text === undefined ? undefined : canonicalServicesText(body);
    const same = !first && !firstEver && canonical !== undefined && canonical === servicesText;
    servicesText = canonical;
    const visible = same ? false : applyServiceNames(body, firstEver);
    const moved = index > catalogIndex && catalogIndex > 0;
    catalogIndex = index;
    if (firstEver) {
      ledger.reset(index);
      maybeInitialRead();
      return;
    }
    if (first) {
      // a new baseline after an error: what changed meanwhile is unknown
      closeWindow(pendingExplain);
      ledger.reset(index);
      rescanAll('catalog watcher restarted');
    } else if (moved && !visible && !summaryUsable && (known?.size ?? 0) <= IMMEDIATE_RESCAN_MAX) {
      closeWindow(index);
      rescanAll('catalog move unexplained (small catalog, no summary)');
    } else if (moved) {
      // every move, a visible one too: one answer may cover a change no signal shows beside it
      ledger.noteAnswer(index);
      // each move may guess (its change is most likely the last-changed service's) and have its summary
      triedRecent = new Set();
      windowSummaries = 0;
      if (pendingExplain === 0) windowOpenedAt = now();
      pendingExplain = Math.max(pendingExplain, index);
      checkExplained();
    }
    if (emitter.pendingChanges > 0) emitter.schedule();
    pump();
  };

  const scheduleResync = () => {
    const every = opts.resyncMs ?? 300_000;
    if (every <= 0 || signal.aborted) return;
    resyncTimer = setTimeout(() => {
      rescanAll('periodic resync');
      scheduleResync();
    }, Math.round(every * (0.9 + 0.2 * random())));
    resyncTimer.unref();
  };
  scheduleResync();

  signal.addEventListener('abort', () => {
    if (pumpTimer) clearTimeout(pumpTimer);
    if (explainTimer) clearTimeout(explainTimer);
    if (resyncTimer) clearTimeout(resyncTimer);
    for (const t of retryTimers.values()) clearTimeout(t);
    retryTimers.clear();
  }, { once: true });

  /**
   * The checks signal. An agent (or a proxy before it) without the filter language answers the filtered
   * query 400: then critical and warning are followed as two queries (the critical one in this slot, the
   * warning one in a slot of its own if the budget has one left, else polled in the read share).
   */
  let extraReserved = 0;
  const checksLoop = async (blocking: boolean): Promise<void> => {
    const refused = (err: unknown) => (err as { status?: number }).status === 400;
    let wasRefused = false;
    await signalLoop<unknown>('checks', NON_PASSING_CHECKS_PATH, onChecksAt, settleChecks, { filter: NON_PASSING_CHECKS_FILTER }, blocking, (err) => (wasRefused = refused(err)));
    if (!wasRefused || signal.aborted) return;
    checksFilterRefused = true;
    signalFallbacks++;
    log.warn({ path: NON_PASSING_CHECKS_PATH, filter: NON_PASSING_CHECKS_FILTER }, 'consul refused the checks filter (400): following /v1/health/state/critical and /v1/health/state/warning instead');
    settleChecks();
    extraReserved = blocking ? budget.reserve(1) : 0;
    const rows: Record<'critical' | 'warning', unknown[]> = { critical: [], warning: [] };
    const onState = (state: 'critical' | 'warning') => (body: unknown, index: number, first: boolean) => {
      rows[state] = Array.isArray(body) ? body : [];
      onChecksAt([...rows.critical, ...rows.warning], index, first);
    };
    await Promise.all([
      signalLoop<unknown>('checks-critical', '/v1/health/state/critical', onState('critical'), undefined, {}, blocking),
      signalLoop<unknown>('checks-warning', '/v1/health/state/warning', onState('warning'), undefined, {}, extraReserved >= 1),
    ]);
  };

  const loops = [
    // the slots granted go to the catalog signal first, then to the checks signal
    signalLoop<unknown>('catalog', '/v1/catalog/services', onServices, undefined, {}, reserved >= 1),
    checksLoop(reserved >= 2),
    signalLoop<unknown>('nodes', '/v1/catalog/nodes', onNodes, settleNodes, {}, nodesReserved >= 1),
  ].map((p) => p.catch((err) => log.error({ err }, 'consul watch loop crashed')));

  const done = (async () => {
    await Promise.all(loops);
    // reads in flight end with the signal
    const deadline = now() + 5_000;
    while (inFlight.size > 0 && now() < deadline) await sleep(10);
    budget.release(reserved + nodesReserved + extraReserved);
    if (ownsBudget) await budget.close();
  })();

  return {
    ready: emitter.ready,
    current: () => emitter.current(),
    reachable: () => isReachable === true,
    done,
    stats: () => ({
      services: known?.size ?? 0, queries, reads, errors, emits: emitter.emits, rescans, sweepReads, rescanReasons: { ...rescanReasons }, summaries, summaryUsable, deletionsCounted, rescansCoalesced, bodyBytes, unusableAnswers,
      throttled: budget.stats().overBudget, budget: budget.stats(), outstanding,
      checksFilterRefused, signalFallbacks,
      settled: outstanding === reserved + nodesReserved + extraReserved && dirty.size === 0 && bulk.size === 0 && inFlight.size === 0 && !rescanQueue.running && pendingExplain === 0 && !explainTimer && !summaryInFlight && !emitter.scheduled && emitter.pendingChanges === 0,
      indexes: { catalog: catalogIndex, checks: checksIndex, nodes: nodesIndex },
    }),
    serviceNames: () => known ?? new Set<string>(),
    tagsOf: (name) => {
      const k = tagKeys.get(name);
      return k ? k.split('\u0000') : [];
    },
  };
}
