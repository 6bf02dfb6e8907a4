// What the primary serves first: Consul's first snapshot, else the dump file, else nothing but the
// admin upstreams; and the table holder's start options that follow from it (pure).
import type pino from 'pino';
import type { Config } from '../../config.js';
import type { CatalogWatcher } from '../../discovery/consul-catalog.js';
import type { DumpContents } from '../../persistence/dump-file.js';
import { policiesFromDump } from '../../policy/policy-sources.js';
import { tableFromUpstreams } from '../../routing/build-table.js';
import type { TableHolderOptions } from '../../routing/table-holder.js';
import type { TableDefaults } from '../../routing/tag-options.js';
import type { CatalogSnapshot } from '../../routing/types.js';
import { scriptsFromDump } from '../../scripts/script-source.js';
import { StartupError } from '../startup-error.js';

export type InitialState =
  | { source: 'consul'; snapshot: CatalogSnapshot }
  | { source: 'dump'; dump: DumpContents }
  | { source: 'empty' };

/** how long the first snapshot is awaited without --strong-dependency */
export const WEAK_START_WAIT_MS = 5_000;

export type StartWaitConfig = Pick<Config, 'strongDependency' | 'startTimeoutMs' | 'consul'>;

export async function waitForInitialState(
  config: StartWaitConfig,
  discovery: { readonly watcher: Pick<CatalogWatcher, 'ready'>; readonly failed: Promise<Error> } | undefined,
  dump: DumpContents | undefined,
  log: pino.Logger,
): Promise<InitialState> {
  if (!discovery) return dump ? { source: 'dump', dump } : { source: 'empty' };
  const waitMs = config.strongDependency ? config.startTimeoutMs : WEAK_START_WAIT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), waitMs)));
  // strong dependency keeps retrying until the start timeout; otherwise the first failure decides
  const contenders: Promise<CatalogSnapshot | Error | 'timeout'>[] = [discovery.watcher.ready, timeout];
  if (!config.strongDependency) contenders.push(discovery.failed);
  const first = await Promise.race(contenders);
  clearTimeout(timer);
  if (first !== 'timeout' && !(first instanceof Error)) return { source: 'consul', snapshot: first };
  const why = first instanceof Error ? first.message : `no answer within ${waitMs} ms`;
  if (config.strongDependency) {
    throw new StartupError('ERR_CONSUL_UNREACHABLE', `consul at ${config.consul?.baseUrl} is unreachable (${why}) and --strong-dependency is set: refusing to start`);
  }
  log.debug({ why }, 'consul not ready at start');
  return dump ? { source: 'dump', dump } : { source: 'empty' };
}

/** The table holder's start: the first snapshot, what the dump kept, and with Consul down the dump's table as served. */
export function holderStart(
  initial: InitialState,
  dump: DumpContents | undefined,
  config: Pick<Config, 'scriptsKvPrefix'>,
  defaults: TableDefaults,
  logger: pino.Logger,
): TableHolderOptions {
  const dumpScripts = scriptsFromDump(dump?.table.scripts);
  return {
    defaults,
    logger: logger.child({ component: 'table' }),
    initialSnapshot: initial.source === 'consul' ? initial.snapshot : dump?.snapshot,
    initialAdminUpstreams: dump?.adminUpstreams,
    // KV scripts in the dump serve until the KV watch answers (with --scripts-kv; dropped without it)
    initialScripts: dumpScripts.filter((s) => s.origin !== 'kv'),
    initialKvScripts: config.scriptsKvPrefix !== undefined ? dumpScripts.filter((s) => s.origin === 'kv') : undefined,
    initialAdminPolicies: dump?.adminPolicies ? policiesFromDump(dump.adminPolicies, logger.child({ component: 'primary' })) : undefined,
    // with Consul down, serve exactly what was served before (the dump's table), not a rebuild of it
    initialTable: initial.source === 'dump' ? tableFromUpstreams(initial.dump.table.upstreams, initial.dump.table.routes) : undefined,
  };
}
