// The primary process wired together: dump file, Consul discovery, table holder, worker supervisor,
// admin API. main.ts parses the command line and calls startPrimary(); tests may call it directly.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type pino from 'pino';
import { buildAdminApp } from '../admin/app.js';
import type { Config } from '../config.js';
import { ConsulBudget, DEFAULT_CONSUL_MAX_CONNS } from '../discovery/consul-budget.js';
import { watchSlot } from '../discovery/watch-slot.js';
import { createChallengeLookup } from '../tls/acme-challenge.js';
import { challengeRelayServer } from '../tls/acme-challenge-relay.js';
import { watchConsulCatalog, type CatalogWatcher } from '../discovery/consul-catalog.js';
import { DumpFileError, DumpWriter, loadDump, quarantineDump, type DumpContents } from '../persistence/dump-file.js';
import { tableFromUpstreams } from '../routing/build-table.js';
import { TableHolder, type TableChange } from '../routing/table-holder.js';
import { upstreamOf } from '../routing/table-upstreams.js';
import { DEFAULT_TABLE_DEFAULTS, type TableDefaults } from '../routing/tag-options.js';
import type { CatalogSnapshot, RouteTable } from '../routing/types.js';
import { SharedActiveChecker } from '../health/shared-checker.js';
import { Supervisor } from './supervisor.js';
import { policiesFromDump, startPolicyKvWatch } from '../policy/policy-sources.js';
import { consulScriptStore, startScriptKvWatch } from '../scripts/script-kv-sync.js';
import { scriptsFromDump } from '../scripts/script-source.js';
import { challengeLookupOptions, startTls, workerTlsOptions, type TlsHandle } from '../tls/tls-primary.js';
import { BalancerMetrics } from '../metrics/balancer-metrics.js';
import { certificateExpiries } from '../tls/cert-expiry.js';

export class StartupError extends Error {
  /** ERR_CONSUL_UNREACHABLE, ERR_RELOAD_MODE_UNAVAILABLE, ERR_WORKER_START, ERR_ADMIN_LISTEN, or the code of the cause */
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

export interface PrimaryHandle {
  readonly proxy: { address: string; port: number };
  readonly admin: { address: string; port: number };
  readonly holder: TableHolder;
  readonly supervisor: Supervisor;
  /** TLS listener addresses (real ports) and the certificate store; undefined without --tls-listen */
  readonly tls?: { readonly addresses: readonly { address: string; port: number }[]; readonly handle: TlsHandle };
  /** graceful: admin, watchers, workers (drained), dump flushed */
  stop(): Promise<void>;
}

export function tableDefaultsFrom(config: Config): TableDefaults {
  return { ...DEFAULT_TABLE_DEFAULTS, algorithm: config.defaultLb, passingOnly: config.passingOnly, ...(config.l4?.tcpPorts ? { tcpPorts: config.l4.tcpPorts } : {}) };
}

type InitialState =
  | { source: 'consul'; snapshot: CatalogSnapshot }
  | { source: 'dump'; dump: DumpContents }
  | { source: 'empty' };

export async function startPrimary(config: Config, logger: pino.Logger): Promise<PrimaryHandle> {
  const log = logger.child({ component: 'primary' });
  const defaults = tableDefaultsFrom(config);
  const controller = new AbortController();
  const signal = controller.signal;

  let dump: DumpContents | undefined;
  if (config.dumpFile) {
    try {
      dump = await loadDump(config.dumpFile);
      if (dump) log.info({ file: config.dumpFile, savedAt: dump.savedAt, upstreams: Object.keys(dump.table.upstreams).length }, 'dump file loaded');
    } catch (err) {
      if (!(err instanceof DumpFileError)) throw err;
      if (err.unusable) {
        // kept aside, never overwritten: it may hold admin upstreams an operator wants back
        const aside = await quarantineDump(config.dumpFile).catch((e: Error) => `(could not be moved: ${e.message})`);
        log.error({ err: err.message, code: err.code, file: config.dumpFile, keptAs: aside }, `dump file unusable, kept aside as ${aside}; starting from Consul`);
      } else {
        log.error({ err: err.message, code: err.code }, 'dump file ignored');
      }
    }
  }

  // Discovery starts before the holder exists; snapshots are forwarded once it does.
  let holderRef: TableHolder | undefined;
  let watcher: CatalogWatcher | undefined;
  let firstFailure: ((err: Error) => void) | undefined;
  const failed = new Promise<Error>((resolve) => (firstFailure = resolve));
  // reload mode renders from Consul itself (balancer/src/reload); dynamic mode watches here
  const useOwnDiscovery = config.consul !== undefined && config.mode === 'dynamic';
  // one connection budget for every Consul client of the primary (discovery, KV policies): the agent
  // allows each client IP 200 connections, shared with the registrator and others on the host
  // (reload mode's renderer and --render share it too: one watch set, not a query per template dependency)
  const consulBudget = config.consul ? new ConsulBudget({ maxConns: config.consul.maxConns ?? DEFAULT_CONSUL_MAX_CONNS }) : undefined;
  if (config.consul && useOwnDiscovery) {
    watcher = watchConsulCatalog({
      endpoint: { baseUrl: config.consul.baseUrl, token: config.consul.token, stale: config.consul.stale, maxBodyBytes: config.consul.maxBodyBytes },
      budget: consulBudget,
      resyncMs: config.consul.resyncMs,
      waitMs: config.consul.waitMs,
      minQueryIntervalMs: config.consul.minQueryIntervalMs,
      debounceMs: config.consul.debounceMs,
      services: config.services,
      logger: logger.child({ component: 'discovery' }),
      onSnapshot: () => undefined,
      // the names of the changed services let the table build look at those alone
      onChange: (s, changed) => holderRef?.setSnapshot(s, changed),
      onReachability: (ok, err) => {
        if (!ok && err) firstFailure?.(err);
        log[ok ? 'info' : 'warn']({ consul: config.consul?.baseUrl }, ok ? 'consul reachable' : 'consul unreachable, serving the last table');
      },
    }, signal);
  }

  let initial: InitialState;
  try {
    initial = await waitForInitialState(config, watcher, failed, dump, log);
  } catch (err) {
    controller.abort();
    await watcher?.done;
    await consulBudget?.close();
    throw err;
  }
  if (initial.source === 'dump') log.warn({ file: config.dumpFile, savedAt: initial.dump.savedAt }, 'consul unreachable at start: serving from the dump file');
  if (initial.source === 'empty' && watcher) log.warn('consul unreachable at start and no dump file: serving admin upstreams only until consul answers');

  const dumpScripts = scriptsFromDump(dump?.table.scripts);
  const dumpTable = (d: DumpContents): RouteTable => tableFromUpstreams(d.table.upstreams, d.table.routes);
  const holder = new TableHolder({
    defaults,
    logger: logger.child({ component: 'table' }),
    initialSnapshot: initial.source === 'consul' ? initial.snapshot : dump?.snapshot,
    initialAdminUpstreams: dump?.adminUpstreams,
    // KV scripts in the dump serve until the KV watch answers (with --scripts-kv; dropped without it)
    initialScripts: dumpScripts.filter((s) => s.origin !== 'kv'),
    initialKvScripts: config.scriptsKvPrefix !== undefined ? dumpScripts.filter((s) => s.origin === 'kv') : undefined,
    initialAdminPolicies: dump?.adminPolicies ? policiesFromDump(dump.adminPolicies, log) : undefined,
    // with Consul down, serve exactly what was served before (the dump's table), not a rebuild of it
    initialTable: initial.source === 'dump' ? dumpTable(initial.dump) : undefined,
  });
  holderRef = holder;
  // Consul KV policies (balancer/policy/<service>) beside the catalog, dynamic mode only
  // each KV watch blocks on a slot of the budget while one is left (the catalog signals reserved
  // first), else polls in the read share: never a connection beyond --consul-max-conns
  const policySlot = consulBudget && useOwnDiscovery ? watchSlot(consulBudget) : undefined;
  const policyWatch = config.consul && useOwnDiscovery
    ? startPolicyKvWatch({
      endpoint: { baseUrl: config.consul.baseUrl, token: config.consul.token, dispatcher: consulBudget?.dispatcher },
      slot: policySlot,
      waitMs: config.consul.waitMs,
      minQueryIntervalMs: config.consul.minQueryIntervalMs,
      holder: () => holder,
      logger: logger.child({ component: 'policy' }),
    }, signal)
    : undefined;
  // request scripts in Consul KV (--scripts-kv): loaded from <prefix><name>, written by admin uploads
  const scriptsKv = config.consul && useOwnDiscovery && config.scriptsKvPrefix !== undefined ? { consul: config.consul, prefix: config.scriptsKvPrefix } : undefined;
  if (config.scriptsKvPrefix !== undefined && !scriptsKv) log.warn('--scripts-kv is followed in dynamic mode only: ignored');
  const scriptsSlot = scriptsKv && consulBudget ? watchSlot(consulBudget) : undefined;
  const scriptsEndpoint = scriptsKv ? { baseUrl: scriptsKv.consul.baseUrl, token: scriptsKv.consul.token, dispatcher: consulBudget?.dispatcher } : undefined;
  for (const [watch, slot] of [['policy', policySlot], ['scripts', scriptsSlot]] as const) {
    if (slot && !slot.blocking) log.info({ watch, maxConns: consulBudget?.maxConns }, 'no consul connection left for this KV watch: polling it in the read share');
  }
  const scriptWatch = scriptsKv && scriptsEndpoint
    ? startScriptKvWatch({
      endpoint: scriptsEndpoint,
      prefix: scriptsKv.prefix,
      waitMs: scriptsKv.consul.waitMs,
      minQueryIntervalMs: scriptsKv.consul.minQueryIntervalMs,
      holder: () => holder,
      logger: logger.child({ component: 'scripts' }),
      slot: scriptsSlot,
    }, signal)
    : undefined;
  const dumpWriter = config.dumpFile ? new DumpWriter(config.dumpFile, logger.child({ component: 'dump' })) : undefined;
  const saveDump = () => dumpWriter?.save({ table: holder.current(), adminUpstreams: holder.adminUpstreams(), snapshot: holder.currentSnapshot(), adminPolicies: holder.policyOverrides().admin });
  holder.subscribe(() => saveDump());
  // a snapshot that arrived while we were deciding (a no-op when it is the one we started from)
  const latest = watcher?.current();
  if (latest) holder.setSnapshot(latest);
  if (!dump || dump.table.version !== holder.current().version) saveDump();

  // metrics: figures read lazily at scrape time; the workers report every second (no scrape round-trip)
  let supervisorRef: Supervisor | undefined;
  const metrics = new BalancerMetrics(config.metrics, {
    mode: config.mode,
    table: () => holder.stats(),
    workers: () => supervisorRef?.metrics() ?? { generation: 0, workersAlive: 0, workersReady: 0, restarts: 0, reloads: 0 },
    consul: watcher ? () => ({ reachable: watcher?.reachable(), ...watcher?.stats() })
      // reload mode: the renderer reads Consul through the same budget; its 429s are counted there
      : consulBudget ? () => ({ reachable: undefined, throttled: consulBudget.stats().overBudget }) : undefined,
    dump: dumpWriter ? () => dumpWriter.stats() : undefined,
  });
  metrics.start();
  metrics.retainLive(holder.current());
  holder.subscribe((change) => {
    // looked up per service at the store's tick: the table's upstreams are neither walked nor copied
    metrics.retainLive(change.table, (name) => upstreamOf(change.table, name));
    if (change.cause === 'external') metrics.tableServed(change.table.version, supervisorRef?.metrics().lastReloadMs ?? 0);
    else metrics.tableChanged(change.table.version);
  });

  const challengeLookup = challengeLookupOptions(config.tls, config.consul);
  const supervisor = new Supervisor({
    onMetrics: (msg, reply) => {
      if (metrics.onWorkerReport(msg).wantFull) reply({ type: 'metrics-full' });
    },
    workers: config.workers,
    drainTimeoutMs: config.drainTimeoutMs,
    logger: logger.child({ component: 'supervisor' }),
    init: {
      listenHost: config.listen.host,
      listenPort: config.listen.port,
      localNode: config.localNode,
      localZone: config.localZone,
      timeouts: config.timeouts,
      maxConnectionsPerServer: config.maxConnectionsPerServer,
      engine: config.engine,
      maxHeadBytes: config.maxHeadBytes,
      http2: config.http2,
      accessLog: config.accessLog,
      trustForwarded: config.trustForwarded,
      l4: config.l4,
      stickySecret: config.stickySecret ?? randomBytes(32).toString('base64url'),
      // dynamic mode probes once per host, here; reload-mode generations keep their own checkers
      sharedActiveChecks: config.mode === 'dynamic',
      maxQueuePerServer: config.maxQueuePerServer,
      upgradeProtocols: config.upgradeProtocols,
      logLevel: config.logLevel,
      tls: config.tls ? workerTlsOptions(config.tls) : undefined,
      // the primary answers them (acme-challenge messages): no worker opens a Consul connection
      acmeChallenges: challengeLookup ? { timeoutMs: challengeLookup.timeoutMs + 1_000 } : undefined,
      metrics: { bucketsSeconds: config.metrics.bucketsSeconds, maxServersPerService: config.metrics.maxServersPerService },
    },
  });
  supervisorRef = supervisor;
  if (challengeLookup) {
    // ACME HTTP-01 lookups of every worker: one KV read each, in the primary's read share
    const serve = challengeRelayServer(createChallengeLookup({
      ...challengeLookup, dispatcher: consulBudget?.dispatcher, read: consulBudget ? (s, fn) => consulBudget.read(s, fn) : undefined,
    }));
    supervisor.onWorkerMessage((ch, msg) => {
      if (msg.type === 'acme-challenge') serve(msg, (answer) => ch.send(answer));
    });
  }
  supervisor.onPublished((e) => metrics.tableServed(e.table.version, e.latencyMs));
  // before the workers start: they get the certificates right after their init
  let tls: TlsHandle | undefined;
  if (config.tls) {
    tls = await startTls({
      config: config.tls, consul: config.consul, budget: consulBudget, workers: supervisor, logger, signal, dumpFile: config.dumpFile,
      catalog: { current: () => holder.currentSnapshot(), subscribe: (l) => holder.subscribe(() => l()) },
    });
    const store = tls.store;
    metrics.setCertificateSource(() => certificateExpiries(store.current().certs));
  }

  let stopRenderers: (() => Promise<void>) | undefined;
  let sharedChecker: SharedActiveChecker | undefined;
  try {
    if (config.mode === 'dynamic') {
      const startTable = holder.current();
      // active checks once per host: one probe per server and interval, state changes broadcast
      const checker = new SharedActiveChecker({
        logger: logger.child({ component: 'active-check' }),
        broadcast: (active) => {
          for (const ch of supervisor.channels()) ch.send({ type: 'health', update: { active } });
        },
      });
      sharedChecker = checker;
      checker.apply(startTable);
      // only the upstreams the change names: a change costs its own servers
      holder.subscribe((change) => checker.apply(change.table, change));
      // a new or restarted worker starts from the current states (servers default to up)
      supervisor.onWorkerInit((ch) => {
        const down = checker.states().filter((st) => !st.up);
        if (down.length > 0) ch.send({ type: 'health', update: { active: down } });
      });
      // passive health stays per worker, but an ejection one worker decides reaches the others
      supervisor.onWorkerMessage((from, msg) => {
        if (msg.type !== 'ejected') return;
        for (const ch of supervisor.channels()) if (ch.workerId !== from.workerId) ch.send({ type: 'health', update: { ejections: [{ id: msg.id, forMs: msg.forMs }] } });
      });
      await supervisor.start(startTable);
      const publish = (table: RouteTable, change?: TableChange) => supervisor.publish(table, change).catch((err) => log.error({ err }, 'publish failed'));
      // workers get the change as a delta on the table they hold (full table only at start or after a gap)
      holder.subscribe((change) => void publish(change.table, change));
      // changes that arrived while the workers were starting
      if (holder.current().version !== startTable.version) void publish(holder.current());
      // --render/--reload-command beside dynamic mode (reload mode runs them in its own renderer)
      if (config.consul && config.reload.renders.length > 0) {
        const { startRenderJobs } = await import('../render/render-jobs.js');
        const jobs = await startRenderJobs({
          consul: config.consul,
          renders: config.reload.renders,
          reloadCommand: config.reload.reloadCommand,
          wait: config.reload.wait,
          logger: logger.child({ component: 'render' }),
          signal,
          budget: consulBudget,
        });
        stopRenderers = () => jobs.stop();
      }
    } else {
      stopRenderers = await startReloadModeFor(config, supervisor, holder, logger, signal, metrics, consulBudget);
    }
  } catch (err) {
    controller.abort();
    await supervisor.stop().catch(() => undefined);
    await tls?.stop().catch(() => undefined);
    await consulBudget?.close();
    await dumpWriter?.flush();
    if (err instanceof StartupError) throw err;
    throw new StartupError((err as { code?: string }).code ?? 'ERR_WORKER_START', (err as Error).message);
  }

  const admin = buildAdminApp({
    holder,
    defaults,
    logger: logger.child({ component: 'admin' }),
    workers: supervisor,
    token: config.adminToken,
    listenHost: config.admin.host,
    allowedHosts: config.adminAllowedHosts,
    maxUpstreams: config.adminMaxUpstreams,
    maxServers: config.adminMaxServers,
    consulReachable: () => watcher?.reachable(),
    applied: config.mode === 'dynamic' ? (version) => supervisor.whenPublished(version, 5000) : undefined,
    readOnlyReason: config.mode === 'reload' ? 'reload mode: upstreams come from the rendered config file, not from the admin API' : undefined,
    metrics: () => ({
      ...supervisor.metrics(), discovery: watcher?.stats(), dump: dumpWriter?.stats(),
      table: { ...holder.stats(), buildMs: holder.buildTiming() }, activeChecks: sharedChecker?.stats(),
    }),
    tls,
    balancerMetrics: metrics,
    mode: config.mode,
    consulEnabled: config.consul !== undefined,
    scriptStore: scriptsKv && scriptsEndpoint ? consulScriptStore(scriptsEndpoint, scriptsKv.prefix, signal, undefined, scriptsSlot?.read) : undefined,
  });
  try {
    await admin.listen({ host: config.admin.host, port: config.admin.port });
  } catch (err) {
    controller.abort();
    await stopRenderers?.().catch(() => undefined);
    await supervisor.stop().catch(() => undefined);
    await tls?.stop().catch(() => undefined);
    await consulBudget?.close();
    await dumpWriter?.flush();
    throw new StartupError('ERR_ADMIN_LISTEN', `admin API cannot listen on ${config.admin.host}:${config.admin.port}: ${(err as Error).message}`);
  }
  const adminAddr = admin.server.address() as AddressInfo;
  const proxyAddr = supervisor.address() ?? { address: config.listen.host, port: config.listen.port };
  log.info({ mode: config.mode, proxyPort: proxyAddr.port, adminPort: adminAddr.port, workers: config.workers, version: holder.current().version }, 'balancer started');

  let stopping: Promise<void> | undefined;
  return {
    proxy: proxyAddr,
    admin: { address: adminAddr.address, port: adminAddr.port },
    holder,
    supervisor,
    tls: tls ? { addresses: (supervisor.tlsAddresses() ?? []).map((a) => ({ address: a.address, port: a.port })), handle: tls } : undefined,
    stop() {
      stopping ??= (async () => {
        log.info('stopping');
        controller.abort();
        sharedChecker?.stop();
        await admin.close().catch((err) => log.warn({ err }, 'admin close failed'));
        await stopRenderers?.().catch((err) => log.warn({ err }, 'reload mode stop failed'));
        await supervisor.stop();
        await tls?.stop();
        await watcher?.done;
        await policyWatch;
        await scriptWatch;
        await consulBudget?.close();
        await dumpWriter?.flush();
        metrics.stop();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}

async function waitForInitialState(
  config: Config,
  watcher: CatalogWatcher | undefined,
  failed: Promise<Error>,
  dump: DumpContents | undefined,
  log: pino.Logger,
): Promise<InitialState> {
  if (!watcher) return dump ? { source: 'dump', dump } : { source: 'empty' };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), config.strongDependency ? config.startTimeoutMs : 5_000)));
  // strong dependency keeps retrying until the start timeout; otherwise the first failure decides
  const contenders: Promise<CatalogSnapshot | Error | 'timeout'>[] = [watcher.ready, timeout];
  if (!config.strongDependency) contenders.push(failed);
  const first = await Promise.race(contenders);
  clearTimeout(timer);
  if (first !== 'timeout' && !(first instanceof Error)) return { source: 'consul', snapshot: first };
  const why = first instanceof Error ? first.message : `no answer within ${config.strongDependency ? config.startTimeoutMs : 5000} ms`;
  if (config.strongDependency) {
    throw new StartupError('ERR_CONSUL_UNREACHABLE', `consul at ${config.consul?.baseUrl} is unreachable (${why}) and --strong-dependency is set: refusing to start`);
  }
  log.debug({ why }, 'consul not ready at start');
  return dump ? { source: 'dump', dump } : { source: 'empty' };
}

/** reload mode lives in balancer/src/reload; loaded lazily so dynamic mode never needs it. */
async function startReloadModeFor(
  config: Config,
  supervisor: Supervisor,
  holder: TableHolder,
  logger: pino.Logger,
  signal: AbortSignal,
  metrics: BalancerMetrics,
  budget: ConsulBudget | undefined,
): Promise<() => Promise<void>> {
  let mod: typeof import('../reload/reload-mode.js');
  try {
    mod = await import('../reload/reload-mode.js');
  } catch (err) {
    throw new StartupError('ERR_RELOAD_MODE_UNAVAILABLE', `reload mode not available: ${(err as Error).message}`);
  }
  const handle = await mod.startReloadMode({
    config,
    supervisor,
    logger: logger.child({ component: 'reload' }),
    signal,
    budget,
    // the admin API and the dump show what the workers serve
    onGeneration: (e) => {
      // change -> swap: from the Consul answer behind the render to the new generation listening
      if (!e.first && e.changedAtMs !== undefined) metrics.tableChanged(e.table.version, e.changedAtMs);
      holder.adopt(e.table);
    },
  });
  await handle.ready;
  return () => handle.stop();
}
