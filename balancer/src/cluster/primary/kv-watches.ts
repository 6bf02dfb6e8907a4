// Dynamic mode's Consul KV watches beside the catalog: traffic policies (balancer/policy/<service>)
// and, with --scripts-kv, request scripts (<prefix><name>, also written by admin uploads). Each
// blocks on a slot of the connection budget while one is left (the catalog's signals reserved
// first), else polls in the read share: never a connection beyond --consul-max-conns.
import type pino from 'pino';
import type { ConsulConfig } from '../../config.js';
import type { ConsulBudget } from '../../discovery/consul-budget.js';
import { watchSlot } from '../../discovery/watch-slot.js';
import { startPolicyKvWatch } from '../../policy/policy-sources.js';
import type { TableHolder } from '../../routing/table-holder.js';
import { consulScriptStore, startScriptKvWatch } from '../../scripts/script-kv-sync.js';
import type { ScriptStore } from '../../scripts/script-kv-sync.js';

export interface KvWatches {
  /** each resolves when its watch has ended (after the signal aborted) */
  readonly done: readonly Promise<void>[];
  /** where admin script uploads go; undefined without --scripts-kv */
  readonly scriptStore?: ScriptStore;
}

export interface KvWatchOptions {
  readonly consul: ConsulConfig;
  readonly budget: ConsulBudget | undefined;
  readonly scriptsKvPrefix: string | undefined;
  readonly holder: TableHolder;
  readonly logger: pino.Logger;
}

export function startKvWatches(opts: KvWatchOptions, signal: AbortSignal): KvWatches {
  const { consul, budget, holder, logger } = opts;
  const log = logger.child({ component: 'primary' });
  const dispatcher = budget?.dispatcher;
  const policySlot = budget ? watchSlot(budget) : undefined;
  const done: Promise<void>[] = [startPolicyKvWatch({
    endpoint: { baseUrl: consul.baseUrl, token: consul.token, dispatcher },
    slot: policySlot,
    waitMs: consul.waitMs,
    minQueryIntervalMs: consul.minQueryIntervalMs,
    holder: () => holder,
    logger: logger.child({ component: 'policy' }),
  }, signal)];
  const prefix = opts.scriptsKvPrefix;
  const scriptsSlot = prefix !== undefined && budget ? watchSlot(budget) : undefined;
  for (const [watch, slot] of [['policy', policySlot], ['scripts', scriptsSlot]] as const) {
    if (slot && !slot.blocking) log.info({ watch, maxConns: budget?.maxConns }, 'no consul connection left for this KV watch: polling it in the read share');
  }
  if (prefix === undefined) return { done };
  const endpoint = { baseUrl: consul.baseUrl, token: consul.token, dispatcher };
  done.push(startScriptKvWatch({
    endpoint,
    prefix,
    waitMs: consul.waitMs,
    minQueryIntervalMs: consul.minQueryIntervalMs,
    holder: () => holder,
    logger: logger.child({ component: 'scripts' }),
    slot: scriptsSlot,
  }, signal));
  return { done, scriptStore: consulScriptStore(endpoint, prefix, signal, undefined, scriptsSlot?.read) };
}
