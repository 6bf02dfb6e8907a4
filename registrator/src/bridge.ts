// The engine between Docker and the registry. Every Docker event is a hint: the container is inspected
// again, mapped (pure), diffed against what the registry holds (pure) and the difference applied.
// One container's work runs serially (KeyedSerialQueue); a full resync runs at start, after every event
// stream reconnect, every -resync seconds and whenever the registry answers again after an outage.
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { backoffDelay, sleep, withTimeout, type BackoffPolicy } from '../../common/backoff.js';
import { DockerCallError, inspectContainer, listContainerIds } from './docker/inspect.js';
import { KeyedSerialQueue } from './keyed-queue.js';
import type { ContainerView } from './mapping/container-view.js';
import { containerViewFromInspect, mapContainer, type MappingOptions } from './mapping/service-mapper.js';
import type { CheckSpec, MappingWarning, ServiceRecord } from './mapping/types.js';
import { fingerprintOf, reconcile, type RegisteredService } from './reconcile.js';
import { refusedChecks, type RefusedCheck } from './registry/agent-refusal.js';
import { RegistryError, type CheckStatus, type Registry } from './registry/registry.js';

export interface BridgeOptions {
  readonly docker: Docker;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly mapping: MappingOptions;
  readonly deregister: 'always' | 'on-success';
  /** remove our services whose container is gone, also those registered by an earlier run */
  readonly cleanup: boolean;
  /** full resync period; 0 = only at start, on reconnect and after outages */
  readonly resyncSeconds: number;
  readonly dockerTimeoutMs?: number;
  readonly registryTimeoutMs?: number;
  /** containers synced in parallel during a full resync */
  readonly resyncConcurrency?: number;
  /**
   * How often the registry's list of our services is compared with what we believe is registered
   * (one cheap GET); any difference, e.g. an agent restarted without its state, triggers a resync. 0 = off.
   */
  readonly driftCheckSeconds?: number;
  /**
   * Drain on stop: on the `kill` event that `docker stop` sends before `die`, put the container's services
   * into registry maintenance (no new traffic, in-flight requests finish); `die` deregisters as always.
   */
  readonly drainOnStop?: boolean;
  /** retry schedule of a container whose record the registry failed (5xx, 429, 403) */
  readonly recordRetry?: BackoffPolicy;
  /** presence heartbeat period (ms), see Registry.heartbeat; 0 = off */
  readonly presenceIntervalMs?: number;
  readonly random?: () => number;
  /** injected clock (ms), for tests */
  readonly now?: () => number;
}

/** Counters for logs, tests and the benchmark. */
export interface BridgeStats {
  readonly resyncs: number;
  readonly inspects: number;
  /** registry calls that failed for one record (5xx, 429, 403) */
  readonly recordFailures: number;
  /** containers with a record the registry currently fails */
  readonly failingContainers: number;
  /** registrations the agent refused for good (script checks disabled, a 400): each counted once */
  readonly refusals: number;
  /** services not registered because the agent refused them, until their container or record changes */
  readonly refusedServices: number;
  readonly drained: number;
}

type ContainerHealth = ContainerView['health'];

/** retries of one event's sync after Docker failures: 0.25 s doubling to 5 s, about 30 s in all */
const EVENT_SYNC_RETRIES = 8;
const EVENT_SYNC_BACKOFF = { baseMs: 250, maxMs: 5000 } as const;
/** a container whose record the registry fails is retried from 1 s, doubling, to every 30 s */
const RECORD_RETRY_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };
/** a resync that failed without an outage (the registry answered 5xx to the list) is retried like that too */
const RESYNC_RETRY_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };
/** signals that stop a process; a kill with another one (HUP for a reload) is no stop */
const STOP_SIGNALS = new Set([2, 3, 9, 15]);
/** a container still running this long after its stop signal (it ignored it) leaves maintenance */
const DRAIN_HOLD_EXTRA_MS = 5000;

/** Is this a record-level failure (the registry answered; retry this container), not an outage? */
function isRecordFailure(err: unknown): err is RegistryError {
  return err instanceof RegistryError && err.code === 'ERR_REGISTRY_RECORD_FAILED';
}

interface RecordFailureState {
  attempts: number;
  /** what was logged, so a repeat of the same failure is not logged again */
  summary: string;
  timer?: NodeJS.Timeout;
}

/** A registration the agent refused for good: not sent again while the record stays the same. */
interface RefusalState {
  readonly containerId: string;
  readonly fingerprint: string;
}

interface DrainState {
  readonly signal: number;
  /** when the kill event arrived here (this.now()) */
  readonly at: number;
  /** the engine's time of the kill event (ms since the epoch), when the event carried it */
  readonly eventAt?: number;
  /** service IDs already in maintenance */
  readonly done: Set<string>;
  /** the maintenance writes made straight from the kill event (see onEvent) */
  early?: Promise<void>;
  /** a sync of the container was running during the early writes: it may have registered over them */
  writeAgain?: boolean;
  holdTimer?: NodeJS.Timeout;
}

function drainReason(containerName: string, signal: number): string {
  return `registrator: container ${containerName} is stopping (signal ${signal}), draining before it exits`;
}

function signalNumber(name: string | undefined): number | undefined {
  if (!name) return undefined;
  if (/^\d+$/.test(name)) return Number(name);
  const known: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15, SIGWINCH: 28, SIGPWR: 30, SIGRTMIN: 34 };
  const upper = name.toUpperCase();
  return known[upper.startsWith('SIG') ? upper : `SIG${upper}`];
}

/** Checks the registrator keeps alive itself (-ttl) or that mirror Docker's HEALTHCHECK. */
function isRefreshedTtl(c: CheckSpec): boolean {
  return c.kind === 'ttl' && Boolean((c as { refreshedByRegistrator?: boolean }).refreshedByRegistrator);
}

export class Bridge {
  private readonly opts: BridgeOptions;
  private readonly log: Logger;
  private readonly queue = new KeyedSerialQueue();
  private readonly abort = new AbortController();
  /** the registry's view of our services, updated by every successful call and replaced at each resync */
  private known = new Map<string, RegisteredService>();
  /** services this process has registered or adopted (seen desired): it may remove them */
  private readonly owned = new Set<string>();
  /** last desired record per service ID, for TTL refresh */
  private readonly records = new Map<string, ServiceRecord>();
  private readonly health = new Map<string, ContainerHealth>();
  /** last status pushed per "<serviceId>#<checkIndex>" for mirrored checks */
  private readonly pushedStatus = new Map<string, CheckStatus>();
  private readonly warned = new Map<string, Set<string>>();
  private registryDown = false;
  private refreshing = false;
  private resyncWanted: string | undefined;
  private resyncLoop: Promise<void> | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastResync: { containers: number; services: number; ms: number } | undefined;
  private readonly failing = new Map<string, RecordFailureState>();
  /** service ID -> the refused record's fingerprint */
  private readonly refused = new Map<string, RefusalState>();
  private readonly draining = new Map<string, DrainState>();
  private resyncRetryTimer: NodeJS.Timeout | undefined;
  private resyncFailures = 0;
  private driftMissingLogged = '';
  private counters = { resyncs: 0, inspects: 0, recordFailures: 0, drained: 0, refusals: 0 };

  constructor(opts: BridgeOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'bridge' });
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get stats(): BridgeStats {
    return { ...this.counters, failingContainers: this.failing.size, refusedServices: this.refused.size };
  }

  /** Stats of the last completed full resync (for logs and the benchmark). */
  get lastResyncStats() {
    return this.lastResync;
  }

  /** Start-up probe: -retry-attempts (-1 = forever) more attempts, -retry-interval apart. */
  async waitForRegistry(retryAttempts: number, retryIntervalMs: number): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.opts.registry.ping(withTimeout(this.signal, this.registryTimeout));
        return true;
      } catch (err) {
        if (this.signal.aborted) return false;
        const more = retryAttempts < 0 || attempt < retryAttempts;
        this.log.warn({ err: errInfo(err), attempt: attempt + 1, willRetry: more }, 'registry not reachable');
        if (!more) return false;
        await sleep(retryIntervalMs, this.signal);
        if (this.signal.aborted) return false;
      }
    }
  }

  /** Begins the periodic loops (resync, TTL refresh). The event watcher calls onEvent/requestResync. */
  startTimers(): void {
    if (this.opts.resyncSeconds > 0) {
      this.timers.push(setInterval(() => void this.requestResync('periodic'), this.opts.resyncSeconds * 1000));
    }
    const refreshSeconds = this.ttlRefreshSeconds();
    if (refreshSeconds > 0) {
      this.timers.push(setInterval(() => void this.refreshTtlChecks(), refreshSeconds * 1000));
    }
    const driftSeconds = this.opts.driftCheckSeconds ?? 10;
    if (driftSeconds > 0) {
      this.timers.push(setInterval(() => void this.checkDrift(), driftSeconds * 1000));
    }
    const presenceMs = this.opts.presenceIntervalMs ?? 0;
    if (presenceMs > 0 && this.opts.registry.heartbeat) {
      this.timers.push(setInterval(() => void this.heartbeat(), presenceMs));
    }
    for (const t of this.timers) t.unref();
  }

  /** Refreshes this registrator's presence record, so peers with -cleanup leave its services alone. */
  async heartbeat(): Promise<void> {
    if (!this.opts.registry.heartbeat || this.signal.aborted) return;
    try {
      await this.opts.registry.heartbeat(withTimeout(this.signal, this.registryTimeout));
    } catch (err) {
      if (!this.signal.aborted) this.log.warn({ err: errInfo(err) }, 'presence heartbeat failed');
    }
  }

  /** Compares the registry's list of our services with `known`; resyncs on any difference. */
  async checkDrift(): Promise<void> {
    if (this.registryDown || this.resyncLoop || this.signal.aborted || this.queue.activeKeys > 0) return;
    let listed: RegisteredService[];
    try {
      listed = await this.opts.registry.listOurs(withTimeout(this.signal, this.registryTimeout));
    } catch (err) {
      this.noteRegistryFailure(err);
      return;
    }
    // Work that started meanwhile changes `known`; the next check looks again.
    if (this.resyncLoop || this.queue.activeKeys > 0) return;
    const byId = new Map(listed.map((s) => [s.id, s]));
    const missing = [...this.known.values()].filter((s) => byId.get(s.id)?.fingerprint !== s.fingerprint).map((s) => s.id);
    const unexpected = listed.filter((s) => !this.known.has(s.id)).map((s) => s.id);
    // Desired records that never made it (the registry failed them: 5xx, 429, 403) are missing too; they
    // cost a sync of their container, not a full resync, which would only fail on them again.
    const notRegistered = [...this.records.values()].filter((r) => !this.known.has(r.id) && byId.get(r.id)?.fingerprint !== fingerprintOf(r) && !this.isRefused(r));
    const containers = [...new Set(notRegistered.map((r) => r.containerId))];
    const summary = notRegistered.map((r) => r.id).sort().join(',');
    if (summary !== this.driftMissingLogged) {
      this.driftMissingLogged = summary;
      if (summary) this.log.warn({ event: 'registry-drift-unregistered', services: notRegistered.slice(0, 10).map((r) => r.id), count: notRegistered.length }, 'desired services missing from the registry, retrying their containers');
    }
    for (const id of containers) this.syncContainer(id, 'registry-drift-unregistered').catch(() => undefined);
    if (missing.length === 0 && unexpected.length === 0) return;
    this.log.warn({ event: 'registry-drift', missing: missing.slice(0, 10), unexpected: unexpected.slice(0, 10) }, 'registry differs from what was registered, resyncing');
    await this.requestResync('registry-drift');
  }

  /** Stops loops, lets running container work finish (bounded), never deregisters. */
  async stop(graceMs = 5000): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    for (const f of this.failing.values()) clearTimeout(f.timer);
    for (const d of this.draining.values()) clearTimeout(d.holdTimer);
    clearTimeout(this.resyncRetryTimer);
    this.abort.abort();
    const graceOver = new AbortController();
    await Promise.race([Promise.all([this.queue.idle(), this.resyncLoop]), sleep(graceMs, graceOver.signal)]);
    graceOver.abort(); // release the grace timer so the process can exit at once
    // Peers may adopt our services once we are gone (they stay registered: see main.ts).
    if (this.opts.registry.withdraw) {
      await this.opts.registry.withdraw(AbortSignal.timeout(Math.min(2000, this.registryTimeout))).catch(() => undefined);
    }
  }

  /** A Docker event: re-read that container (in order with its other events). */
  onEvent(e: { containerId: string; action: string; signal?: number; name?: string; timeNano?: string }): void {
    if (this.signal.aborted) return;
    if (e.action.startsWith('health_status') && this.opts.mapping.healthGate === 'off') return;
    const action = e.action.split(':')[0].trim();
    if (action === 'kill') {
      // Noted at once (the sync may join a waiting one): the sync drains while the container still runs.
      if (!this.opts.drainOnStop || this.draining.has(e.containerId)) return;
      const eventAt = e.timeNano && /^\d+$/.test(e.timeNano) ? Number(BigInt(e.timeNano) / 1_000_000n) : undefined;
      const drain: DrainState = { signal: e.signal ?? 15, at: this.now(), ...(eventAt !== undefined ? { eventAt } : {}), done: new Set() };
      this.draining.set(e.containerId, drain);
      // A stop signal needs nothing from Docker to act on: the services registered for this container go
      // into maintenance now, not behind its queued sync and inspect (every moment counts: requests still
      // reach a process that got SIGTERM). The sync below still runs: it covers what this missed, another
      // stop signal (the image's StopSignal, which only the inspect tells) and the hold timer.
      if (STOP_SIGNALS.has(drain.signal)) drain.early = this.drainRegistered(e.containerId, drain, e.name);
    }
    void this.syncAfterEvent(e.containerId, `docker-${action}`);
  }

  /** The early half of a drain: maintenance for every service `known` for the container, all at once. */
  private async drainRegistered(containerId: string, drain: DrainState, name: string | undefined): Promise<void> {
    // A sync already running may register one of them again after this write (its checks replaced):
    // then the queued sync writes maintenance once more.
    drain.writeAgain = this.queue.running(containerId);
    const why = drainReason(name ?? containerId.slice(0, 12), drain.signal);
    const services = [...this.known.values()].filter((s) => s.containerId === containerId);
    await Promise.all(services.map(async (s) => {
      const started = this.now();
      try {
        await this.maintenance(s.id, true, why);
      } catch (err) {
        // the queued sync tries again
        if (!this.signal.aborted) this.log.warn({ err: errInfo(err), serviceId: s.id, containerId: containerId.slice(0, 12) }, 'maintenance on kill failed');
        return;
      }
      this.noteDrained(s, containerId, drain, 'docker-kill', this.now() - started);
    }));
  }

  /** Logged with the instants of the drain gap's first pieces: the engine's kill event, when it got here, the write's own time. */
  private noteDrained(s: RegisteredService, containerId: string, drain: DrainState, reason: string, writeMs: number): void {
    drain.done.add(s.id);
    this.counters.drained += 1;
    this.log.info({ event: 'drain', serviceId: s.id, serviceName: s.name, containerId: containerId.slice(0, 12), reason, killEventAt: drain.eventAt, killSeenAt: drain.at, writeMs }, 'service in maintenance: no new traffic');
  }

  /**
   * An event's sync that failed on Docker (inspect timed out, engine busy) is retried with backoff: the
   * event will not come again, and without -resync a dead container would stay registered. Registry
   * failures need no retry here: the outage recovery resyncs everything.
   */
  private async syncAfterEvent(containerId: string, reason: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.syncContainer(containerId, reason);
        return;
      } catch (err) {
        const retry = err instanceof DockerCallError && attempt < EVENT_SYNC_RETRIES && !this.signal.aborted;
        this.log.warn({ err: errInfo(err), containerId, reason, willRetry: retry }, 'container sync failed');
        if (!retry) return;
        await sleep(backoffDelay(EVENT_SYNC_BACKOFF, attempt, this.opts.random), this.signal);
        if (this.signal.aborted) return;
      }
    }
  }

  syncContainer(containerId: string, reason: string): Promise<void> {
    return this.queue.run(containerId, () => this.trackedSync(containerId, reason));
  }

  /** One container's sync, with its record-failure state: retried with backoff, logged per state change. */
  private async trackedSync(containerId: string, reason: string): Promise<void> {
    try {
      await this.doSync(containerId, reason);
    } catch (err) {
      if (isRecordFailure(err)) this.noteRecordFailed(containerId, err, reason);
      throw err;
    }
    const state = this.failing.get(containerId);
    if (state) {
      clearTimeout(state.timer);
      this.failing.delete(containerId);
      this.log.info({ event: 'record-recovered', containerId: containerId.slice(0, 12), attempts: state.attempts, reason }, 'registry accepted the container\'s services again');
    }
  }

  private noteRecordFailed(containerId: string, err: RegistryError, reason: string): void {
    this.counters.recordFailures += 1;
    let state = this.failing.get(containerId);
    if (!state) {
      state = { attempts: 0, summary: '' };
      this.failing.set(containerId, state);
    }
    state.attempts += 1;
    const summary = `${err.status ?? ''} ${err.message}`;
    if (summary !== state.summary) {
      state.summary = summary;
      this.log.warn({ event: 'record-failed', containerId: containerId.slice(0, 12), status: err.status, err: errInfo(err), reason }, 'registry failed a service of this container; retrying it with backoff');
    } else {
      this.log.debug({ containerId: containerId.slice(0, 12), attempts: state.attempts }, 'record still failing');
    }
    clearTimeout(state.timer);
    if (this.signal.aborted) return;
    const delay = backoffDelay(this.opts.recordRetry ?? RECORD_RETRY_BACKOFF, state.attempts - 1, this.opts.random);
    state.timer = setTimeout(() => {
      if (state) state.timer = undefined;
      this.syncContainer(containerId, 'record-retry').catch(() => undefined);
    }, delay);
    state.timer.unref();
  }

  /** Coalesced full resync: resolves once a resync that started after this call has finished. */
  requestResync(reason: string): Promise<void> {
    this.resyncWanted = reason;
    if (!this.resyncLoop) {
      this.resyncLoop = this.runResyncs().finally(() => {
        this.resyncLoop = undefined;
      });
    }
    return this.resyncLoop;
  }

  private async runResyncs(): Promise<void> {
    while (this.resyncWanted !== undefined && !this.signal.aborted) {
      const reason = this.resyncWanted;
      this.resyncWanted = undefined;
      try {
        await this.fullSync(reason);
        this.resyncFailures = 0;
      } catch (err) {
        if (this.signal.aborted) break;
        this.log.warn({ err: errInfo(err), reason }, 'resync failed');
        // An outage has its own recovery (probe, then resync); anything else is retried with backoff.
        if (!(err instanceof RegistryError && err.code === 'ERR_REGISTRY_UNAVAILABLE') && !this.resyncRetryTimer) {
          const delay = backoffDelay(RESYNC_RETRY_BACKOFF, this.resyncFailures++, this.opts.random);
          this.resyncRetryTimer = setTimeout(() => {
            this.resyncRetryTimer = undefined;
            void this.requestResync(`${reason}-retry`);
          }, delay);
          this.resyncRetryTimer.unref();
        }
      }
    }
  }

  private async fullSync(reason: string): Promise<void> {
    const started = performance.now();
    this.counters.resyncs += 1;
    const ids = await listContainerIds(this.opts.docker, { signal: this.signal, timeoutMs: this.dockerTimeout });
    let registered: RegisteredService[];
    try {
      registered = await this.opts.registry.listOurs(withTimeout(this.signal, this.registryTimeout));
    } catch (err) {
      this.noteRegistryFailure(err);
      throw err;
    }
    this.known = new Map(registered.map((s) => [s.id, s]));
    const containers = new Set(ids);
    for (const s of registered) {
      if (s.containerId) containers.add(s.containerId);
      else if (this.opts.cleanup) await this.deregisterOne(s, `resync-${reason}-cleanup`);
    }
    const all = [...containers];
    const concurrency = Math.max(1, this.opts.resyncConcurrency ?? 8);
    let next = 0;
    let failed = 0;
    const worker = async () => {
      while (next < all.length && !this.signal.aborted) {
        const id = all[next++];
        try {
          await this.syncContainer(id, `resync-${reason}`);
        } catch {
          failed += 1;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, all.length) }, worker));
    const ms = Math.round(performance.now() - started);
    this.lastResync = { containers: ids.length, services: this.known.size, ms };
    this.log.info({ event: 'resync', reason, containers: ids.length, services: this.known.size, failed, ms }, 'resync done');
  }

  private async doSync(containerId: string, reason: string): Promise<void> {
    if (this.signal.aborted) return;
    this.counters.inspects += 1;
    const info = await inspectContainer(this.opts.docker, containerId, { signal: this.signal, timeoutMs: this.dockerTimeout });
    let desired: ServiceRecord[] = [];
    let running = false;
    if (!info) {
      this.health.delete(containerId);
      this.warned.delete(containerId);
    } else {
      const view = containerViewFromInspect(info);
      this.health.set(containerId, view.health);
      running = Boolean(info.State?.Running) && !info.State?.Paused;
      if (running) {
        const result = mapContainer(view, this.opts.mapping);
        this.logWarnings(containerId, result.warnings);
        desired = [...result.services];
      } else if (this.opts.deregister === 'on-success' && !info.State?.Running && (info.State?.ExitCode ?? 0) !== 0) {
        // -deregister on-success: a container that failed keeps its registrations (its checks go critical).
        this.endDrain(containerId);
        this.log.debug({ containerId, exitCode: info.State?.ExitCode, reason }, 'kept: container exited non-zero');
        return;
      }
    }
    const current = [...this.known.values()].filter((s) => s.containerId === containerId);
    if (running && (await this.drainIfStopping(containerId, info!, current, reason))) return;
    if (!running) this.endDrain(containerId);
    const plan = reconcile(desired, current, (s) => running || this.opts.cleanup || this.owned.has(s.id));
    const toRegister = new Set(plan.register.map((r) => r.id));
    for (const record of desired) {
      this.records.set(record.id, record);
      this.owned.add(record.id);
      if (!toRegister.has(record.id)) await this.pushMirroredHealth(record, false);
    }
    // A record the agent refused is not sent again until it changes (or its container goes and comes back).
    const refusals: Array<{ record: ServiceRecord; err: RegistryError }> = [];
    for (const record of plan.register) {
      if (this.isRefused(record)) continue;
      const refusal = await this.registerOne(record, reason);
      if (refusal) refusals.push({ record, err: refusal });
    }
    for (const s of plan.deregister) await this.deregisterOne(s, reason);
    for (const [id, r] of this.refused) {
      if (r.containerId !== containerId || desired.some((d) => d.id === id && fingerprintOf(d) === r.fingerprint)) continue;
      this.refused.delete(id);
      if (!this.known.has(id)) this.records.delete(id);
    }
    if (refusals.length > 0) this.logRefusals(containerId, refusals, reason);
  }

  private isRefused(record: ServiceRecord): boolean {
    return this.refused.get(record.id)?.fingerprint === fingerprintOf(record);
  }

  /** One error line per container and sync: the services, the checks concerned and what Consul said. */
  private logRefusals(containerId: string, refusals: ReadonlyArray<{ record: ServiceRecord; err: RegistryError }>, reason: string): void {
    const services = refusals.map(({ record, err }) => {
      const consul = err.agentMessage ?? err.message;
      return { serviceId: record.id, serviceName: record.name, status: err.status, consul, checks: refusedChecks(record, consul) };
    });
    const first = services[0];
    const name = refusals[0].record.containerName;
    const checks = services.flatMap((s) => s.checks);
    const named = checks.length > 0 ? `check ${checks.map(describeCheck).join(', ')}` : `service ${services.map((s) => s.serviceId).join(', ')}`;
    this.log.error(
      { event: 'register-refused', containerId: containerId.slice(0, 12), containerName: name, services, reason },
      `Consul refused ${named} of container ${name}: ${first.status ?? ''} ${first.consul}; the service is not registered (not retried until the container or its registration changes)`,
    );
  }

  /**
   * A running container that got its stop signal: its registered services go into maintenance (once each)
   * and nothing else changes until it dies. True while draining. A container still running well after its
   * stop timeout ignored the signal: it leaves maintenance and is synced as usual.
   */
  private async drainIfStopping(containerId: string, info: Docker.ContainerInspectInfo, current: readonly RegisteredService[], reason: string): Promise<boolean> {
    const drain = this.draining.get(containerId);
    if (!drain) return false;
    await drain.early;
    const config = (info.Config ?? {}) as { StopSignal?: unknown; StopTimeout?: unknown };
    const stopSignal = signalNumber(typeof config.StopSignal === 'string' ? config.StopSignal : undefined);
    if (!STOP_SIGNALS.has(drain.signal) && drain.signal !== stopSignal) {
      this.draining.delete(containerId); // e.g. SIGHUP for a config reload: not a stop
      return false;
    }
    const stopTimeoutS = typeof config.StopTimeout === 'number' ? config.StopTimeout : 10;
    const holdMs = Math.max(0, stopTimeoutS) * 1000 + DRAIN_HOLD_EXTRA_MS;
    if (this.now() - drain.at >= holdMs) {
      this.log.warn({ event: 'drain-expired', containerId: containerId.slice(0, 12), holdMs }, 'container outlived its stop signal; leaving maintenance');
      for (const id of drain.done) await this.maintenance(id, false, 'container kept running after its stop signal');
      this.endDrain(containerId);
      return false;
    }
    const why = drainReason(info.Name?.replace(/^\//, '') ?? containerId.slice(0, 12), drain.signal);
    const again = drain.writeAgain === true;
    drain.writeAgain = false;
    for (const s of current) {
      if (drain.done.has(s.id)) {
        if (again) await this.maintenance(s.id, true, why);
        continue;
      }
      const started = this.now();
      await this.maintenance(s.id, true, why);
      this.noteDrained(s, containerId, drain, reason, this.now() - started);
    }
    if (!drain.holdTimer) {
      drain.holdTimer = setTimeout(() => this.syncContainer(containerId, 'drain-hold-over').catch(() => undefined), holdMs + 50);
      drain.holdTimer.unref();
    }
    return true;
  }

  private endDrain(containerId: string): void {
    const drain = this.draining.get(containerId);
    if (!drain) return;
    clearTimeout(drain.holdTimer);
    this.draining.delete(containerId);
  }

  private async maintenance(serviceId: string, enable: boolean, reason: string): Promise<void> {
    try {
      await this.opts.registry.setMaintenance(serviceId, enable, reason, withTimeout(this.signal, this.registryTimeout));
    } catch (err) {
      // 404: the service is gone already, nothing to drain
      if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_REJECTED' && err.status === 404) return;
      this.noteRegistryFailure(err);
      throw err;
    }
  }

  /** Registers one record; answers the agent's refusal (a RegistryError) when it refused it for good. */
  private async registerOne(record: ServiceRecord, reason: string): Promise<RegistryError | undefined> {
    try {
      await this.opts.registry.register(record, withTimeout(this.signal, this.registryTimeout));
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_REJECTED') {
        this.counters.refusals += 1;
        this.refused.set(record.id, { containerId: record.containerId, fingerprint: fingerprintOf(record) });
        // Not at all rather than without the check: an earlier registration of this ID (without the
        // check now asked for) would get traffic the operator wanted gated by that check.
        const earlier = this.known.get(record.id);
        if (earlier) await this.deregisterOne(earlier, 'registration-refused');
        return err;
      }
      this.noteRegistryFailure(err);
      throw err;
    }
    this.known.set(record.id, { id: record.id, name: record.name, containerId: record.containerId, fingerprint: fingerprintOf(record) });
    this.log.info(
      { event: 'register', serviceId: record.id, serviceName: record.name, address: record.address, port: record.port, containerId: record.containerId.slice(0, 12), containerName: record.containerName, reason },
      'registered',
    );
    await this.pushMirroredHealth(record, true);
    return undefined;
  }

  private async deregisterOne(s: RegisteredService, reason: string): Promise<void> {
    try {
      await this.opts.registry.deregister(s.id, withTimeout(this.signal, this.registryTimeout));
    } catch (err) {
      // 404: already gone, which is what we wanted.
      if (!(err instanceof RegistryError && err.code === 'ERR_REGISTRY_REJECTED' && err.status === 404)) {
        this.noteRegistryFailure(err);
        throw err;
      }
    }
    this.known.delete(s.id);
    this.owned.delete(s.id);
    this.records.delete(s.id);
    for (const key of [...this.pushedStatus.keys()]) if (key.startsWith(`${s.id}#`)) this.pushedStatus.delete(key);
    this.log.info({ event: 'deregister', serviceId: s.id, serviceName: s.name, containerId: s.containerId.slice(0, 12), reason }, 'deregistered');
  }

  /** Mirror checks: push the container's Docker health when it changed (or after a fresh registration). */
  private async pushMirroredHealth(record: ServiceRecord, force: boolean): Promise<void> {
    for (const [index, check] of record.checks.entries()) {
      if (!check.mirrorsDockerHealth) continue;
      const status: CheckStatus = this.health.get(record.containerId) === 'healthy' ? 'passing' : 'critical';
      const key = `${record.id}#${index}`;
      if (!force && this.pushedStatus.get(key) === status) continue;
      await this.updateCheck(record, index, status, `docker health: ${this.health.get(record.containerId) ?? 'unknown'}`);
    }
  }

  private async updateCheck(record: ServiceRecord, index: number, status: CheckStatus, output: string): Promise<void> {
    try {
      await this.opts.registry.updateTtlCheck(record, index, status, output, withTimeout(this.signal, this.registryTimeout));
      this.pushedStatus.set(`${record.id}#${index}`, status);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_REJECTED') {
        // The agent does not know the check: it lost our registration (restart without state).
        this.log.warn({ serviceId: record.id, err: errInfo(err) }, 'TTL check unknown to the registry, resyncing');
        this.known.delete(record.id);
        void this.requestResync('check-missing');
        return;
      }
      this.noteRegistryFailure(err);
    }
  }

  private async refreshTtlChecks(): Promise<void> {
    // One pass at a time: with many services and a slow (not failing) Consul a pass can outlast the
    // interval, and overlapping passes would multiply the load on the agent that is already slow.
    if (this.registryDown || this.signal.aborted || this.refreshing) return;
    this.refreshing = true;
    try {
      await this.refreshTtlPass();
    } finally {
      this.refreshing = false;
    }
  }

  private async refreshTtlPass(): Promise<void> {
    for (const record of [...this.records.values()]) {
      if (!this.known.has(record.id)) continue;
      for (const [index, check] of record.checks.entries()) {
        if (this.registryDown || this.signal.aborted) return;
        if (isRefreshedTtl(check)) await this.updateCheck(record, index, 'passing', 'refreshed by registrator');
        else if (check.mirrorsDockerHealth) {
          const health = this.health.get(record.containerId);
          await this.updateCheck(record, index, health === 'healthy' ? 'passing' : 'critical', `docker health: ${health ?? 'unknown'}`);
        }
      }
    }
  }

  /** Registry unreachable: keep going; probe with backoff and resync everything when it answers again. */
  private noteRegistryFailure(err: unknown): void {
    if (!(err instanceof RegistryError) || err.code !== 'ERR_REGISTRY_UNAVAILABLE' || this.registryDown || this.signal.aborted) return;
    this.registryDown = true;
    this.log.warn({ err: errInfo(err) }, 'registry unreachable; will re-register everything when it answers');
    void this.recoverRegistry();
  }

  private async recoverRegistry(): Promise<void> {
    for (let attempt = 0; !this.signal.aborted; attempt++) {
      await sleep(backoffDelay({ baseMs: 250, maxMs: 5000 }, attempt, this.opts.random), this.signal);
      try {
        await this.opts.registry.ping(withTimeout(this.signal, this.registryTimeout));
        break;
      } catch {
        // still down
      }
    }
    if (this.signal.aborted) return;
    this.registryDown = false;
    // The agent may have restarted with another configuration (enable_script_checks): try refused records once more.
    this.refused.clear();
    this.log.info({ event: 'registry-recovered' }, 'registry reachable again, resyncing');
    await this.requestResync('registry-recovered');
  }

  private logWarnings(containerId: string, warnings: readonly MappingWarning[]): void {
    let seen = this.warned.get(containerId);
    if (!seen) {
      seen = new Set();
      this.warned.set(containerId, seen);
    }
    for (const w of warnings) {
      const key = `${w.key}\u0000${w.value}\u0000${w.reason}`;
      if (seen.has(key)) continue; // once per container and problem, not at every resync
      seen.add(key);
      this.log.warn({ event: 'mapping-warning', containerId: w.containerId.slice(0, 12), containerName: w.containerName, key: w.key, value: w.value, reason: w.reason }, `bad ${w.key} on ${w.containerName}: ${w.reason}`);
    }
  }

  private ttlRefreshSeconds(): number {
    const m = this.opts.mapping;
    if (m.ttl && m.ttl > 0) return m.ttlRefresh && m.ttlRefresh > 0 ? m.ttlRefresh : Math.max(1, Math.floor(m.ttl / 2));
    if (m.healthGate === 'mirror') return 15;
    return 0;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private get dockerTimeout(): number {
    return this.opts.dockerTimeoutMs ?? 10_000;
  }

  private get registryTimeout(): number {
    return this.opts.registryTimeoutMs ?? 5_000;
  }
}

function describeCheck(c: RefusedCheck): string {
  return `${c.id} (${c.kind}${c.target !== undefined ? ` ${JSON.stringify(c.target)}` : ''})`;
}

function errInfo(err: unknown): { message: string; code?: string } {
  const e = err as { message?: string; code?: string };
  return { message: e?.message ?? String(err), ...(e?.code ? { code: e.code } : {}) };
}
