// The primary process assembled from its parts (cluster/primary/*): dump file, Consul discovery,
// table holder, KV watches, metrics, worker supervisor, TLS, the mode's own start, admin API. Each part
// is added to one stop list as it starts, so a failed start and a stop tear down the same way, newest
// first. main.ts parses the command line and calls startPrimary(); tests may call it directly.
import type { AddressInfo } from 'node:net';
import type pino from 'pino';
import { AdminTokenError, adminTokenPlan, writeNewAdminToken } from '../admin/admin-token.js';
import type { Config } from '../config.js';
import { ConsulBudget, DEFAULT_CONSUL_MAX_CONNS } from '../discovery/consul-budget.js';
import { withConsulCa } from '../discovery/consul-ca.js';
import { withUpstreamCa } from '../proxy/http2/upstream-ca.js';
import { DumpWriter } from '../persistence/dump-file.js';
import { TableHolder } from '../routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS, type TableDefaults } from '../routing/tag-options.js';
import { certificateExpiries } from '../tls/cert-expiry.js';
import { challengeLookupOptions, startTls, type TlsHandle } from '../tls/tls-primary.js';
import { primaryAdminApp } from './primary/admin-app.js';
import { startCatalogDiscovery } from './primary/catalog-discovery.js';
import { followTable } from './primary/dump-persistence.js';
import { holderStart, waitForInitialState } from './primary/initial-state.js';
import { startKvWatches } from './primary/kv-watches.js';
import { startReloadModeFor, startRendersBeside } from './primary/mode-start.js';
import { startPrimaryMetrics } from './primary/primary-metrics.js';
import { startPublishing } from './primary/publish.js';
import { loadStartDump } from './primary/start-dump.js';
import { StopList } from './primary/stop-list.js';
import { workerInitFrom } from './primary/worker-init.js';
import { relayAcmeChallenges, relayEjections, shareActiveChecks, shareRateLimits } from './primary/worker-wiring.js';
import { StartupError } from './startup-error.js';
import { Supervisor } from './supervisor.js';

export { StartupError } from './startup-error.js';

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
  return { ...DEFAULT_TABLE_DEFAULTS, algorithm: config.defaultLb, passingOnly: config.passingOnly, ...(config.l4?.tcpPorts ? { tcpPorts: config.l4.tcpPorts } : {}),
    ...(config.tls !== undefined && config.tls.listen.length > 0 ? { tlsPorts: config.tls.listen.map((l) => l.port) } : {}) };
}

export async function startPrimary(parsed: Config, logger: pino.Logger): Promise<PrimaryHandle> {
  const log = logger.child({ component: 'primary' });
  const stops = new StopList(log);
  try {
    const config = await withUpstreamCa(await withConsulCa(parsed));
    return await assemble(config, logger, log, stops);
  } catch (err) {
    await stops.stop();
    throw err;
  }
}

async function assemble(config: Config, logger: pino.Logger, log: pino.Logger, stops: StopList): Promise<PrimaryHandle> {
  const { signal } = stops;
  const defaults = tableDefaultsFrom(config);
  const adminToken = await adminTokenFor(config, log);
  const dump = await loadStartDump(config.dumpFile, log);
  // one connection budget for every Consul client of the primary (discovery, KV watches, TLS, renders):
  // the agent allows each client IP 200 connections, shared with the registrator and others on the host
  const budget = config.consul ? new ConsulBudget({ maxConns: config.consul.maxConns ?? DEFAULT_CONSUL_MAX_CONNS, ca: config.consul.ca }) : undefined;
  if (budget) stops.add('consul budget', () => budget.close());
  // added before every source of changes: flushed after they all stopped
  const dumpWriter = config.dumpFile ? new DumpWriter(config.dumpFile, logger.child({ component: 'dump' })) : undefined;
  if (dumpWriter) stops.add('dump file', () => dumpWriter.flush());

  // reload mode renders from Consul itself (balancer/src/reload); dynamic mode watches here, before
  // the holder exists (snapshots are forwarded once it does)
  const consul = config.mode === 'dynamic' ? config.consul : undefined;
  let holderRef: TableHolder | undefined;
  const discovery = consul ? startCatalogDiscovery({ consul, budget, services: config.services, logger, onChange: (s, changed) => holderRef?.setSnapshot(s, changed) }, signal) : undefined;
  const watcher = discovery?.watcher;
  if (watcher) stops.add('discovery', () => watcher.done);
  const initial = await waitForInitialState(config, discovery, dump, log);
  if (initial.source === 'dump') log.warn({ file: config.dumpFile, savedAt: initial.dump.savedAt }, 'consul unreachable at start: serving from the dump file');
  if (initial.source === 'empty' && watcher) log.warn('consul unreachable at start and no dump file: serving admin upstreams only until consul answers');

  const holder = new TableHolder(holderStart(initial, dump, config, defaults, logger));
  holderRef = holder;
  if (config.scriptsKvPrefix !== undefined && !consul) log.warn('--scripts-kv is followed in dynamic mode only: ignored');
  const kv = consul ? startKvWatches({ consul, budget, scriptsKvPrefix: config.scriptsKvPrefix, holder, logger }, signal) : undefined;
  if (kv) stops.add('kv watches', () => Promise.all(kv.done));
  if (dumpWriter) followTable(dumpWriter, holder, dump);
  // a snapshot that arrived while we were deciding (a no-op when it is the one we started from)
  const latest = watcher?.current();
  if (latest) holder.setSnapshot(latest);

  let supervisorRef: Supervisor | undefined;
  const metrics = startPrimaryMetrics(config, { holder, workers: () => supervisorRef?.metrics(), watcher, budget, dumpWriter });
  stops.add('metrics', () => metrics.stop());
  const challengeLookup = challengeLookupOptions(config.tls, config.consul);
  const supervisor = new Supervisor({
    onMetrics: (msg, reply) => {
      if (metrics.onWorkerReport(msg).wantFull) reply({ type: 'metrics-full' });
    },
    workers: config.workers,
    drainTimeoutMs: config.drainTimeoutMs,
    // reload mode forks each next generation ahead of time (supervisor.ts, top)
    standby: config.mode === 'reload',
    logger: logger.child({ component: 'supervisor' }),
    init: workerInitFrom(config, challengeLookup),
  });
  supervisorRef = supervisor;
  if (challengeLookup) relayAcmeChallenges(supervisor, challengeLookup, budget);
  stops.add('rate shares', shareRateLimits(supervisor));
  supervisor.onPublished((e) => metrics.tableServed(e.table.version, e.latencyMs));
  // before the workers start: they get the certificates right after their init
  const tls = config.tls ? await startTls({
    config: config.tls, consul: config.consul, budget, workers: supervisor, logger, signal, dumpFile: config.dumpFile,
    catalog: { current: () => holder.currentSnapshot(), subscribe: (l) => holder.subscribe(() => l()) },
  }) : undefined;
  if (tls) {
    stops.add('tls', () => tls.stop());
    metrics.setCertificateSource(() => certificateExpiries(tls.store.current().certs));
  }
  stops.add('workers', () => supervisor.stop());

  const checker = config.mode === 'dynamic' ? shareActiveChecks(supervisor, holder, logger, config.http2.upstreamCa) : undefined;
  if (checker) stops.add('active checks', () => checker.stop());
  try {
    if (config.mode === 'dynamic') {
      relayEjections(supervisor);
      await startPublishing(supervisor, holder, log);
      const stopRenders = await startRendersBeside(config, budget, logger, signal);
      if (stopRenders) stops.add('renders', stopRenders);
    } else {
      stops.add('reload mode', await startReloadModeFor(config, supervisor, holder, logger, signal, metrics, budget));
    }
  } catch (err) {
    if (err instanceof StartupError) throw err;
    throw new StartupError((err as { code?: string }).code ?? 'ERR_WORKER_START', (err as Error).message);
  }

  const admin = primaryAdminApp(config, { holder, defaults, supervisor, metrics, watcher, dumpWriter, checker, tls, scriptStore: kv?.scriptStore }, adminToken, logger);
  try {
    await admin.listen({ host: config.admin.host, port: config.admin.port });
  } catch (err) {
    throw new StartupError('ERR_ADMIN_LISTEN', `admin API cannot listen on ${config.admin.host}:${config.admin.port}: ${(err as Error).message}`);
  }
  stops.add('admin', () => admin.close());
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
        await stops.stop();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}

/** --admin-token, else (admin beyond loopback) a token made now and written where only this user reads it */
async function adminTokenFor(config: Config, log: pino.Logger): Promise<string | undefined> {
  const plan = adminTokenPlan({ token: config.adminToken, adminHost: config.admin.host, file: config.adminTokenFile });
  if (plan.kind === 'configured') return plan.token;
  if (plan.kind === 'open') return undefined;
  try {
    const token = await writeNewAdminToken(plan.file);
    // the path only: the token stays out of every log
    log.warn({ adminTokenFile: plan.file, admin: `${config.admin.host}:${config.admin.port}` },
      `no --admin-token and the admin API listens beyond loopback: made a token, readable only by this user, in ${plan.file}`);
    return token;
  } catch (err) {
    if (err instanceof AdminTokenError) throw new StartupError(err.code, err.message);
    throw err;
  }
}
