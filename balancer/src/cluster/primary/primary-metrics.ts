// The balancer's metrics, read lazily at scrape time (the workers report every second, no scrape
// round-trip), kept in step with the table: its live services and servers, changes and swaps.
import type { Config } from '../../config.js';
import type { ConsulBudget } from '../../discovery/consul-budget.js';
import type { CatalogWatcher } from '../../discovery/consul-catalog.js';
import { BalancerMetrics, type WorkerFigures } from '../../metrics/balancer-metrics.js';
import type { DumpWriter } from '../../persistence/dump-file.js';
import type { TableHolder } from '../../routing/table-holder.js';
import { upstreamOf } from '../../routing/table-upstreams.js';
import type { SupervisorMetrics } from '../supervisor.js';

export const NO_WORKERS: WorkerFigures = { generation: 0, workersAlive: 0, workersReady: 0, restarts: 0, reloads: 0 };

export interface PrimaryMetricSources {
  readonly holder: TableHolder;
  /** undefined until the supervisor exists */
  readonly workers: () => SupervisorMetrics | undefined;
  readonly watcher?: CatalogWatcher;
  readonly budget?: ConsulBudget;
  readonly dumpWriter?: DumpWriter;
}

export function startPrimaryMetrics(config: Pick<Config, 'metrics' | 'mode'>, src: PrimaryMetricSources): BalancerMetrics {
  const { holder, watcher, budget, dumpWriter } = src;
  const metrics = new BalancerMetrics(config.metrics, {
    mode: config.mode,
    table: () => holder.stats(),
    workers: () => src.workers() ?? NO_WORKERS,
    consul: watcher ? () => ({ reachable: watcher.reachable(), ...watcher.stats() })
      // reload mode: the renderer reads Consul through the same budget; its 429s are counted there
      : budget ? () => ({ reachable: undefined, throttled: budget.stats().overBudget }) : undefined,
    dump: dumpWriter ? () => dumpWriter.stats() : undefined,
  });
  metrics.start();
  metrics.retainLive(holder.current());
  holder.subscribe((change) => {
    // looked up per service at the store's tick: the table's upstreams are neither walked nor copied
    metrics.retainLive(change.table, (name) => upstreamOf(change.table, name));
    if (change.cause === 'external') metrics.tableServed(change.table.version, src.workers()?.lastReloadMs ?? 0);
    else metrics.tableChanged(change.table.version);
  });
  return metrics;
}
