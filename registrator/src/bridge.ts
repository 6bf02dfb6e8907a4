// The engine between Docker and the registry. Every Docker event is a hint: the container is inspected
// again, mapped (pure), diffed against what the registry holds (pure) and the difference applied.
// One container's work runs serially (KeyedSerialQueue); a full resync runs at start, after every event
// stream reconnect, every -resync seconds and whenever the registry answers again after an outage.
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { backoffDelay, sleep, withTimeout } from '../../common/backoff.js';
import { DockerCallError, inspectContainer, listContainerIds } from './docker/inspect.js';
import { KeyedSerialQueue } from './keyed-queue.js';
import { containerViewFromInspect, mapContainer, type ContainerView, type MappingOptions } from './mapping/service-mapper.js';
import type { CheckSpec, MappingWarning, ServiceRecord } from './mapping/types.js';
import { fingerprintOf, reconcile, type RegisteredService } from './reconcile.js';
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
  readonly random?: () => number;
}

type ContainerHealth = ContainerView['health'];

/** retries of one event's sync after Docker failures: 0.25 s doubling to 5 s, about 30 s in all */
const EVENT_SYNC_RETRIES = 8;
const EVENT_SYNC_BACKOFF = { baseMs: 250, maxMs: 5000 } as const;

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

  constructor(opts: BridgeOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'bridge' });
  }

  get signal(): AbortSignal {
    return this.abort.signal;
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
    for (const t of this.timers) t.unref();
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
    if (missing.length === 0 && unexpected.length === 0) return;
    this.log.warn({ event: 'registry-drift', missing: missing.slice(0, 10), unexpected: unexpected.slice(0, 10) }, 'registry differs from what was registered, resyncing');
    await this.requestResync('registry-drift');
  }

  /** Stops loops, lets running container work finish (bounded), never deregisters. */
  async stop(graceMs = 5000): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.abort.abort();
    const graceOver = new AbortController();
    await Promise.race([Promise.all([this.queue.idle(), this.resyncLoop]), sleep(graceMs, graceOver.signal)]);
    graceOver.abort(); // release the grace timer so the process can exit at once
  }

  /** A Docker event: re-read that container (in order with its other events). */
  onEvent(e: { containerId: string; action: string }): void {
    if (this.signal.aborted) return;
    if (e.action.startsWith('health_status') && this.opts.mapping.healthGate === 'off') return;
    const action = e.action.split(':')[0].trim();
    void this.syncAfterEvent(e.containerId, `docker-${action}`);
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
    return this.queue.run(containerId, () => this.doSync(containerId, reason));
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
      } catch (err) {
        if (!this.signal.aborted) this.log.warn({ err: errInfo(err), reason }, 'resync failed');
      }
    }
  }

  private async fullSync(reason: string): Promise<void> {
    const started = performance.now();
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
        this.log.debug({ containerId, exitCode: info.State?.ExitCode, reason }, 'kept: container exited non-zero');
        return;
      }
    }
    const current = [...this.known.values()].filter((s) => s.containerId === containerId);
    const plan = reconcile(desired, current, (s) => running || this.opts.cleanup || this.owned.has(s.id));
    const toRegister = new Set(plan.register.map((r) => r.id));
    for (const record of desired) {
      this.records.set(record.id, record);
      this.owned.add(record.id);
      if (!toRegister.has(record.id)) await this.pushMirroredHealth(record, false);
    }
    for (const record of plan.register) await this.registerOne(record, reason);
    for (const s of plan.deregister) await this.deregisterOne(s, reason);
  }

  private async registerOne(record: ServiceRecord, reason: string): Promise<void> {
    try {
      await this.opts.registry.register(record, withTimeout(this.signal, this.registryTimeout));
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_REJECTED') {
        this.log.error({ event: 'register-rejected', serviceId: record.id, containerId: record.containerId, err: errInfo(err) }, 'registry rejected service');
        return;
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

  private get dockerTimeout(): number {
    return this.opts.dockerTimeoutMs ?? 10_000;
  }

  private get registryTimeout(): number {
    return this.opts.registryTimeoutMs ?? 5_000;
  }
}

function errInfo(err: unknown): { message: string; code?: string } {
  const e = err as { message?: string; code?: string };
  return { message: e?.message ?? String(err), ...(e?.code ? { code: e.code } : {}) };
}
