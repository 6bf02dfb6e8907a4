// The index-design follower's decisions, with no I/O, no timers and no clock of its own: answers come
// in as events, and what to do next goes out as commands (a read to make, a timer to set, a service
// whose instances changed, an emit window to open). consul-catalog.ts is the shell that sends the HTTP
// requests, holds the connection budget and the timers, and feeds every answer back in; the tests drive
// this class alone with scenario tables (test/unit/discovery-follower-core.test.ts).
//
// What it decides (the why of each rule is in consul-catalog.ts's header, write-ledger.ts and
// explain-step.ts):
// - which services to read after a signal answer: the three signals are /v1/catalog/services (names,
//   tags, and the services table's index), the non-passing checks (each row names its service, or a node
//   whose services are then read) and /v1/catalog/nodes (a node whose row changed: its services);
// - the read queue: a read a signal asks for before a rescan's (`dirty` before `bulk`), a rescan in at
//   most half the read share, a read asked for while one of the same service is under way repeated once
//   it ends (`again`), a read skipped when one that started after the asking index already covers it;
// - explaining each catalog move (explain-step.ts over write-ledger.ts): a guess, the summary, the
//   deletions it counts, else a rescan; and the sweep after every window (`verify`), one at a time and
//   folded (rescan-queue.ts);
// - the table: each answer parsed (health-entries.ts), compared by content, the last good answer kept
//   when one is unusable or fails; the first snapshot waits for every service (or its start grace).
// When in doubt it reads: nothing here takes a move it cannot name for noise.
import { canonicalJson } from '../routing/table-version.js';
import type { CatalogInstance } from '../routing/types.js';
import { parseCatalogSummary, servicesWithOtherCounts, type ServiceSummary } from './catalog-summary.js';
import { nextExplainStep, VERIFY_REASON } from './explain-step.js';
import { answerIndexes, parseHealthAnswer } from './health-entries.js';
import { RescanQueue, type RescanRequest } from './rescan-queue.js';
import { WriteLedger } from './write-ledger.js';

export interface FollowerCoreOptions {
  /** only these services; undefined = all (except "consul" itself, which is never proxied unless listed) */
  readonly services?: readonly string[];
  /** without `services`: "consul" too */
  readonly everyService?: boolean;
  /** reads are ?stale (an answer may lag the index a signal saw): then every signal reads */
  readonly stale?: boolean;
  /** before the first snapshot, how long a service whose read keeps failing may hold it back */
  readonly startGraceMs: number;
  /** a rescan (the sweep, a gap's) asks each service for its index only (a probe), reading in full only a service whose index moved; default true */
  readonly sweepProbes?: boolean;
}

/**
 * A filter no instance matches (go-bexpr, Consul 1.4+): the probe's answer is `[]`, yet its X-Consul-Index
 * is the service's. agent/consul/health_endpoint.go ServiceNodes takes the index from the state store
 * (checkServiceNodesTxn: the service.<name> index, maxIndexAndWatchChForService) before it applies the
 * filter to the nodes; and every write that changes the service's answer (its instances, their checks,
 * their node: ensureServiceTxn, ensureCheckTxn, ensureNodeTxn -> updateAllServiceIndexesOfNode) moves
 * that index, which is why Consul's own blocking queries watch only it. So an index equal to the one
 * the last full read answered with means that answer is still current.
 */
export const SWEEP_PROBE_FILTER = 'Service.ID == "" and Service.ID != ""';

/** rescans that read every service in full, never a probe */
const RESYNC_REASON = 'periodic resync';
const RESTART_REASON = 'catalog watcher restarted';
const FULL_READ_REASONS = new Set([RESYNC_REASON, RESTART_REASON]);

/** What the shell knows at the moment it hands an event in. */
export interface StepContext {
  readonly now: number;
  /** read slots the connection budget has free (0 while it pauses) */
  readonly freeReadSlots: number;
  /** the budget's read share now: a rescan reads in at most half of it */
  readonly readLimit: number;
  /** ms until the budget's over-budget pause ends (0 = none) */
  readonly pauseLeftMs: number;
}

export type SignalName = 'catalog' | 'checks' | 'nodes';

export type FollowerEvent =
  /** a /v1/catalog/services answer; `first`: the first of its loop or the first after an error (a new baseline) */
  | { readonly kind: 'catalog'; readonly index: number; readonly body: unknown; readonly first: boolean; readonly text?: string }
  /** the non-passing checks (critical and warning rows together) */
  | { readonly kind: 'checks'; readonly index: number; readonly body: unknown; readonly first: boolean }
  | { readonly kind: 'nodes'; readonly index: number; readonly body: unknown; readonly first: boolean }
  /** a signal's query failed (the first failure in a row): the first read need not wait for it */
  | { readonly kind: 'signal-failed'; readonly signal: SignalName }
  /** the agent answered the filtered checks query 400: critical and warning are followed apart */
  | { readonly kind: 'checks-filter-refused' }
  /** a read of /v1/health/service/<service> answered */
  | { readonly kind: 'read-answered'; readonly service: string; readonly index: number; readonly body: unknown; readonly bytes: number }
  | { readonly kind: 'read-failed'; readonly service: string; readonly message: string; readonly code?: string }
  /** a sweep's probe of <service> answered (its body is empty by construction: only the index counts) */
  | { readonly kind: 'probe-answered'; readonly service: string; readonly index: number }
  | { readonly kind: 'probe-failed'; readonly service: string; readonly message: string; readonly status?: number }
  | { readonly kind: 'summary-answered'; readonly index: number; readonly body: unknown }
  | { readonly kind: 'summary-failed'; readonly message: string; readonly status?: number; readonly code?: string }
  /** a timer the core set has run out */
  | { readonly kind: 'timer'; readonly timer: CoreTimer }
  /** a failed read's backoff has run out */
  | { readonly kind: 'retry-due'; readonly service: string }
  /** the periodic resync (the shell's jittered clock) */
  | { readonly kind: 'resync' }
  /** the shell emitted a snapshot (the changed services went out with it) */
  | { readonly kind: 'emitted' };

/** explain: ask the explain step again; pump: the budget's pause is over, start the reads waiting */
export type CoreTimer = 'explain' | 'pump';

export type LogLevel = 'debug' | 'info' | 'warn';

export type FollowerCommand =
  /** GET /v1/health/service/<service> (plain, not blocking): answer with read-answered or read-failed */
  | { readonly kind: 'read'; readonly service: string }
  /**
   * GET /v1/health/service/<service> filtered to match no instance (SWEEP_PROBE_FILTER): the answer is
   * `[]`, its X-Consul-Index the service's own; answer with probe-answered or probe-failed
   */
  | { readonly kind: 'probe'; readonly service: string }
  /** GET the catalog summary: answer with summary-answered or summary-failed */
  | { readonly kind: 'read-summary' }
  /** set (or reset) a timer: after `ms`, or after the backoff delay of attempt `backoffAttempt` */
  | { readonly kind: 'set-timer'; readonly timer: CoreTimer; readonly ms: number }
  | { readonly kind: 'set-timer'; readonly timer: CoreTimer; readonly backoffAttempt: number }
  | { readonly kind: 'clear-timer'; readonly timer: CoreTimer }
  /** read `service` again after the backoff of attempt `attempt` (then retry-due); the failure is the shell's to log */
  | { readonly kind: 'retry-read'; readonly service: string; readonly attempt: number; readonly message: string; readonly code?: string }
  | { readonly kind: 'cancel-retry'; readonly service: string }
  /** `service` was added, removed or has other instances */
  | { readonly kind: 'changed'; readonly service: string }
  /** open the emit window (unless open): the shell emits `entries` when it closes, if `complete()` */
  | { readonly kind: 'emit-soon' }
  | { readonly kind: 'warning'; readonly service: string; readonly warning: string }
  | { readonly kind: 'log'; readonly level: LogLevel; readonly msg: string; readonly fields: Readonly<Record<string, unknown>> };

export interface FollowedService {
  readonly instances: readonly CatalogInstance[];
  /** canonical text of the instances: an answer with the same key changes nothing */
  readonly key: string;
  /** nodes of the routable instances */
  readonly node: ReadonlySet<string>;
  /** entries of the last answer (every kind, as the summary counts them) and their nodes */
  readonly count: number;
  readonly nodes: ReadonlySet<string>;
}

/** The figures the core keeps (the shell adds what it counts at the wire). */
export interface FollowerCoreStats {
  readonly services: number;
  readonly rescans: number;
  readonly sweepReads: number;
  readonly rescanReasons: Readonly<Record<string, number>>;
  readonly summaryUsable: boolean;
  readonly deletionsCounted: number;
  readonly rescansCoalesced: number;
  /** body bytes of the service reads applied */
  readonly readBytes: number;
  readonly unusableAnswers: number;
  /** rescan reads (the sweep's, a gap's) made as probes (an empty answer: the service's index only), and the probes whose index had moved (then read in full) */
  readonly sweepProbes: number;
  readonly sweepProbesChanged: number;
  /** false once the agent refused the probe's filter (400): the sweep reads in full */
  readonly sweepProbesUsable: boolean;
  readonly checksFilterRefused: boolean;
  readonly signalFallbacks: number;
  readonly indexes: { readonly catalog: number; readonly checks: number; readonly nodes: number };
}

const WATCH_ALL_EXCEPT = new Set(['consul']);
/** how long an unexplained catalog index move waits for the health signals to explain it */
export const EXPLAIN_WINDOW_MS = 300;
/** how long a move the summary cannot locate waits for the checks signal before a rescan */
export const CHECKS_GRACE_MS = 50;
/** up to this many services, an unexplained change re-reads them all at once (cheaper than waiting) */
const IMMEDIATE_RESCAN_MAX = 32;
/** how many recently changed services an unexplained change re-reads before a full rescan (no summary) */
const RECENT_MAX = 8;
/** with a summary: the last-changed service first (a deploy's deregistration), then the summary */
const RECENT_BEFORE_SUMMARY = 1;
/** summaries per unexplained move (again only when later moves extended it) before a rescan */
const MAX_SUMMARIES_PER_WINDOW = 3;

interface CheckRow {
  readonly Node?: unknown;
  readonly CheckID?: unknown;
  readonly Status?: unknown;
  readonly ServiceID?: unknown;
  readonly ServiceName?: unknown;
  readonly ModifyIndex?: unknown;
}

interface Entry {
  instances: readonly CatalogInstance[];
  /** X-Consul-Index of the read this entry was last confirmed by */
  index: number;
  key: string;
  node: Set<string>;
  count: number;
  nodes: Set<string>;
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

// ModifyIndex too: any write to a non-passing check (its output, a re-registration) re-reads its service
const rowKey = (r: CheckRow) => `${String(r.ServiceID ?? '')}\u0000${String(r.CheckID ?? '')}\u0000${String(r.Status ?? '')}\u0000${String(r.ModifyIndex ?? '')}`;

export class FollowerCore {
  readonly #allow: ReadonlySet<string> | undefined;
  readonly #everyService: boolean;
  readonly #stale: boolean;
  readonly #startGraceMs: number;
  #sweepProbesUsable: boolean;
  #sweepProbes = 0;
  #sweepProbesChanged = 0;

  // ---- the step under way: its context, the read slots it has left, the commands it gave ----
  #now = 0;
  #freeSlots = 0;
  #readLimit = 1;
  #pauseLeftMs = 0;
  #out: FollowerCommand[] = [];

  // ---- the table ----
  /** service -> its instances and canonical key, present once the service's first answer arrived */
  readonly #entries = new Map<string, Entry>();
  #known: Set<string> | undefined;
  readonly #tagKeys = new Map<string, string>();
  /** the last /v1/catalog/services answer, canonical: most moves (an instance of a known service) leave it as it was */
  #servicesText: string | undefined;
  #initialReadStarted = false;
  #initialReadDone = false;
  readonly #failures = new Map<string, number>();
  readonly #failedBeforeFirstAnswer = new Map<string, number>();
  /** names gone from the catalog whose (empty) answer is still to be read for the index it names */
  readonly #gone = new Set<string>();
  #readyResolved = false;
  #pendingChanges = false;

  // ---- the signals ----
  #catalogIndex = 0;
  /** highest index the check signals answered with: once it reaches a catalog move, they have spoken */
  #checksIndex = 0;
  #nodesIndex = 0;
  #serviceCheckKeys = new Map<string, string>();
  #nodeCheckKeys = new Map<string, string>();
  #checksSettled = false; // first answer (or failure) of the checks signal
  /** node -> its address and ModifyIndex as /v1/catalog/nodes last listed it */
  #nodeKeys: Map<string, string> | undefined;
  #nodesSettled = false; // first answer (or failure) of the nodes signal

  // ---- the read queue ----
  /** reads a signal asked for */
  readonly #dirty = new Set<string>();
  /** reads a rescan asked for: started after every read in `dirty` (a signal's read never waits behind a rescan) */
  readonly #bulk = new Set<string>();
  /** a rescan's reads of services whose read was in flight from before the rescan's threshold */
  readonly #bulkAgain = new Set<string>();
  readonly #inFlight = new Set<string>();
  /** reads in flight that came from `bulk` (what the rescan's share counts) */
  readonly #inFlightFromBulk = new Set<string>();
  readonly #again = new Set<string>();
  readonly #retrying = new Set<string>();
  /** per service: the highest index its reads are known to reflect (a read started after that index was known) */
  readonly #readCovers = new Map<string, number>();
  #pumpTimerSet = false;

  // ---- explaining catalog moves ----
  /** which writes the catalog moves covered and which the answers read account for */
  readonly #ledger = new WriteLedger();
  /** the catalog index up to which a move waits to be explained (0 = none) */
  #pendingExplain = 0;
  #explainTimerSet = false;
  /** per window: recent services tried, summaries read and the index the last one reflected */
  #triedRecent = new Set<string>();
  #windowSummaries = 0;
  #summaryAt = 0;
  #summaryFailures = 0;
  #summaryInFlight = false;
  /** the move the summary under way was read for */
  #summaryTarget = 0;
  #summaryUsable = true;
  /** when the pending move began to wait, and the reads its own steps asked for (a guess, the summary's) */
  #windowOpenedAt = 0;
  #windowReads = new Set<string>();
  /** services changed lately, most recent last: a deploy's next change is usually one of them */
  readonly #recent = new Map<string, true>();
  /** one rescan at a time (its reads in `bulk`, `bulkAgain` and in flight from bulk), at most one queued behind it */
  readonly #rescanQueue = new RescanQueue();
  #rescanReason = '';

  // ---- figures ----
  #rescans = 0;
  #sweepReads = 0;
  readonly #rescanReasons: Record<string, number> = {};
  #deletionsCounted = 0;
  #rescansCoalesced = 0;
  #readBytes = 0;
  #unusableAnswers = 0;
  #checksFilterRefused = false;
  #signalFallbacks = 0;

  constructor(opts: FollowerCoreOptions) {
    this.#allow = opts.services ? new Set(opts.services) : undefined;
    this.#everyService = opts.everyService === true;
    this.#stale = opts.stale === true;
    this.#startGraceMs = opts.startGraceMs;
    // a ?stale answer may lag: an unchanged index would prove nothing
    this.#sweepProbesUsable = opts.sweepProbes !== false && !this.#stale;
  }

  /** Applies one event; returns what the shell is to do, in order. */
  step(event: FollowerEvent, ctx: StepContext): FollowerCommand[] {
    this.#now = ctx.now;
    this.#freeSlots = ctx.freeReadSlots;
    this.#readLimit = ctx.readLimit;
    this.#pauseLeftMs = ctx.pauseLeftMs;
    this.#out = [];
    switch (event.kind) {
      case 'catalog':
        this.#onServices(event.body, event.index, event.first, event.text);
        break;
      case 'checks':
        this.#onChecksAt(event.body, event.index, event.first);
        break;
      case 'nodes':
        this.#onNodes(event.body, event.index, event.first);
        break;
      case 'signal-failed':
        if (event.signal === 'checks') this.#settleChecks();
        else if (event.signal === 'nodes') this.#settleNodes();
        break;
      case 'checks-filter-refused':
        this.#checksFilterRefused = true;
        this.#signalFallbacks++;
        this.#settleChecks();
        break;
      case 'read-answered':
        this.#readAnswered(event.service, event.index, event.body, event.bytes);
        this.#readEnded(event.service);
        break;
      case 'read-failed':
        this.#readFailed(event.service, event.message, event.code);
        this.#readEnded(event.service);
        break;
      case 'probe-answered':
        this.#probeAnswered(event.service, event.index);
        this.#readEnded(event.service);
        break;
      case 'probe-failed':
        this.#probeFailed(event.service, event.message, event.status);
        this.#readEnded(event.service);
        break;
      case 'summary-answered':
        this.#summaryAnswered(event.index, event.body);
        break;
      case 'summary-failed':
        this.#summaryFailed(event.message, event.status, event.code);
        break;
      case 'timer':
        if (event.timer === 'pump') {
          this.#pumpTimerSet = false;
          this.#pump();
        } else {
          this.#explainTimerSet = false;
          this.#checkExplained();
        }
        break;
      case 'retry-due':
        this.#retrying.delete(event.service);
        this.#markDirty(event.service);
        this.#pump();
        break;
      case 'resync':
        this.#rescanAll(RESYNC_REASON);
        break;
      case 'emitted':
        this.#readyResolved = true;
        this.#pendingChanges = false;
        break;
    }
    const out = this.#out;
    this.#out = [];
    return out;
  }

  // ---- queries (no state changes) ----

  /** the followed services as last read: what the shell emits */
  get entries(): ReadonlyMap<string, FollowedService> {
    return this.#entries;
  }

  /** service names of the last /v1/catalog/services answer (after the filter) */
  serviceNames(): ReadonlySet<string> {
    return this.#known ?? new Set<string>();
  }

  /** `name` is in the catalog's last answer (a read of a name gone is only for the index it names) */
  follows(name: string): boolean {
    return this.#known?.has(name) === true;
  }

  /** a service's tags as /v1/catalog/services lists them (union over its instances) */
  tagsOf(name: string): readonly string[] {
    const k = this.#tagKeys.get(name);
    return k ? k.split('\u0000') : [];
  }

  /** every followed service has an answer, or (failing since before its first) was given up on */
  complete(now: number): boolean {
    const known = this.#known;
    return known !== undefined && this.#initialReadDone && [...known].every((s) => this.#entries.has(s) || this.#gaveUpOn(s, now));
  }

  /** nothing to do until a signal answers: no read pending, no move being explained */
  settled(): boolean {
    return this.#dirty.size === 0 && this.#bulk.size === 0 && this.#inFlight.size === 0 && !this.#rescanQueue.running && this.#pendingExplain === 0 && !this.#explainTimerSet && !this.#summaryInFlight;
  }

  stats(): FollowerCoreStats {
    return {
      services: this.#known?.size ?? 0,
      rescans: this.#rescans,
      sweepReads: this.#sweepReads,
      rescanReasons: { ...this.#rescanReasons },
      summaryUsable: this.#summaryUsable,
      deletionsCounted: this.#deletionsCounted,
      rescansCoalesced: this.#rescansCoalesced,
      readBytes: this.#readBytes,
      unusableAnswers: this.#unusableAnswers,
      sweepProbes: this.#sweepProbes,
      sweepProbesChanged: this.#sweepProbesChanged,
      sweepProbesUsable: this.#sweepProbesUsable,
      checksFilterRefused: this.#checksFilterRefused,
      signalFallbacks: this.#signalFallbacks,
      indexes: { catalog: this.#catalogIndex, checks: this.#checksIndex, nodes: this.#nodesIndex },
    };
  }

  // ---- commands ----

  #log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    this.#out.push({ kind: 'log', level, msg, fields });
  }

  #changed(name: string): void {
    this.#pendingChanges = true;
    this.#out.push({ kind: 'changed', service: name });
  }

  #emitSoon(): void {
    this.#out.push({ kind: 'emit-soon' });
  }

  #setExplainTimer(cmd: { ms: number } | { backoffAttempt: number }): void {
    this.#explainTimerSet = true;
    this.#out.push({ kind: 'set-timer', timer: 'explain', ...cmd });
  }

  #gaveUpOn(s: string, now: number): boolean {
    const failedAt = this.#failedBeforeFirstAnswer.get(s);
    return failedAt !== undefined && (this.#readyResolved || now - failedAt >= this.#startGraceMs);
  }

  // ---- reads: one plain GET per dirty service, within the read slots the shell has free ----

  /** highest index any signal has answered with: a read started now reflects at least that */
  #knownIndex(): number {
    return Math.max(this.#catalogIndex, this.#checksIndex, this.#nodesIndex);
  }

  /** `atIndex`: the signal index that asks for the read; a read that covers it is not repeated */
  #markDirty(name: string, atIndex = Number.POSITIVE_INFINITY): void {
    if (!this.#known?.has(name) && !this.#gone.has(name)) return;
    // (a ?stale read may lag the index the signal saw: then every signal reads)
    if (!this.#stale && (this.#readCovers.get(name) ?? 0) >= atIndex) return;
    if (this.#inFlight.has(name)) this.#again.add(name);
    else {
      this.#bulk.delete(name);
      this.#dirty.add(name);
    }
  }

  /** A rescan's read of `name`, unless its read already reflects `atIndex` or one is pending. */
  #markBulk(name: string, atIndex: number): void {
    if (!this.#stale && (this.#readCovers.get(name) ?? 0) >= atIndex) return;
    if (this.#inFlight.has(name)) {
      if (!this.#again.has(name)) this.#bulkAgain.add(name);
    } else if (!this.#dirty.has(name)) this.#bulk.add(name);
  }

  /** a rescan reads in at most half the read share: a read a signal names always finds a slot */
  #bulkShare(): number {
    return Math.max(1, Math.floor(this.#readLimit / 2));
  }

  /** the reads to start, a signal's first, each with the queue it waits in */
  *#pending(): Generator<[string, Set<string>]> {
    for (const name of this.#dirty) yield [name, this.#dirty];
    for (const name of this.#bulk) yield [name, this.#bulk];
  }

  /** Starts reads while the budget has free read slots; the rest wait in the queues. */
  #pump(): void {
    if (this.#pauseLeftMs > 0) {
      if (!this.#pumpTimerSet && (this.#dirty.size > 0 || this.#bulk.size > 0)) {
        this.#pumpTimerSet = true;
        this.#out.push({ kind: 'set-timer', timer: 'pump', ms: this.#pauseLeftMs });
      }
      return;
    }
    for (const [name, queue] of this.#pending()) {
      if (this.#freeSlots <= 0) break;
      const fromBulk = queue === this.#bulk;
      if (fromBulk && this.#inFlightFromBulk.size >= this.#bulkShare()) break;
      if (this.#inFlight.has(name)) continue;
      queue.delete(name);
      this.#inFlight.add(name);
      const sweep = fromBulk && this.#rescanReason === VERIFY_REASON;
      if (fromBulk) {
        this.#inFlightFromBulk.add(name);
        if (sweep) this.#sweepReads++;
      }
      this.#readCovers.set(name, this.#knownIndex());
      if (this.#retrying.delete(name)) this.#out.push({ kind: 'cancel-retry', service: name });
      this.#freeSlots--;
      // a rescan's read only asks whether the service changed since its last read (its index): one
      // whose index moved is read in full next. Not the resync (the safety net reads everything) nor
      // after a restart (the agent may have a new index space)
      const probe = fromBulk && this.#sweepProbesUsable && !FULL_READ_REASONS.has(this.#rescanReason) && (this.#entries.get(name)?.index ?? 0) > 0;
      if (probe) this.#sweepProbes++;
      this.#out.push({ kind: probe ? 'probe' : 'read', service: name });
    }
  }

  /** A read ended (answered or failed): what waited behind it goes on. */
  #readEnded(name: string): void {
    this.#inFlight.delete(name);
    this.#inFlightFromBulk.delete(name);
    if (this.#again.delete(name)) {
      this.#bulkAgain.delete(name);
      this.#dirty.add(name);
    } else if (this.#bulkAgain.delete(name)) this.#bulk.add(name);
    this.#afterRead();
  }

  #afterRead(): void {
    this.#maybeEndRescan();
    if (!this.#initialReadDone && this.#dirty.size === 0 && this.#bulk.size === 0 && this.#inFlight.size === 0) this.#initialReadDone = true;
    if (this.#dirty.size > 0 || this.#bulk.size > 0) this.#pump();
    if (this.complete(this.#now)) this.#emitSoon();
    if (this.#pendingExplain > 0) this.#checkExplained();
  }

  #readAnswered(name: string, index: number, body: unknown, bytes: number): void {
    if (!this.#known?.has(name)) {
      // a name gone: its answer's index is the extinction index, a deletion (maybe of many services)
      if (this.#gone.delete(name)) this.#ledger.attribute([index], 'read');
      this.#readCovers.delete(name);
      return;
    }
    this.#readBytes += bytes;
    const failures = this.#failures.get(name) ?? 0;
    if (failures > 0) this.#log('info', 'consul read recovered', { service: name, failures });
    this.#failures.delete(name);
    const parsed = parseHealthAnswer(name, body);
    for (const warning of parsed.warnings) this.#out.push({ kind: 'warning', service: name, warning });
    if (!parsed.usable) {
      this.#unusableAnswers++;
      if (!this.#entries.has(name) && !this.#failedBeforeFirstAnswer.has(name)) this.#failedBeforeFirstAnswer.set(name, this.#now);
      return;
    }
    this.#failedBeforeFirstAnswer.delete(name);
    // the writes this answer reflects (its own index: the service's latest write, a tombstone too)
    this.#ledger.attribute(answerIndexes(body), 'instance');
    // its own index only says the service's latest write is that one: a deletion, which may have
    // removed instances of many services at once (a node leaving)
    this.#ledger.attribute([index], 'read');
    const count = Array.isArray(body) ? body.length : 0;
    const key = canonicalJson(parsed.instances);
    const prev = this.#entries.get(name);
    const nodes = answerNodes(body);
    if (prev && prev.key === key) {
      prev.count = count;
      prev.nodes = nodes;
      prev.index = index;
      return;
    }
    this.#entries.set(name, { instances: parsed.instances, index, key, node: new Set(parsed.instances.map((i) => i.node)), count, nodes });
    this.#changed(name);
    // only membership changes predict the next unexplained move (a deploy's deregistration follows
    // its registration); health flips would push those services out of the short list
    if (!prev || !sameMembers(prev.instances, parsed.instances)) this.#noteRecent(name);
  }

  #readFailed(name: string, message: string, code: string | undefined): void {
    this.#readCovers.delete(name); // a failed read reflects nothing
    const n = this.#failures.get(name) ?? 0;
    this.#failures.set(name, n + 1);
    if (code === 'ERR_CONSUL_BODY_TOO_LARGE') this.#unusableAnswers++;
    if (!this.#entries.has(name) && !this.#failedBeforeFirstAnswer.has(name)) this.#failedBeforeFirstAnswer.set(name, this.#now);
    // retried after its own backoff (over-budget pauses are on top, in the budget)
    this.#retrying.add(name);
    this.#out.push({ kind: 'retry-read', service: name, attempt: n, message, ...(code !== undefined ? { code } : {}) });
  }

  /** The sweep's probe answered: the service's answer is still the last one read unless its index moved. */
  #probeAnswered(name: string, index: number): void {
    if (!this.#known?.has(name)) {
      this.#readCovers.delete(name);
      return;
    }
    const entry = this.#entries.get(name);
    if (entry && entry.index === index) return; // what the last read answered is current: covered since the probe began
    // another index (a write, or the agent restarted): what it says is unknown, read it
    this.#sweepProbesChanged++;
    this.#readCovers.delete(name);
    this.#markDirty(name);
  }

  #probeFailed(name: string, message: string, status: number | undefined): void {
    this.#readCovers.delete(name);
    if (status === 400 && this.#sweepProbesUsable) {
      // an agent (or a proxy) without the filter language: the sweep reads in full from now on
      this.#sweepProbesUsable = false;
      this.#log('warn', 'consul refused the sweep probe filter (400): the sweep reads every service in full', { err: message, filter: SWEEP_PROBE_FILTER });
    }
    this.#markDirty(name);
  }

  // ---- rescans ----

  /**
   * Re-reads every service whose last read started before `threshold` was current (a read that started
   * after reflects every write up to it). One at a time: asked for while one is under way, it is queued
   * (at most one, with the highest threshold asked) and starts when the first ends, so it re-reads only
   * what the first read before the later gap.
   */
  #rescanAll(reason: string, detail?: Record<string, unknown>, threshold = Number.POSITIVE_INFINITY): void {
    if (!this.#known) return;
    const asked = this.#rescanQueue.ask({ reason, threshold });
    if (asked.kind === 'queued') {
      if (asked.coalesced) this.#rescansCoalesced++;
      return;
    }
    this.#startRescan(asked.rescan, detail);
  }

  #startRescan({ reason, threshold }: RescanRequest, detail?: Record<string, unknown>): void {
    const known = this.#known;
    if (!known) return;
    this.#rescans++;
    this.#rescanReason = reason;
    this.#rescanReasons[reason] = (this.#rescanReasons[reason] ?? 0) + 1;
    for (const name of known) this.#markBulk(name, threshold);
    const queued = this.#bulk.size + this.#bulkAgain.size;
    // the sweep behind every explained window is routine: logged at debug, like one with nothing to read
    this.#log(queued === 0 || reason === VERIFY_REASON ? 'debug' : 'info', 'consul rescan', { reason, ...detail, services: known.size, reads: queued });
    this.#maybeEndRescan();
    this.#pump();
  }

  /** The rescan under way has no read left: the queued one (if any) starts. */
  #maybeEndRescan(): void {
    if (!this.#rescanQueue.running || this.#bulk.size > 0 || this.#bulkAgain.size > 0 || this.#inFlightFromBulk.size > 0) return;
    const next = this.#rescanQueue.finished();
    if (next) this.#startRescan(next, { queued: true });
  }

  // ---- signals ----

  /** Services (and nodes) whose non-passing checks differ from the previous answer. */
  #onChecks(body: unknown, index: number, first: boolean): void {
    const rows: CheckRow[] = Array.isArray(body) ? (body as CheckRow[]) : [];
    const byService = new Map<string, string[]>();
    const byNode = new Map<string, string[]>();
    for (const r of rows) {
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
    if (!first || this.#checksSettled) {
      for (const name of new Set([...nextServiceKeys.keys(), ...this.#serviceCheckKeys.keys()])) {
        if (nextServiceKeys.get(name) !== this.#serviceCheckKeys.get(name)) this.#markDirty(name, index);
      }
      for (const node of new Set([...nextNodeKeys.keys(), ...this.#nodeCheckKeys.keys()])) {
        if (nextNodeKeys.get(node) === this.#nodeCheckKeys.get(node)) continue;
        for (const [name, e] of this.#entries) if (e.node.has(node)) this.#markDirty(name, index);
      }
    }
    this.#serviceCheckKeys = nextServiceKeys;
    this.#nodeCheckKeys = nextNodeKeys;
    if (first) this.#settleChecks();
    this.#pump();
  }

  /**
   * A check signal's answer. A registration or deregistration with checks moves the checks index too:
   * once it has reached the pending catalog move, waiting longer cannot explain more.
   */
  #onChecksAt(body: unknown, index: number, first: boolean): void {
    if (index > this.#checksIndex) this.#checksIndex = index;
    this.#onChecks(body, index, first);
    if (this.#pendingExplain > 0 && this.#checksIndex >= this.#pendingExplain) this.#checkExplained();
  }

  #settleChecks(): void {
    if (this.#checksSettled) return;
    this.#checksSettled = true;
    this.#maybeInitialRead();
  }

  /**
   * The nodes signal. A node re-registered with another address (an agent back with a new IP) is a
   * node write (ensureNodeTxn): it moves the node's and each of its services' indexes, not the services
   * table's, so /v1/catalog/services does not wake, and no check changes; yet every instance without a
   * Service.Address now has the new address. A node whose row changed (or went) re-reads its services.
   */
  #onNodes(body: unknown, index: number, first: boolean): void {
    if (index > this.#nodesIndex) this.#nodesIndex = index;
    const next = new Map<string, string>();
    if (Array.isArray(body)) {
      for (const r of body as { Node?: unknown; Address?: unknown; ModifyIndex?: unknown }[]) {
        if (typeof r === 'object' && r !== null && typeof r.Node === 'string') next.set(r.Node, `${String(r.Address ?? '')}\u0000${String(r.ModifyIndex ?? '')}`);
      }
    }
    const previous = this.#nodeKeys;
    this.#nodeKeys = next;
    if (previous && (!first || this.#nodesSettled)) {
      for (const node of new Set([...previous.keys(), ...next.keys()])) {
        if (previous.get(node) === next.get(node)) continue;
        for (const [name, e] of this.#entries) if (e.nodes.has(node) || e.node.has(node)) this.#markDirty(name, index);
      }
    }
    this.#settleNodes();
    this.#pump();
  }

  #settleNodes(): void {
    if (this.#nodesSettled) return;
    this.#nodesSettled = true;
    this.#maybeInitialRead();
  }

  /** The first read of every service starts once the signals have a baseline (no change falls between). */
  #maybeInitialRead(): void {
    const known = this.#known;
    if (this.#initialReadStarted || known === undefined || !this.#checksSettled || !this.#nodesSettled) return;
    this.#initialReadStarted = true;
    if (known.size === 0) {
      this.#initialReadDone = true;
      this.#emitSoon();
      return;
    }
    for (const name of known) this.#dirty.add(name);
    this.#pump();
  }

  #noteRecent(name: string): void {
    this.#recent.delete(name);
    this.#recent.set(name, true);
    if (this.#recent.size > RECENT_MAX) this.#recent.delete(this.#recent.keys().next().value as string);
  }

  /** New, removed and re-tagged service names of a catalog/services answer; true when there is any. */
  #applyServiceNames(body: unknown, firstEver: boolean): boolean {
    const record = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
    const allow = this.#allow;
    const names = new Set(Object.keys(record).filter((n) => (allow ? allow.has(n) : this.#everyService || !WATCH_ALL_EXCEPT.has(n))));
    let visible = false;
    const previous = this.#known ?? new Set<string>();
    this.#known = names;
    for (const name of names) {
      this.#gone.delete(name);
      const tags = Array.isArray(record[name]) ? (record[name] as unknown[]).map(String).sort().join('\u0000') : '';
      if (!previous.has(name)) {
        visible = true;
        if (!firstEver) this.#dirty.add(name);
      } else if (this.#tagKeys.get(name) !== tags) {
        visible = true;
        this.#markDirty(name);
      }
      this.#tagKeys.set(name, tags);
    }
    for (const name of previous) {
      if (names.has(name)) continue;
      visible = true;
      // read once more: its answer names the extinction index (the last time any service lost its last
      // instance), which may be the write this move covers
      this.#tagKeys.delete(name);
      this.#readCovers.delete(name);
      this.#failures.delete(name);
      this.#failedBeforeFirstAnswer.delete(name);
      if (this.#retrying.delete(name)) this.#out.push({ kind: 'cancel-retry', service: name });
      if (this.#entries.delete(name)) this.#changed(name);
      this.#bulk.delete(name);
      this.#bulkAgain.delete(name);
      this.#gone.add(name);
      this.#windowReads.add(name);
      if (this.#inFlight.has(name)) this.#again.add(name);
      else this.#dirty.add(name);
      this.#log('debug', 'service gone', { service: name });
    }
    return visible;
  }

  #onServices(body: unknown, index: number, first: boolean, text?: string): void {
    const firstEver = this.#known === undefined;
    // the same names and tags as last time: nothing to walk (thousands of names and their tags per move)
    // (canonical: Consul lists each service's tags in Go map order, another on every answer)
    const canonical = text === undefined ? undefined : canonicalServicesText(body);
    const same = !first && !firstEver && canonical !== undefined && canonical === this.#servicesText;
    this.#servicesText = canonical;
    const visible = same ? false : this.#applyServiceNames(body, firstEver);
    const moved = index > this.#catalogIndex && this.#catalogIndex > 0;
    this.#catalogIndex = index;
    if (firstEver) {
      this.#ledger.reset(index);
      this.#maybeInitialRead();
      return;
    }
    if (first) {
      // a new baseline after an error: what changed meanwhile is unknown
      this.#closeWindow(this.#pendingExplain);
      this.#ledger.reset(index);
      this.#rescanAll(RESTART_REASON);
    } else if (moved && !visible && !this.#summaryUsable && (this.#known?.size ?? 0) <= IMMEDIATE_RESCAN_MAX) {
      this.#closeWindow(index);
      this.#rescanAll('catalog move unexplained (small catalog, no summary)');
    } else if (moved) {
      // every move, a visible one too: one answer may cover a change no signal shows beside it
      this.#ledger.noteAnswer(index);
      // each move may guess (its change is most likely the last-changed service's) and have its summary
      this.#triedRecent = new Set();
      this.#windowSummaries = 0;
      if (this.#pendingExplain === 0) this.#windowOpenedAt = this.#now;
      this.#pendingExplain = Math.max(this.#pendingExplain, index);
      this.#checkExplained();
    }
    if (this.#pendingChanges) this.#emitSoon();
    this.#pump();
  }

  // ---- explaining a catalog move ----

  #closeWindow(target: number): void {
    this.#ledger.close(target);
    if (this.#pendingExplain <= target) this.#pendingExplain = 0;
    this.#triedRecent = new Set();
    this.#windowReads = new Set();
    this.#windowOpenedAt = this.#pendingExplain > 0 ? this.#now : 0; // what later moves added waits afresh
    this.#windowSummaries = 0;
    this.#summaryAt = 0;
    this.#summaryFailures = 0;
  }

  /** the service whose membership changed last and whose last read may predate the move */
  #nextRecent(target: number): string | undefined {
    for (const name of [...this.#recent.keys()].reverse()) {
      if (this.#triedRecent.has(name) || !this.#known?.has(name)) continue;
      if ((this.#readCovers.get(name) ?? 0) >= target) continue; // a read started after the move reflects it
      return name;
    }
    return undefined;
  }

  #readPending(name: string): boolean {
    return this.#dirty.has(name) || this.#bulk.has(name) || this.#inFlight.has(name) || this.#again.has(name);
  }

  /**
   * Explains the pending catalog move once no read is pending: done when every write it covers is
   * accounted for; else the last-changed service, then the summary, then (no summary) a rescan.
   */
  #checkExplained(): void {
    if (this.#explainTimerSet) {
      this.#explainTimerSet = false;
      this.#out.push({ kind: 'clear-timer', timer: 'explain' });
    }
    if (this.#pendingExplain === 0) return;
    const target = this.#pendingExplain;
    const recentBudget = this.#summaryUsable ? RECENT_BEFORE_SUMMARY : RECENT_MAX;
    const step = nextExplainStep({
      notByInstance: this.#ledger.notByInstance(target),
      unnamed: this.#ledger.unattributed(target),
      answersUnnamed: this.#ledger.answersUnnamed(target).length,
      ownReadsPending: [...this.#windowReads].some((name) => this.#readPending(name)),
      // a rescan's reads are not waited for: most started before the move, and they come last
      anyReadUnderWay: this.#dirty.size > 0 || this.#inFlight.size > this.#inFlightFromBulk.size,
      waitLeftMs: this.#windowOpenedAt + EXPLAIN_WINDOW_MS - this.#now,
      checksCaughtUp: this.#checksIndex >= target,
      checksGraceLeftMs: this.#windowOpenedAt + CHECKS_GRACE_MS - this.#now,
      guess: this.#triedRecent.size < recentBudget ? this.#nextRecent(target) : undefined,
      summaryUsable: this.#summaryUsable,
      summaryReflects: this.#summaryAt >= target,
      summariesLeft: this.#windowSummaries < MAX_SUMMARIES_PER_WINDOW,
      summaryInFlight: this.#summaryInFlight,
    });
    switch (step.kind) {
      case 'explained':
        this.#closeWindow(target);
        this.#rescanAll(step.verify, { target }, target);
        return;
      case 'await-reads':
        return; // asked again when it is answered (afterRead)
      case 'wait':
        this.#setExplainTimer({ ms: step.ms });
        return;
      case 'guess':
        this.#triedRecent.add(step.service);
        this.#windowReads.add(step.service);
        this.#markDirty(step.service);
        this.#pump();
        return;
      case 'summary':
        this.#summaryInFlight = true;
        this.#summaryTarget = target;
        this.#windowSummaries++;
        // the summary takes a read slot as a service read does (when one is free now)
        if (this.#freeSlots > 0 && this.#pauseLeftMs <= 0) this.#freeSlots--;
        this.#out.push({ kind: 'read-summary' });
        return;
      case 'deletions-counted':
        this.#deletionsCounted++;
        this.#log('debug', 'catalog move explained by the summary', { target });
        this.#closeWindow(target);
        this.#rescanAll(step.verify, { target }, target);
        return;
      case 'rescan': {
        // the window's end, not its last gap: an index above the gap that a read named may have written
        // services no read names too (a /v1/txn; the randomized test's seed 7 at 5,000 writes)
        const threshold = target;
        this.#closeWindow(target);
        this.#rescanAll(step.reason, { target, threshold }, threshold);
        return;
      }
    }
  }

  /** The summary answered: services whose instance count or nodes differ are re-read. */
  #summaryAnswered(index: number, body: unknown): void {
    this.#summaryInFlight = false;
    const parsed = parseCatalogSummary(body);
    if (!parsed.ok) {
      this.#summaryUsable = false;
      this.#log('warn', 'consul catalog summary unusable, unexplained catalog moves rescan', { reason: parsed.reason });
    } else {
      this.#summaryFailures = 0;
      // a ?stale answer may lag: it explains only what it reflects
      if (index >= this.#summaryTarget) this.#summaryAt = Math.max(this.#summaryAt, index);
      const held = new Map<string, ServiceSummary>();
      for (const [name, e] of this.#entries) held.set(name, { count: e.count, nodes: e.nodes });
      for (const name of servicesWithOtherCounts(parsed.services, held, (n) => this.#known?.has(n) === true)) {
        this.#windowReads.add(name);
        this.#markDirty(name);
      }
    }
    this.#pump();
    if (!this.#explainTimerSet) this.#afterRead();
  }

  #summaryFailed(message: string, status: number | undefined, code: string | undefined): void {
    this.#summaryInFlight = false;
    // an agent without the endpoint (404, 405), or a token that may not read it all (403)
    if (status === 404 || status === 403 || status === 405 || status === 400 || code === 'ERR_CONSUL_BAD_ANSWER') {
      this.#summaryUsable = false;
      this.#log('warn', 'consul catalog summary not available, unexplained catalog moves rescan', { err: message, status });
    } else if (++this.#summaryFailures < 3) {
      // transient: try again after a backoff (the budget adds its over-budget pause)
      this.#windowSummaries--;
      this.#setExplainTimer({ backoffAttempt: this.#summaryFailures });
    } else {
      this.#summaryAt = 0;
      this.#windowSummaries = MAX_SUMMARIES_PER_WINDOW;
    }
    this.#pump();
    if (!this.#explainTimerSet) this.#afterRead();
  }
}
