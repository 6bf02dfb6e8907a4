// The part of the start that differs by mode, both loaded lazily: --render/--reload-command beside
// dynamic mode (balancer/src/render), and reload mode (balancer/src/reload), which renders its own
// config and runs worker generations from it.
import type pino from 'pino';
import type { Config } from '../../config.js';
import type { ConsulBudget } from '../../discovery/consul-budget.js';
import type { BalancerMetrics } from '../../metrics/balancer-metrics.js';
import type { TableHolder } from '../../routing/table-holder.js';
import { StartupError } from '../startup-error.js';
import type { Supervisor } from '../supervisor.js';

/** undefined when there is nothing to render */
export async function startRendersBeside(config: Config, budget: ConsulBudget | undefined, logger: pino.Logger, signal: AbortSignal): Promise<(() => Promise<void>) | undefined> {
  if (!config.consul || config.reload.renders.length === 0) return undefined;
  const { startRenderJobs } = await import('../../render/render-jobs.js');
  const jobs = await startRenderJobs({
    consul: config.consul,
    renders: config.reload.renders,
    reloadCommand: config.reload.reloadCommand,
    wait: config.reload.wait,
    logger: logger.child({ component: 'render' }),
    signal,
    budget,
  });
  return () => jobs.stop();
}

export async function startReloadModeFor(
  config: Config,
  supervisor: Supervisor,
  holder: TableHolder,
  logger: pino.Logger,
  signal: AbortSignal,
  metrics: BalancerMetrics,
  budget: ConsulBudget | undefined,
): Promise<() => Promise<void>> {
  let mod: typeof import('../../reload/reload-mode.js');
  try {
    mod = await import('../../reload/reload-mode.js');
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
