// Dynamic mode's Consul catalog watch, started before the table holder exists (the first snapshot
// decides what the holder starts from); `failed` resolves with the first unreachable answer.
import type pino from 'pino';
import type { ConsulConfig } from '../../config.js';
import type { ConsulBudget } from '../../discovery/consul-budget.js';
import { watchConsulCatalog, type CatalogWatcher } from '../../discovery/consul-catalog.js';
import { watchConsulPerService } from '../../discovery/per-service/watch.js';
import type { CatalogSnapshot } from '../../routing/types.js';

export interface CatalogDiscovery {
  readonly watcher: CatalogWatcher;
  /** the first failure to reach Consul (never rejects; pending while Consul answers) */
  readonly failed: Promise<Error>;
}

export interface CatalogDiscoveryOptions {
  readonly consul: ConsulConfig;
  readonly budget: ConsulBudget | undefined;
  readonly services: readonly string[] | undefined;
  readonly logger: pino.Logger;
  /** a snapshot that changed these services (the table build looks at those alone) */
  readonly onChange: (snapshot: CatalogSnapshot, changed: ReadonlySet<string>) => void;
}

export function startCatalogDiscovery(opts: CatalogDiscoveryOptions, signal: AbortSignal): CatalogDiscovery {
  const { consul } = opts;
  const log = opts.logger.child({ component: 'primary' });
  let firstFailure: ((err: Error) => void) | undefined;
  const failed = new Promise<Error>((resolve) => (firstFailure = resolve));
  // --consul-watch: the index design, or one blocking query per service over HTTP/2 (same interface)
  const watch = consul.watch === 'per-service' ? watchConsulPerService : watchConsulCatalog;
  const watcher = watch({
    endpoint: { baseUrl: consul.baseUrl, token: consul.token, stale: consul.stale, maxBodyBytes: consul.maxBodyBytes },
    budget: opts.budget,
    ca: consul.ca,
    resyncMs: consul.resyncMs,
    waitMs: consul.waitMs,
    minQueryIntervalMs: consul.minQueryIntervalMs,
    debounceMs: consul.debounceMs,
    services: opts.services,
    logger: opts.logger.child({ component: 'discovery' }),
    onSnapshot: () => undefined,
    onChange: opts.onChange,
    onReachability: (ok, err) => {
      if (!ok && err) firstFailure?.(err);
      log[ok ? 'info' : 'warn']({ consul: consul.baseUrl }, ok ? 'consul reachable' : 'consul unreachable, serving the last table');
    },
  }, signal);
  return { watcher, failed };
}
