// The registrator program: parse the command line, wire the edges (Docker, Consul, logger) to the bridge,
// and run until SIGTERM/SIGINT. Exit codes: 0 normal/--help, 1 runtime failure at start-up, 2 bad usage.
//
// Shutdown deregisters nothing, like gliderlabs/registrator: a restart (upgrade, crash) must not make
// every service flap out of the catalog. Services of containers that stopped meanwhile stay until a run
// with -cleanup removes them (as in gliderlabs/registrator).
import dns from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { sleep, withTimeout } from '../../common/backoff.js';
import { Bridge } from './bridge.js';
import { ConfigError, parseArgs, type RunConfig } from './config.js';
import { dockerFromHost } from './docker/client.js';
import { watchContainerEvents } from './docker/events.js';
import { helpText } from './help.js';
import { AgentBudget, BudgetedRegistry } from './registry/agent-budget.js';
import { ConsulRegistry, DEFAULT_PRESENCE_INTERVAL_MS } from './registry/consul-backend.js';
import type Docker from 'dockerode';
import { installProcessGuard } from '../../common/process-guard.js';
import { RegistratorMetrics, startMetricsServer } from './metrics/registrator-metrics.js';

const DOCKER_TIMEOUT_MS = 10_000;
const REGISTRY_TIMEOUT_MS = 5_000;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The original resolves the host name for wildcard bindings; done once here so mapping stays pure. */
async function resolveFallbackIp(hostname: string, log: Logger): Promise<string | undefined> {
  const timer = new AbortController();
  try {
    const lookup = dns.lookup(hostname, { family: 4 });
    const result = await Promise.race([lookup, sleep(3000, timer.signal).then(() => undefined)]);
    return result?.address;
  } catch (err) {
    log.debug({ hostname, err: (err as Error).message }, 'host name does not resolve; wildcard bindings need -ip');
    return undefined;
  } finally {
    timer.abort(); // release the timer so nothing keeps the process alive
  }
}

async function engineIdOf(docker: Docker, signal: AbortSignal, log: Logger): Promise<string | undefined> {
  try {
    const info = (await (docker.info as unknown as (o: object) => Promise<{ ID?: string }>).call(docker, { abortSignal: withTimeout(signal, DOCKER_TIMEOUT_MS) })) ?? {};
    return info.ID || undefined;
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'docker info failed; cleanup will rely on the host name marker only');
    return undefined;
  }
}

function readFileOrExit(path: string | undefined, what: string): string | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    process.stderr.write(`registrator: cannot read ${what} ${path}: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

async function run(cfg: RunConfig): Promise<number> {
  const logger = pino({ level: cfg.logLevel, base: { program: 'registrator' } });
  const log = logger.child({ component: 'main' });
  installProcessGuard({ logger: () => log, role: 'registrator' });
  const lifetime = new AbortController();

  const docker = dockerFromHost(cfg.dockerHost);
  const engineId = await engineIdOf(docker, lifetime.signal, log);
  const fallbackHostIp = cfg.mapping.hostIp ? undefined : await resolveFallbackIp(cfg.mapping.hostname, log);
  const mapping = { ...cfg.mapping, ...(fallbackHostIp && !cfg.mapping.fallbackHostIp ? { fallbackHostIp } : {}) };

  const consulRegistry = new ConsulRegistry({
    host: cfg.consul.host,
    port: cfg.consul.port,
    socketPath: cfg.consul.socketPath,
    secure: cfg.consul.secure,
    token: cfg.consul.token,
    ca: readFileOrExit(cfg.consul.caCertFile, 'CONSUL_CACERT'),
    cert: readFileOrExit(cfg.consul.clientCertFile, 'CONSUL_CLIENT_CERT'),
    key: readFileOrExit(cfg.consul.clientKeyFile, 'CONSUL_CLIENT_KEY'),
    tlsSkipVerify: cfg.consul.tlsSkipVerify,
    instanceMarker: mapping.instanceMarker,
    engineId,
    adoptSameEngine: cfg.cleanup,
    callTimeoutMs: REGISTRY_TIMEOUT_MS,
    presenceIntervalMs: DEFAULT_PRESENCE_INTERVAL_MS,
  });
  // Every agent call shares one concurrency budget (-consul-max-conns).
  const budgeted = new BudgetedRegistry(consulRegistry, new AgentBudget({ maxConcurrent: cfg.consulMaxConns }));
  // -metrics: the bridge's registry calls counted (registrations, deregistrations, Consul errors)
  const metrics = cfg.metricsListen ? new RegistratorMetrics() : undefined;
  const registry = metrics ? metrics.wrap(budgeted) : budgeted;
  const bridge = new Bridge({
    docker,
    registry,
    logger,
    mapping,
    deregister: cfg.deregister,
    cleanup: cfg.cleanup,
    resyncSeconds: cfg.resyncSeconds,
    dockerTimeoutMs: DOCKER_TIMEOUT_MS,
    registryTimeoutMs: REGISTRY_TIMEOUT_MS,
    resyncConcurrency: cfg.consulMaxConns,
    drainOnStop: cfg.drainOnStop,
    presenceIntervalMs: engineId ? DEFAULT_PRESENCE_INTERVAL_MS : 0,
  });

  const metricsServer = metrics && cfg.metricsListen ? await startMetricsServer(metrics, cfg.metricsListen.host, cfg.metricsListen.port) : undefined;
  if (metrics && metricsServer) {
    metrics.setBridgeSource(() => ({ resyncs: bridge.stats.resyncs, failingContainers: bridge.stats.failingContainers, refusals: bridge.stats.refusals, refusedServices: bridge.stats.refusedServices, lastResyncMs: bridge.lastResyncStats?.ms }));
    log.info({ address: metricsServer.address.address, port: metricsServer.address.port }, 'metrics listening');
  }

  let stopping: Promise<void> | undefined;
  const shutdown = (signalName: string) => {
    if (stopping) return;
    log.info({ signal: signalName }, 'shutting down (services stay registered)');
    lifetime.abort();
    stopping = bridge.stop();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  log.info({ registry: cfg.consul.uri, dockerHost: cfg.dockerHost, hostname: mapping.hostname, engineId, version: packageVersion() }, 'starting');
  const reachable = await bridge.waitForRegistry(cfg.retryAttempts, cfg.retryIntervalMs);
  if (!reachable) {
    registry.close();
    if (lifetime.signal.aborted) return 0;
    log.fatal({ registry: cfg.consul.uri }, 'registry not reachable; giving up (see -retry-attempts)');
    return 1;
  }

  // Announce this registrator before registering anything, so a peer's -cleanup never takes it for gone.
  await bridge.heartbeat();
  bridge.startTimers();
  await watchContainerEvents({
    docker,
    signal: AbortSignal.any([lifetime.signal, bridge.signal]),
    logger: logger.child({ component: 'docker-events' }),
    onEvent: (e) => bridge.onEvent(e),
    onConnected: (n) => {
      metrics?.eventStreamConnected();
      bridge.requestResync(n === 1 ? 'startup' : 'docker-reconnect').catch(() => undefined);
    },
  });
  await stopping;
  await metricsServer?.close();
  metrics?.stop();
  registry.close();
  log.info('stopped');
  return 0;
}

async function main(): Promise<void> {
  const cfg = parseArgs(process.argv.slice(2), process.env);
  if (cfg instanceof ConfigError) {
    process.stderr.write(`registrator: ${cfg.message}\nRun "registrator -help" for usage.\n`);
    process.exitCode = 2;
    return;
  }
  if (cfg.action === 'help') {
    process.stdout.write(helpText());
    return;
  }
  if (cfg.action === 'version') {
    process.stdout.write(`registrator ${packageVersion()}\n`);
    return;
  }
  process.exitCode = await run(cfg);
}

main().catch((err) => {
  process.stderr.write(`registrator: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
