// The admin API of the primary over what the assembly started (admin/app.ts builds it; it never listens).
import type { FastifyInstance } from 'fastify';
import type pino from 'pino';
import { buildAdminApp } from '../../admin/app.js';
import type { Config } from '../../config.js';
import type { CatalogWatcher } from '../../discovery/consul-catalog.js';
import type { SharedActiveChecker } from '../../health/shared-checker.js';
import type { BalancerMetrics } from '../../metrics/balancer-metrics.js';
import type { DumpWriter } from '../../persistence/dump-file.js';
import type { TableHolder } from '../../routing/table-holder.js';
import type { TableDefaults } from '../../routing/tag-options.js';
import type { ScriptStore } from '../../scripts/script-kv-sync.js';
import type { TlsHandle } from '../../tls/tls-primary.js';
import type { Supervisor } from '../supervisor.js';

/** how long an admin write waits for the workers to serve it (dynamic mode) */
export const ADMIN_APPLIED_WAIT_MS = 5_000;

export interface PrimaryParts {
  readonly holder: TableHolder;
  readonly defaults: TableDefaults;
  readonly supervisor: Supervisor;
  readonly metrics: BalancerMetrics;
  readonly watcher?: CatalogWatcher;
  readonly dumpWriter?: DumpWriter;
  readonly checker?: SharedActiveChecker;
  readonly tls?: TlsHandle;
  readonly scriptStore?: ScriptStore;
}

/** `token`: the bearer token the API requires (configured or made at start); undefined = open (loopback only) */
export function primaryAdminApp(config: Config, parts: PrimaryParts, token: string | undefined, logger: pino.Logger): FastifyInstance {
  const { holder, supervisor, watcher, dumpWriter, checker } = parts;
  return buildAdminApp({
    holder,
    defaults: parts.defaults,
    logger: logger.child({ component: 'admin' }),
    workers: supervisor,
    token,
    listenHost: config.admin.host,
    allowedHosts: config.adminAllowedHosts,
    maxUpstreams: config.adminMaxUpstreams,
    maxServers: config.adminMaxServers,
    consulReachable: () => watcher?.reachable(),
    applied: config.mode === 'dynamic' ? (version) => supervisor.whenPublished(version, ADMIN_APPLIED_WAIT_MS) : undefined,
    readOnlyReason: config.mode === 'reload' ? 'reload mode: upstreams come from the rendered config file, not from the admin API' : undefined,
    metrics: () => ({
      ...supervisor.metrics(), discovery: watcher?.stats(), dump: dumpWriter?.stats(),
      table: { ...holder.stats(), buildMs: holder.buildTiming() }, activeChecks: checker?.stats(),
    }),
    tls: parts.tls,
    balancerMetrics: parts.metrics,
    mode: config.mode,
    consulEnabled: config.consul !== undefined,
    scriptStore: parts.scriptStore,
  });
}
