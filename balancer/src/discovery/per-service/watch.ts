// Discovery by one blocking query per service (`--consul-watch per-service`), multiplexed over a few
// HTTP/2 sessions to an HTTPS agent. Each /v1/health/service/<name> answer is that service's whole
// state at that service's own index (README.md: its index is service.<name>, which KV and coordinate
// writes never move), so there is no index accounting: an answer that differs is the change. Which
// services exist comes from one blocking /v1/catalog/services query. The table is built from the
// answers by the same code as the index design (health-entries.ts parseHealthAnswer) and handed over
// through the same CatalogWatcher interface, so the table holder cannot tell the designs apart.
//
// Every query has a deadline and an abort signal; each service's loop backs off on its own; a dead
// agent leaves the last good table (a failed query changes no entry). Past the budget (sessions x
// streams) the remaining services are polled with plain reads on the streams each session keeps for
// short reads (stream-schedule.ts), and a warning says so once.
import { setMaxListeners } from 'node:events';
import { backoffDelay, DEFAULT_BACKOFF, sleep } from '../../../../common/backoff.js';
import { canonicalJson } from '../../routing/table-version.js';
import type { CatalogInstance, CatalogSnapshot } from '../../routing/types.js';
import type { CatalogWatcher, CatalogWatcherOptions, CatalogWatcherStats } from '../consul-catalog.js';
import { DEFAULT_CONSUL_MAX_CONNS } from '../consul-budget.js';
import { parseHealthAnswer } from '../health-entries.js';
import { SnapshotEmitter } from '../snapshot-emitter.js';
import { pollDelay } from '../watch-slot.js';
import { h2GetJson } from './h2-get.js';
import { ReadGate, type ReadGateStats } from './read-gate.js';
import { SessionPool, type SessionPoolStats } from './session-pool.js';
import { nextQuery, plainReadLimit, planWatches, PLAIN_READS_MIN, pollPause } from './stream-schedule.js';

export interface PerServiceWatcherOptions extends CatalogWatcherOptions {
  /** pause between two polls of a service past the budget; default 2 s */
  readonly pollMs?: number;
  /** all polls of services past the budget together, at most this many per second; default 200 */
  readonly maxPollsPerSec?: number;
  /** PEM CA(s) to trust for the agent instead of node's default store (which NODE_EXTRA_CA_CERTS extends) */
  readonly ca?: string;
  /**
   * plain reads (first reads, reads after a failure, polls) in flight at once (read-gate.ts): a fixed
   * limit; default: the agent's answer rate x a quarter of the read deadline, re-measured every second
   * (stream-schedule.ts plainReadLimit)
   */
  readonly maxPlainReads?: number;
}

export interface PerServiceStats {
  readonly design: 'per-service';
  readonly pool: SessionPoolStats;
  /** services polled because no held stream was left for them */
  readonly polled: number;
  /** blocking queries held now */
  readonly held: number;
  /** held queries that ran out unchanged (not parsed) */
  readonly timeouts: number;
  /** polls answered (plain reads of services past the budget) */
  readonly polls: number;
  /** services without a first usable answer yet */
  readonly awaitingFirst: number;
  /** failed queries by error code (ERR_CONSUL_OVER_BUDGET: a stream refused, reset or its session gone) */
  readonly errorCodes: Readonly<Record<string, number>>;
  /** plain reads in flight, their peak, and those waiting (read-gate.ts) */
  readonly plainReads: ReadGateStats;
}

export interface PerServiceWatcher extends CatalogWatcher {
  perServiceStats(): PerServiceStats;
}

const WATCH_ALL_EXCEPT = new Set(['consul']);
/** polls past the budget, all services together (pollPause); ~200 small reads/s is a few % of a core */
const DEFAULT_MAX_POLLS_PER_SEC = 200;
/** how often the plain-read limit follows the agent's answer rate */
const PLAIN_READ_LIMIT_EVERY_MS = 1_000;

export function watchConsulPerService(opts: PerServiceWatcherOptions, outerSignal: AbortSignal): PerServiceWatcher {
  const log = opts.logger;
  const lifetime = new AbortController();
  setMaxListeners(0, lifetime.signal);
  const signal = lifetime.signal;
  if (outerSignal.aborted) lifetime.abort(outerSignal.reason);
  else outerSignal.addEventListener('abort', () => lifetime.abort(outerSignal.reason), { once: true });
  if (!opts.endpoint.baseUrl.startsWith('https:')) {
    throw Object.assign(new Error(`--consul-watch per-service needs an HTTPS agent (HTTP/2 over TLS); ${opts.endpoint.baseUrl} is not https://`), { code: 'ERR_CONSUL_WATCH_NEEDS_HTTPS' });
  }
  const random = opts.random ?? Math.random;
  const now = opts.now ?? Date.now;
  const policy = opts.backoff ?? DEFAULT_BACKOFF;
  const allow = opts.services ? new Set(opts.services) : undefined;
  const readTimeoutMs = opts.readTimeoutMs ?? 30_000;
  const startGraceMs = opts.startGraceMs ?? 5_000;
  const pollMs = opts.pollMs ?? 2_000;
  const maxPollsPerSec = opts.maxPollsPerSec ?? DEFAULT_MAX_POLLS_PER_SEC;
  const readGate = new ReadGate(opts.maxPlainReads ?? PLAIN_READS_MIN);
  /** plain reads answered (the rate the read gate's limit follows) */
  let plainAnswered = 0;
  if (opts.maxPlainReads === undefined) {
    let counted = 0;
    let countedAt = now();
    const timer = setInterval(() => {
      const at = now();
      readGate.setLimit(plainReadLimit(plainAnswered - counted, at - countedAt, readTimeoutMs));
      counted = plainAnswered;
      countedAt = at;
    }, PLAIN_READ_LIMIT_EVERY_MS);
    timer.unref();
    signal.addEventListener('abort', () => clearInterval(timer), { once: true });
  }
  const maxSessions = opts.budget ? opts.budget.maxConns : opts.maxConns ?? DEFAULT_CONSUL_MAX_CONNS;
  const pool = new SessionPool({ baseUrl: opts.endpoint.baseUrl, ca: opts.ca, maxSessions, budget: opts.budget, logger: log, backoff: policy, random, now });
  const getOpts = (index: number, s: AbortSignal, waitMs = opts.waitMs) => ({
    index, waitMs, signal: s, timeoutMs: readTimeoutMs, token: opts.endpoint.token, stale: opts.endpoint.stale, maxBodyBytes: opts.endpoint.maxBodyBytes,
  });

  const entries = new Map<string, { instances: readonly CatalogInstance[]; key: string }>();
  const loops = new Map<string, { stop: AbortController; done: Promise<void> }>();
  const tagKeys = new Map<string, string>();
  const failedBeforeFirstAnswer = new Map<string, number>();
  /** known services without a first usable answer yet (the first snapshot waits for these alone) */
  const awaitingFirst = new Set<string>();
  /** each polled service's index at its last parsed answer: a poll answering the same index is not parsed */
  const parsedIndex = new Map<string, number>();
  const polled = new Set<string>();
  let known: Set<string> | undefined;
  let isReachable: boolean | undefined;
  let queries = 0;
  let reads = 0;
  let errors = 0;
  let bodyBytes = 0;
  let unusableAnswers = 0;
  let outstanding = 0;
  let held = 0;
  /** held queries whose wait ran out with the service's index unmoved */
  let timeouts = 0;
  let polls = 0;
  const errorCodes = new Map<string, number>();
  let catalogIndex = 0;
  let warnedOverflow = false;

  const markReachable = (ok: boolean, err?: Error) => {
    if (ok === isReachable) return;
    isReachable = ok;
    opts.onReachability?.(ok, err);
  };
  const gaveUpOn = (s: string): boolean => {
    const failedAt = failedBeforeFirstAnswer.get(s);
    return failedAt !== undefined && (emitter.readyResolved || now() - failedAt >= startGraceMs);
  };
  // O(services still awaited), not O(services): it runs after every answer
  const complete = (): boolean => {
    if (known === undefined) return false;
    for (const s of awaitingFirst) if (!gaveUpOn(s)) return false;
    return true;
  };

  const emitter: SnapshotEmitter = new SnapshotEmitter({ debounceMs: opts.debounceMs, entries, complete: () => complete(), onSnapshot: opts.onSnapshot, onChange: opts.onChange, logger: log, signal });

  /** A service's answer: its whole state; differing from the held one is the change. */
  const applyAnswer = (name: string, body: unknown) => {
    if (!known?.has(name)) return;
    const parsed = parseHealthAnswer(name, body);
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
    awaitingFirst.delete(name);
    const key = canonicalJson(parsed.instances);
    const prev = entries.get(name);
    if (prev && prev.key === key) return;
    entries.set(name, { instances: parsed.instances, key });
    emitter.changed(name);
    emitter.schedule();
  };

  /** One service's loop: a held blocking query re-armed at each answer's index, or polls past the budget. */
  const serviceLoop = async (name: string, stop: AbortSignal): Promise<void> => {
    let index = 0;
    let failuresInRow = 0;
    // the first held query waits a random 50-100 % of --consul-wait: services started together would
    // otherwise all time out together, every --consul-wait, a burst of answers to parse at once
    let firstHold = true;
    while (!stop.aborted) {
      // a plain read (index 0: the first, one after a failure, a poll) waits for the read gate first,
      // before it takes a stream; a held query re-arms at once
      const endRead = index === 0 ? await readGate.enter(stop) : undefined;
      if (index === 0 && endRead === undefined) break;
      const started = now();
      let overflow = false;
      let slot = pool.acquire(true);
      if (slot.kind === 'full') {
        overflow = true;
        if (!polled.has(name)) {
          polled.add(name);
          if (!warnedOverflow) {
            warnedOverflow = true;
            log.warn({ maxConns: maxSessions, pool: pool.stats() }, 'more services than --consul-max-conns sessions x the agent\'s streams per session: the rest are polled (raise --consul-max-conns; the agent allows http_max_conns_per_client, 200 by default)');
          }
        }
        slot = pool.acquire(false);
        if (slot.kind === 'full') {
          endRead?.();
          await pool.waitForSlot(1_000, stop);
          continue;
        }
      } else if (slot.kind === 'session') {
        polled.delete(name);
      }
      if (slot.kind === 'unavailable') {
        endRead?.();
        markReachable(false, new Error('consul agent unreachable (HTTP/2 connect failed)'));
        await sleep(Math.max(slot.retryInMs, backoffDelay(policy, failuresInRow++, random)), stop);
        continue;
      }
      const sentIndex = overflow ? 0 : index;
      let answeredIndex: number | undefined;
      queries++;
      reads++;
      outstanding++;
      if (sentIndex > 0) held++;
      try {
        const waitMs = sentIndex > 0 && firstHold ? Math.round(opts.waitMs * (0.5 + 0.5 * random())) : opts.waitMs;
        if (sentIndex > 0) firstHold = false;
        const res = await h2GetJson<unknown>(slot.session, `/v1/health/service/${encodeURIComponent(name)}`, {}, getOpts(sentIndex, stop, waitMs));
        if (stop.aborted) break;
        bodyBytes += res.bytes;
        answeredIndex = res.index;
        if (overflow) polls++;
        if (sentIndex === 0) plainAnswered++;
        if (failuresInRow > 0) log.info({ service: name, failures: failuresInRow }, 'consul query recovered');
        failuresInRow = 0;
        markReachable(true);
        // a wait that ran out answers the index it was sent: the service's own index did not move, so
        // its rows did not change (catalog.go moves service.<name> on every write to them, a node's
        // too): nothing to parse. Any other answer is parsed and compared.
        // a poll likewise: the same index as the last parsed answer is the same rows
        if (sentIndex > 0 && res.index === sentIndex && entries.has(name)) timeouts++;
        else if (overflow && entries.has(name) && parsedIndex.get(name) === res.index) timeouts++;
        else {
          applyAnswer(name, res.body);
          parsedIndex.set(name, res.index);
        }
      } catch (err) {
        if (stop.aborted) break;
        errors++;
        const e = err as Error & { code?: string };
        errorCodes.set(e.code ?? 'other', (errorCodes.get(e.code ?? 'other') ?? 0) + 1);
        if (e.code === 'ERR_CONSUL_BODY_TOO_LARGE') unusableAnswers++;
        if (!entries.has(name) && !failedBeforeFirstAnswer.has(name)) failedBeforeFirstAnswer.set(name, now());
        markReachable(false, e);
        log[failuresInRow === 0 ? 'warn' : 'debug']({ service: name, err: e.message, code: e.code }, 'consul query failed, keeping last good data');
      } finally {
        outstanding--;
        if (sentIndex > 0) held--;
        slot.release();
        endRead?.();
      }
      const next = nextQuery({
        sentIndex, answeredIndex, failuresInRow, elapsedMs: now() - started, minIntervalMs: opts.minQueryIntervalMs,
        backoffMs: answeredIndex === undefined ? backoffDelay(policy, failuresInRow, random) : 0,
        overflow, pollMs: pollDelay(pollPause(polled.size, pollMs, maxPollsPerSec), random),
      });
      if (answeredIndex === undefined) failuresInRow++;
      index = next.kind === 'block' ? next.index : 0;
      if (complete()) emitter.schedule();
      if (next.afterMs > 0) await sleep(next.afterMs, stop);
    }
  };

  const startService = (name: string) => {
    const stop = new AbortController();
    setMaxListeners(0, stop.signal);
    const onLifetime = () => stop.abort(signal.reason);
    signal.addEventListener('abort', onLifetime, { once: true });
    const done = serviceLoop(name, stop.signal)
      .catch((err) => log.error({ err, service: name }, 'consul service watch crashed'))
      .finally(() => signal.removeEventListener('abort', onLifetime));
    loops.set(name, { stop, done });
  };
  const stopService = (name: string) => {
    loops.get(name)?.stop.abort();
    loops.delete(name);
    polled.delete(name);
    tagKeys.delete(name);
    failedBeforeFirstAnswer.delete(name);
    awaitingFirst.delete(name);
    parsedIndex.delete(name);
    if (entries.delete(name)) emitter.changed(name);
  };

  /** A /v1/catalog/services answer: names appear and leave; a re-tagged service is read again by its own query. */
  const onServices = (body: unknown) => {
    const record = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    const names = new Set(Object.keys(record).filter((n) => (allow ? allow.has(n) : opts.everyService === true || !WATCH_ALL_EXCEPT.has(n))));
    known = names;
    for (const name of names) {
      const tags = Array.isArray(record[name]) ? (record[name] as unknown[]).map(String).sort().join('\u0000') : '';
      tagKeys.set(name, tags);
    }
    const plan = planWatches(names, new Set(loops.keys()));
    for (const name of plan.stop) stopService(name);
    for (const name of plan.start) {
      if (!entries.has(name)) awaitingFirst.add(name);
      startService(name);
    }
    if (names.size === 0 || emitter.pendingChanges > 0 || !emitter.readyResolved) emitter.schedule();
  };

  const catalogLoop = async (): Promise<void> => {
    let index = 0;
    let failuresInRow = 0;
    while (!signal.aborted) {
      const started = now();
      const slot = pool.acquire(false);
      if (slot.kind !== 'session') {
        if (slot.kind === 'full') await pool.waitForSlot(1_000, signal);
        else {
          markReachable(false, new Error('consul agent unreachable (HTTP/2 connect failed)'));
          await sleep(Math.max(slot.retryInMs, backoffDelay(policy, failuresInRow++, random)), signal);
        }
        continue;
      }
      queries++;
      outstanding++;
      if (index > 0) held++;
      const sent = index;
      try {
        const res = await h2GetJson<unknown>(slot.session, '/v1/catalog/services', {}, getOpts(index, signal));
        if (signal.aborted) break;
        bodyBytes += res.bytes;
        index = res.index;
        catalogIndex = res.index;
        if (failuresInRow > 0) log.info({ watcher: 'catalog', failures: failuresInRow }, 'consul query recovered');
        failuresInRow = 0;
        markReachable(true);
        onServices(res.body);
      } catch (err) {
        if (signal.aborted) break;
        errors++;
        const e = err as Error & { code?: string };
        const delay = backoffDelay(policy, failuresInRow, random);
        log[failuresInRow === 0 ? 'warn' : 'debug']({ watcher: 'catalog', err: e.message, code: e.code, retryInMs: delay }, 'consul query failed, keeping last good data');
        failuresInRow++;
        index = 0;
        markReachable(false, e);
        slot.release();
        outstanding--;
        if (sent > 0) held--;
        await sleep(delay, signal);
        continue;
      }
      slot.release();
      outstanding--;
      if (sent > 0) held--;
      const gap = started + opts.minQueryIntervalMs - now();
      if (gap > 0) await sleep(gap, signal);
    }
  };

  const catalogDone = catalogLoop().catch((err) => log.error({ err }, 'consul watch loop crashed'));
  const done = (async () => {
    await catalogDone;
    await Promise.all([...loops.values()].map((l) => l.done));
    pool.close();
  })();

  const perServiceStats = (): PerServiceStats => ({
    design: 'per-service', pool: pool.stats(), polled: polled.size, held, timeouts, polls, awaitingFirst: awaitingFirst.size, errorCodes: Object.fromEntries(errorCodes),
    plainReads: readGate.stats(),
  });
  // the per-service figures ride along in the metrics' discovery object (admin /metrics)
  const stats = (): CatalogWatcherStats & { perService: PerServiceStats } => ({
    services: known?.size ?? 0, queries, reads, errors, emits: emitter.emits, rescans: 0, rescanReasons: {}, summaries: 0, summaryUsable: false, deletionsCounted: 0, rescansCoalesced: 0,
    bodyBytes, unusableAnswers, throttled: 0,
    budget: opts.budget?.stats() ?? { maxConns: maxSessions, reserved: pool.stats().sessions, readLimit: 0, readsInFlight: 0, peakInFlight: 0, overBudget: 0, pausedMs: 0 },
    outstanding,
    // every query is a held one (the catalog's and each service's), nothing else is under way
    settled: known !== undefined && outstanding === held && held === loops.size + 1 - polled.size && !emitter.scheduled && emitter.pendingChanges === 0,
    checksFilterRefused: false, signalFallbacks: 0,
    indexes: { catalog: catalogIndex, checks: 0 },
    perService: perServiceStats(),
  });

  return {
    ready: emitter.ready,
    current: () => emitter.current(),
    reachable: () => isReachable === true,
    done,
    stats,
    perServiceStats,
    serviceNames: () => known ?? new Set<string>(),
    tagsOf: (name) => {
      const k = tagKeys.get(name);
      return k ? k.split('\u0000') : [];
    },
  };
}
