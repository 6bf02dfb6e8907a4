// The node:cluster supervisor of the primary: worker GENERATIONS sharing one listening port.
// - start(table): fork N workers of generation 1, each builds its runtime from the init message,
//   applies the table, listens and reports ready.
// - publish(table) (dynamic mode): the table goes by IPC to every live worker; resolves when all
//   acknowledged, and records the latency.
// - reload(table) (reload mode, nginx-style): fork a new generation with the table, wait until all of
//   it listens, then tell the old generation to stop accepting and exit once drained (bounded by the
//   drain timeout, then killed).
// - standby (reload mode): the next generation's processes are forked ahead of time (node started,
//   modules loaded, no init, not listening); reload() hands them the table, so a reload costs the
//   runtime build and listen, not a process start. They are still a new generation: fresh processes
//   that learn everything from the init, as a cold fork does. The next standby is forked after.
// - a worker of the current generation that dies unexpectedly is restarted with backoff and gets
//   the current table.
import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { ScriptStats } from '../scripts/script-host.js';
import type pino from 'pino';
import { backoffDelay, type BackoffPolicy } from '../../../common/backoff.js';
import { makeDelta, type TableDelta } from '../routing/table-delta.js';
import type { RouteTable } from '../routing/types.js';
import type { StatusAnswer, StatusQuery, UpstreamStatus } from '../worker/runtime.js';
import type { WorkerMetricsMessage } from '../metrics/delta.js';
import { isWorkerMessage, type PrimaryToWorker, type WorkerInitOptions, type WorkerToPrimary } from './messages.js';

export interface SupervisorOptions {
  readonly workers: number;
  readonly init: WorkerInitOptions;
  readonly logger: pino.Logger;
  /** bound on an old generation's drain before it is killed */
  readonly drainTimeoutMs: number;
  /** bound on a new generation coming up (fork, runtime, listen) */
  readonly startTimeoutMs?: number;
  /** bound on one worker acknowledging a table */
  readonly publishTimeoutMs?: number;
  readonly restartBackoff?: BackoffPolicy;
  /** worker entry; defaults to worker-main next to this file */
  readonly exec?: string;
  readonly execArgv?: readonly string[];
  /** a worker's periodic metrics report (balancer/src/metrics); `reply` sends that worker a message */
  readonly onMetrics?: (msg: WorkerMetricsMessage, reply: (msg: PrimaryToWorker) => void) => void;
  /** reload mode: keep the next generation forked ahead of time (see the top of this file) */
  readonly standby?: boolean;
}

/** Where one reload's time went (ms; the slowest worker of the new generation for each phase). */
export interface ReloadPhases {
  /** fork to the worker's hello: node start-up and module loading (0 when a standby had said hello already) */
  readonly forkMs: number;
  /** whether the new generation was a standby forked ahead of time */
  readonly standby: boolean;
  /** init sent to the worker listening: runtime build, first table, listen */
  readonly initToReadyMs: number;
  /** reload() called to the whole new generation listening */
  readonly totalMs: number;
}

export interface WorkerStatusAnswer {
  readonly workerId: number;
  readonly pid: number | undefined;
  readonly generation: number;
  readonly answer: StatusAnswer;
}

export interface WorkerStatusReport {
  readonly workerId: number;
  readonly pid: number | undefined;
  readonly generation: number;
  readonly upstreams: UpstreamStatus[];
  /** request script counters of that worker */
  readonly scripts?: ScriptStats[];
}

/** What changed from `previous` to the published table (the holder's TableChange fits). */
export interface PublishChange {
  readonly previous: RouteTable;
  readonly upserted: readonly string[];
  readonly removed: readonly string[];
}

export interface PublishResult {
  readonly latencyMs: number;
  readonly acked: number;
  readonly workers: number;
}

/** Emitted when every live worker acknowledged a table (at = performance.now() of the last ack). */
export interface PublishedEvent {
  readonly table: RouteTable;
  readonly at: number;
  readonly latencyMs: number;
  readonly acked: number;
  readonly workers: number;
  /** live workers that were sent the table and did not acknowledge it in time */
  readonly notAcked: readonly WorkerRef[];
}

export interface WorkerRef {
  readonly workerId: number;
  readonly pid: number | undefined;
}

/** Whether every live worker serves a table version; when not, which ones may not. */
export interface PublishOutcome {
  readonly live: boolean;
  readonly notAcked: readonly WorkerRef[];
}

export interface SupervisorMetrics {
  readonly generation: number;
  readonly workersAlive: number;
  readonly workersReady: number;
  readonly restarts: number;
  readonly publishes: number;
  /** per-worker sends: deltas, full tables (start, gaps, unknown state), and gaps reported */
  readonly deltas: { readonly sent: number; readonly full: number; readonly gaps: number };
  readonly workerApplyMs: { readonly p50: number; readonly p99: number; readonly samples: number };
  readonly reloads: number;
  /** reload mode: workers of the next generation forked ahead of time that said hello (ready for a reload) */
  readonly standbyReady: number;
  /** reload mode: fork to every worker of the new generation listening, last reload */
  readonly lastReloadMs: number;
  readonly publishLatencyMs: { readonly last: number; readonly p50: number; readonly p99: number; readonly max: number; readonly samples: number };
}

/** One worker as extensions (TLS) see it: an id and a way to send it a message. */
export interface WorkerChannel {
  readonly workerId: number;
  send(msg: PrimaryToWorker): boolean;
}

export class SupervisorError extends Error {
  constructor(readonly code: 'ERR_WORKER_START' | 'ERR_RELOAD_FAILED' | 'ERR_SUPERVISOR_STOPPED' | 'ERR_NOT_STARTED', message: string) {
    super(message);
    this.name = 'SupervisorError';
  }
}

/** standby: forked ahead of time, no init yet (reload mode) */
type MemberState = 'standby' | 'starting' | 'ready' | 'draining' | 'gone';

interface Member {
  readonly worker: Worker;
  readonly generation: number;
  readonly slot: number;
  readonly forkedAt: number;
  /** performance.now() of the fork, the hello, the init and the ready (phase timings) */
  readonly forkedPerf: number;
  helloPerf?: number;
  initPerf?: number;
  readyPerf?: number;
  /** the table this worker is built with when its generation is not (yet) the current one (a standby gets it at reload) */
  initTable: RouteTable | undefined;
  state: MemberState;
  inited: boolean;
  readonly pending: Map<number, (reply: WorkerToPrimary | undefined) => void>;
  readonly ready: Promise<boolean>;
  resolveReady: (ok: boolean) => void;
  fatal?: string;
  /** the table version this worker will hold once it has processed everything sent to it (deltas chain on it) */
  expectVersion?: string;
}

const LATENCY_SAMPLES = 512;

export class Supervisor {
  private readonly log: pino.Logger;
  private readonly members = new Map<number, Member>();
  private table: RouteTable | undefined;
  private generation = 0;
  private seq = 0;
  private stopping = false;
  private restarts = 0;
  private publishes = 0;
  private deltaPublishes = 0;
  private fullPublishes = 0;
  private deltaGaps = 0;
  /** time a worker took to apply a table or delta (from its acks), ms */
  private readonly applyTimes: number[] = [];
  private reloads = 0;
  private lastReloadMs = 0;
  private readonly latencies: number[] = [];
  private lastLatency = 0;
  private readonly slotFailures = new Map<number, number>();
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private reloadChain: Promise<unknown> = Promise.resolve();
  private listenAddress: { address: string; port: number; family: string } | undefined;
  private readonly drains = new Set<Promise<void>>();
  private readonly publishedListeners = new Set<(e: PublishedEvent) => void>();
  private lastPublishedVersion: string | undefined;
  private tlsListenAddresses: readonly { address: string; port: number; family: string }[] | undefined;
  private readonly initListeners = new Set<(ch: WorkerChannel) => void>();
  private readonly extraMessageListeners = new Set<(ch: WorkerChannel, msg: WorkerToPrimary) => void>();
  private lastNotAcked: readonly WorkerRef[] = [];

  constructor(private readonly opts: SupervisorOptions) {
    this.log = opts.logger;
    if (!cluster.isPrimary) throw new Error('Supervisor must run in the primary process');
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    const exec = opts.exec ?? fileURLToPath(new URL(`./worker-main${ext}`, import.meta.url));
    // the test runner's own flags (--test*) must not reach the workers; loaders (tsx) must
    const execArgv = opts.execArgv ?? process.execArgv.filter((a) => !a.startsWith('--test'));
    // One worker has nobody to share connections with: it accepts on the listening socket itself
    // instead of the primary accepting every connection and passing it over IPC (round-robin), which
    // was a third of the worker's busy time on new TLS connections (bench/native-profile --tls --close).
    // Frozen by the first setupPrimary; NODE_CLUSTER_SCHED_POLICY decides when set.
    if (opts.workers <= 1 && process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec, execArgv: [...execArgv] });
  }

  /** Forks generation 1 and resolves once every worker listens. */
  async start(table: RouteTable): Promise<{ address: string; port: number }> {
    if (this.generation !== 0) throw new Error('Supervisor already started');
    this.table = table;
    this.generation = 1;
    const forked = this.forkGeneration(1, table);
    const ok = await this.awaitReady(forked);
    if (!ok) {
      const why = forked.map((m) => m.fatal).filter(Boolean).join('; ') || 'timeout';
      await Promise.all(forked.map((m) => this.retire(m, 1000)));
      throw new SupervisorError('ERR_WORKER_START', `workers did not start: ${why}`);
    }
    this.lastPublishedVersion ??= table.version;
    this.log.info({ generation: 1, workers: forked.length, port: this.listenAddress?.port }, 'workers ready');
    this.forkStandby();
    return { address: this.listenAddress?.address ?? this.opts.init.listenHost, port: this.listenAddress?.port ?? this.opts.init.listenPort };
  }

  /** The address the workers listen on (the real port when the configured one was 0). */
  address(): { address: string; port: number } | undefined {
    return this.listenAddress ? { address: this.listenAddress.address, port: this.listenAddress.port } : undefined;
  }

  /** The TLS listener addresses the workers reported (the real ports when configured as 0). */
  tlsAddresses(): readonly { address: string; port: number; family: string }[] | undefined {
    return this.tlsListenAddresses;
  }

  /** Called right after a worker was sent its init: messages sent now arrive after it (TLS certificates, ticket keys). */
  onWorkerInit(listener: (ch: WorkerChannel) => void): () => void {
    this.initListeners.add(listener);
    return () => this.initListeners.delete(listener);
  }

  /** Messages of types the supervisor itself does not handle (TLS acknowledgements). */
  onWorkerMessage(listener: (ch: WorkerChannel, msg: WorkerToPrimary) => void): () => void {
    this.extraMessageListeners.add(listener);
    return () => this.extraMessageListeners.delete(listener);
  }

  /** Every live worker that has its init, of any generation (a draining one still serves its connections). */
  channels(): WorkerChannel[] {
    return [...this.members.values()].filter((m) => m.inited && m.state !== 'gone').map((m) => this.channelOf(m));
  }

  private channelOf(m: Member): WorkerChannel {
    return { workerId: m.worker.id, send: (msg) => this.send(m, msg) };
  }

  private notify<A extends unknown[]>(listeners: Iterable<(...args: A) => void>, ...args: A): void {
    for (const l of listeners) {
      try {
        l(...args);
      } catch (err) {
        this.log.warn({ err }, 'supervisor listener failed');
      }
    }
  }

  currentTable(): RouteTable | undefined {
    return this.table;
  }

  /** Dynamic mode: send the table to every live worker of the current generation. */
  /**
   * Dynamic mode: send the table to every live worker of the current generation. With `change` (what
   * the holder says changed from `change.previous`), a worker known to hold that previous table gets a
   * delta; any other worker, or one that answers `gap`, gets the full table.
   */
  async publish(table: RouteTable, change?: PublishChange): Promise<PublishResult> {
    if (this.stopping) throw new SupervisorError('ERR_SUPERVISOR_STOPPED', 'supervisor is stopping');
    this.table = table;
    const t0 = performance.now();
    // workers that have not been sent their init yet will get this table with it
    const targets = [...this.members.values()].filter((m) => m.generation === this.generation && m.inited && (m.state === 'starting' || m.state === 'ready'));
    const timeoutMs = this.opts.publishTimeoutMs ?? 5000;
    let delta: TableDelta | undefined;
    const full = (m: Member) => {
      m.expectVersion = table.version;
      this.fullPublishes++;
      return this.request(m, (seq) => ({ type: 'table', seq, table }), timeoutMs);
    };
    const sendOne = async (m: Member): Promise<WorkerToPrimary | undefined> => {
      if (change && m.expectVersion === change.previous.version) {
        delta ??= makeDelta(change.previous, table, change.upserted, change.removed);
        m.expectVersion = table.version;
        this.deltaPublishes++;
        const reply = await this.request(m, (seq) => ({ type: 'table-delta', seq, delta: delta! }), timeoutMs);
        if (reply?.type !== 'gap') return reply;
        this.deltaGaps++;
        this.log.info({ workerId: m.worker.id, have: reply.have, wanted: change.previous.version }, 'worker missed a table change, sending the full table');
      }
      return full(m);
    };
    const replies = await Promise.all(targets.map(sendOne));
    const latencyMs = performance.now() - t0;
    const acked = replies.filter((r) => r?.type === 'ack').length;
    this.publishes++;
    this.lastLatency = latencyMs;
    this.latencies.push(latencyMs);
    if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
    const level = acked < targets.length ? 'warn' : 'info';
    const notAcked = targets.filter((_, i) => replies[i]?.type !== 'ack').map((m) => ({ workerId: m.worker.id, pid: m.worker.process.pid }));
    const event: PublishedEvent = { table, at: performance.now(), latencyMs, acked, workers: targets.length, notAcked };
    this.lastPublishedVersion = table.version;
    this.lastNotAcked = notAcked;
    for (const l of this.publishedListeners) {
      try {
        l(event);
      } catch (err) {
        this.log.warn({ err }, 'publish listener failed');
      }
    }
    this.log[level]({ version: table.version, latencyMs: Math.round(latencyMs * 100) / 100, acked, workers: targets.length }, 'table published');
    return { latencyMs, acked, workers: targets.length };
  }

  /** Version of the table every worker acknowledged last (the start table before any publish). */
  publishedVersion(): string | undefined {
    return this.lastPublishedVersion;
  }

  /**
   * Resolves once a table of this version was sent to every live worker: live only when each of them
   * acknowledged it; on timeout every live worker of the current generation is listed (unknown which).
   */
  whenPublished(version: string, timeoutMs: number): Promise<PublishOutcome> {
    const outcome = (notAcked: readonly WorkerRef[]): PublishOutcome => ({ live: notAcked.length === 0, notAcked });
    if (this.lastPublishedVersion === version) return Promise.resolve(outcome(this.lastNotAcked));
    return new Promise((resolve) => {
      const finish = (o: PublishOutcome) => {
        clearTimeout(timer);
        off();
        resolve(o);
      };
      const timer = setTimeout(() => {
        const live = [...this.members.values()].filter((m) => m.generation === this.generation && m.state !== 'gone' && m.state !== 'draining');
        finish({ live: false, notAcked: live.map((m) => ({ workerId: m.worker.id, pid: m.worker.process.pid })) });
      }, timeoutMs);
      const off = this.onPublished((e) => {
        if (e.table.version === version) finish(outcome(e.notAcked));
      });
    });
  }

  /** Observe completed publishes (latency measurement, tests). */
  onPublished(listener: (e: PublishedEvent) => void): () => void {
    this.publishedListeners.add(listener);
    return () => this.publishedListeners.delete(listener);
  }

  /**
   * Reload mode: a new generation with this table, then the old one drains. Reloads are serialised.
   * Resolves when the new generation serves (the old one keeps draining in the background).
   */
  reload(table: RouteTable): Promise<{ generation: number; phases?: ReloadPhases }> {
    const run = this.reloadChain.then(() => this.reloadNow(table));
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(table: RouteTable): Promise<{ generation: number; phases?: ReloadPhases }> {
    if (this.stopping) throw new SupervisorError('ERR_SUPERVISOR_STOPPED', 'supervisor is stopping');
    // the first reload of a supervisor nobody started is its start
    if (this.generation === 0) {
      await this.start(table);
      return { generation: this.generation };
    }
    const next = this.generation + 1;
    const t0 = performance.now();
    const standby = this.takeStandby(next, table);
    const forked = standby ?? this.forkGeneration(next, table);
    const ok = await this.awaitReady(forked);
    if (!ok) {
      const why = forked.map((m) => m.fatal).filter(Boolean).join('; ') || 'timeout';
      await Promise.all(forked.map((m) => this.retire(m, 1000)));
      this.log.error({ generation: next, why }, 'new generation failed, the old one keeps serving');
      this.forkStandby();
      throw new SupervisorError('ERR_RELOAD_FAILED', `generation ${next} did not start: ${why}`);
    }
    const phases = reloadPhases(forked, t0, standby !== undefined);
    const old = [...this.members.values()].filter((m) => m.generation < next && m.state !== 'gone');
    this.generation = next;
    this.table = table;
    this.reloads++;
    this.lastReloadMs = performance.now() - t0;
    this.log.info({ generation: next, version: table.version, startMs: Math.round(performance.now() - t0), ...phases, draining: old.length }, 'new generation serving, old one draining');
    for (const m of old) this.trackDrain(this.retire(m, this.opts.drainTimeoutMs));
    this.forkStandby();
    return { generation: next, phases };
  }

  /** The standby of generation `next`, each member given its table (init now if it said hello, else on hello). */
  private takeStandby(next: number, table: RouteTable): Member[] | undefined {
    const standby = [...this.members.values()].filter((m) => m.state === 'standby');
    if (standby.length === 0) return undefined;
    const usable = standby.length === Math.max(1, this.opts.workers) && standby.every((m) => m.generation === next && m.worker.isConnected());
    if (!usable) {
      // a standby member died or belongs to another generation: start this one cold
      for (const m of standby) void this.retire(m, 1000);
      return undefined;
    }
    for (const m of standby) {
      m.state = 'starting';
      m.initTable = table;
      if (m.helloPerf !== undefined) this.sendInit(m);
    }
    return standby;
  }

  /** Reload mode: fork the next generation's processes now, so the next reload does not wait for a process start. */
  private forkStandby(): void {
    if (!this.opts.standby || this.stopping) return;
    if ([...this.members.values()].some((m) => m.state === 'standby')) return;
    for (let slot = 0; slot < Math.max(1, this.opts.workers); slot++) this.fork(this.generation + 1, slot, undefined);
  }

  /** runtime.status() of every ready worker of the current generation. */
  async status(timeoutMs = 2000): Promise<WorkerStatusReport[]> {
    const targets = [...this.members.values()].filter((m) => m.generation === this.generation && m.state === 'ready');
    const replies = await Promise.all(targets.map((m) => this.request(m, (seq) => ({ type: 'status', seq }), timeoutMs)));
    const out: WorkerStatusReport[] = [];
    replies.forEach((r, i) => {
      if (r?.type === 'status') out.push({ workerId: targets[i].worker.id, pid: targets[i].worker.process.pid, generation: targets[i].generation, upstreams: r.upstreams, scripts: r.scripts });
    });
    return out;
  }

  /** One GET /status page's worth from every ready worker of the current generation. */
  async statusQuery(query: StatusQuery, timeoutMs = 2000): Promise<WorkerStatusAnswer[]> {
    const targets = [...this.members.values()].filter((m) => m.generation === this.generation && m.state === 'ready');
    const replies = await Promise.all(targets.map((m) => this.request(m, (seq) => ({ type: 'status-query', seq, query }), timeoutMs)));
    const out: WorkerStatusAnswer[] = [];
    replies.forEach((r, i) => {
      if (r?.type === 'status-answer') out.push({ workerId: targets[i].worker.id, pid: targets[i].worker.process.pid, generation: targets[i].generation, answer: r.answer });
    });
    return out;
  }

  metrics(): SupervisorMetrics {
    const alive = [...this.members.values()].filter((m) => m.state !== 'gone' && m.state !== 'standby');
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const pick = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0);
    return {
      generation: this.generation,
      workersAlive: alive.length,
      workersReady: alive.filter((m) => m.state === 'ready' && m.generation === this.generation).length,
      restarts: this.restarts,
      publishes: this.publishes,
      deltas: { sent: this.deltaPublishes, full: this.fullPublishes, gaps: this.deltaGaps },
      workerApplyMs: (() => {
        const a = [...this.applyTimes].sort((x, y) => x - y);
        const at = (q: number) => a[Math.min(a.length - 1, Math.floor(q * a.length))] ?? 0;
        return { p50: at(0.5), p99: at(0.99), samples: a.length };
      })(),
      reloads: this.reloads,
      standbyReady: [...this.members.values()].filter((m) => m.state === 'standby' && m.helloPerf !== undefined).length,
      lastReloadMs: this.lastReloadMs,
      publishLatencyMs: { last: this.lastLatency, p50: pick(0.5), p99: pick(0.99), max: sorted[sorted.length - 1] ?? 0, samples: sorted.length },
    };
  }

  /** Graceful stop: every worker drains (bounded by the drain timeout, then killed). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    await this.reloadChain;
    const all = [...this.members.values()].filter((m) => m.state !== 'gone');
    await Promise.all([...all.map((m) => this.retire(m, this.opts.drainTimeoutMs)), ...this.drains]);
    this.log.info('all workers stopped');
  }

  private trackDrain(p: Promise<void>): void {
    this.drains.add(p);
    void p.finally(() => this.drains.delete(p));
  }

  private forkGeneration(generation: number, table: RouteTable): Member[] {
    const out: Member[] = [];
    for (let slot = 0; slot < Math.max(1, this.opts.workers); slot++) out.push(this.fork(generation, slot, table));
    return out;
  }

  /** Without a table: a standby, which gets its table (and its init) from reload(). */
  private fork(generation: number, slot: number, table: RouteTable | undefined): Member {
    const worker = cluster.fork({
      BALANCER_WORKER_GENERATION: String(generation),
      BALANCER_WORKER_SLOT: String(slot),
      // the worker loads its runtime before saying hello (a standby is ready to build it at once)
      BALANCER_WORKER_RUNTIME: this.opts.init.runtimeModule ?? '',
    });
    let resolveReady!: (ok: boolean) => void;
    const ready = new Promise<boolean>((r) => (resolveReady = r));
    const member: Member = {
      worker, generation, slot, forkedAt: Date.now(), forkedPerf: performance.now(), initTable: table,
      state: table ? 'starting' : 'standby', inited: false, pending: new Map(), ready, resolveReady,
    };
    this.members.set(worker.id, member);
    worker.on('message', (msg: unknown) => this.onMessage(member, msg));
    worker.on('error', (err) => this.log.warn({ err, workerId: worker.id }, 'worker channel error'));
    worker.on('exit', (code, signal) => this.onExit(member, code, signal));
    this.log.debug({ workerId: worker.id, pid: worker.process.pid, generation, slot }, 'worker forked');
    return member;
  }

  private onMessage(m: Member, msg: unknown): void {
    if (!isWorkerMessage(msg)) return;
    switch (msg.type) {
      case 'hello':
        m.helloPerf = performance.now();
        // a standby waits for reload() to give it a table
        if (m.state !== 'standby') this.sendInit(m);
        else if ([...this.members.values()].every((o) => o.state !== 'standby' || o.helloPerf !== undefined)) {
          this.log.info({ generation: m.generation, startMs: Math.round(m.helloPerf - m.forkedPerf) }, 'standby generation ready');
        }
        return;
      case 'ready':
        m.readyPerf = performance.now();
        if (m.state === 'starting') m.state = 'ready';
        this.listenAddress ??= msg.address;
        if (msg.tls) this.tlsListenAddresses ??= msg.tls;
        m.resolveReady(true);
        return;
      case 'fatal':
        m.fatal = msg.message;
        this.log.error({ workerId: m.worker.id, generation: m.generation, message: msg.message, code: msg.code }, 'worker failed to start');
        m.resolveReady(false);
        return;
      case 'metrics':
        try {
          this.opts.onMetrics?.(msg, (reply) => this.send(m, reply));
        } catch (err) {
          this.log.warn({ err }, 'metrics report failed');
        }
        return;
      case 'ack':
        if (typeof msg.applyMs === 'number') {
          this.applyTimes.push(msg.applyMs);
          if (this.applyTimes.length > LATENCY_SAMPLES) this.applyTimes.shift();
        }
      // falls through
      case 'gap':
      case 'status':
      case 'status-answer':
      case 'drained': {
        const resolve = m.pending.get(msg.seq);
        if (resolve) {
          m.pending.delete(msg.seq);
          resolve(msg);
        }
        return;
      }
      default:
        this.notify(this.extraMessageListeners, this.channelOf(m), msg);
    }
  }

  private sendInit(m: Member): void {
    // the current generation always gets the newest table; a generation being brought up by
    // reload() gets the table it was forked for (or, a standby, handed at reload)
    const table = m.generation === this.generation && this.table ? this.table : m.initTable;
    if (!table) return;
    m.initPerf = performance.now();
    this.send(m, { type: 'init', generation: m.generation, options: this.opts.init, table });
    m.expectVersion = table.version;
    m.inited = true;
    this.notify(this.initListeners, this.channelOf(m));
  }

  private onExit(m: Member, code: number | null, signal: string | null): void {
    const wasStandby = m.state === 'standby';
    const wasDraining = m.state === 'draining';
    m.state = 'gone';
    m.resolveReady(false);
    for (const resolve of m.pending.values()) resolve(undefined);
    m.pending.clear();
    this.members.delete(m.worker.id);
    if (wasStandby && !this.stopping) {
      // not restarted here: the next reload starts cold, and forks a new standby after
      this.log.warn({ workerId: m.worker.id, pid: m.worker.process.pid, generation: m.generation, code, signal }, 'standby worker exited');
      return;
    }
    if (wasDraining || this.stopping) {
      this.log.debug({ workerId: m.worker.id, code, signal }, 'worker exited');
      return;
    }
    if (m.generation !== this.generation) {
      this.log.warn({ workerId: m.worker.id, pid: m.worker.process.pid, generation: m.generation, code, signal }, 'worker died unexpectedly');
      return;
    }
    // a worker that lived a while is a fresh failure; one that dies right away backs off further
    const failures = Date.now() - m.forkedAt > 10_000 ? 0 : (this.slotFailures.get(m.slot) ?? 0);
    this.slotFailures.set(m.slot, failures + 1);
    const delay = backoffDelay(this.opts.restartBackoff ?? { baseMs: 100, maxMs: 10_000 }, failures);
    this.log.warn({ workerId: m.worker.id, pid: m.worker.process.pid, generation: m.generation, code, signal, restartInMs: delay }, 'worker died unexpectedly');
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (this.stopping || m.generation !== this.generation || !this.table) return;
      this.restarts++;
      const replacement = this.fork(m.generation, m.slot, this.table);
      void replacement.ready.then((ok) => this.log.info({ workerId: replacement.worker.id, slot: m.slot, ok }, 'worker restarted'));
    }, delay);
    this.restartTimers.add(timer);
  }

  private send(m: Member, msg: PrimaryToWorker): boolean {
    if (m.state === 'gone' || !m.worker.isConnected()) return false;
    try {
      m.worker.send(msg);
      return true;
    } catch (err) {
      this.log.warn({ err, workerId: m.worker.id }, 'send to worker failed');
      return false;
    }
  }

  /** One request/reply; undefined on timeout or when the worker goes away. */
  private request(m: Member, build: (seq: number) => PrimaryToWorker, timeoutMs: number): Promise<WorkerToPrimary | undefined> {
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        m.pending.delete(seq);
        this.log.warn({ workerId: m.worker.id, seq, timeoutMs }, 'worker did not answer in time');
        resolve(undefined);
      }, timeoutMs);
      m.pending.set(seq, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      if (!this.send(m, build(seq))) {
        clearTimeout(timer);
        m.pending.delete(seq);
        resolve(undefined);
      }
    });
  }

  private async awaitReady(members: Member[]): Promise<boolean> {
    const timeoutMs = this.opts.startTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    const all = Promise.all(members.map((m) => m.ready)).then((oks) => oks.every(Boolean));
    const ok = await Promise.race([all, timeout]);
    clearTimeout(timer);
    return ok;
  }

  /** Drain one worker: stop accepting + finish in-flight, then exit; killed after timeoutMs. */
  private async retire(m: Member, timeoutMs: number): Promise<void> {
    if (m.state === 'gone') return;
    m.state = 'draining';
    const exited = new Promise<void>((resolve) => {
      if (m.worker.isDead()) return resolve();
      m.worker.once('exit', () => resolve());
    });
    const timer = setTimeout(() => {
      if (!m.worker.isDead()) {
        this.log.warn({ workerId: m.worker.id, generation: m.generation, timeoutMs }, 'drain timeout, killing worker');
        m.worker.process.kill('SIGKILL');
      }
    }, timeoutMs);
    if (m.inited) void this.request(m, (seq) => ({ type: 'drain', seq }), timeoutMs);
    else m.worker.process.kill('SIGKILL'); // it holds no connections yet (a standby, or one that never said hello)
    await exited;
    clearTimeout(timer);
  }
}

/** Phase timings of a new generation (the slowest member of each phase). */
function reloadPhases(members: readonly Member[], t0: number, standby: boolean): ReloadPhases {
  const max = (f: (m: Member) => number) => Math.round(Math.max(0, ...members.map(f)));
  return {
    // a standby that said hello before the reload cost no start-up time in it
    forkMs: max((m) => (m.helloPerf ?? t0) - Math.max(m.forkedPerf, t0)),
    standby,
    initToReadyMs: max((m) => (m.readyPerf ?? t0) - (m.initPerf ?? t0)),
    totalMs: Math.round(performance.now() - t0),
  };
}
