// The primary's edges of the policy sources: admin policies read back from the dump file, and the
// Consul KV watcher feeding the table holder.
import type pino from 'pino';
import type { ConsulEndpoint } from '../discovery/blocking-query.js';
import type { WatchSlot } from '../discovery/watch-slot.js';
import type { TableHolder } from '../routing/table-holder.js';
import { policiesFromKv, POLICY_KV_PREFIX } from './kv-policies.js';
import { watchKvPrefix } from './kv-prefix-watcher.js';
import { parsePolicyJson, policyDocumentToJson, type PolicyDocument } from './policy-spec.js';

/** Dump entries re-validated as if sent again: a hand-edited or foreign file loses only its bad entries. */
export function policiesFromDump(stored: unknown, log: pino.Logger): Record<string, PolicyDocument> {
  const out: Record<string, PolicyDocument> = {};
  if (typeof stored !== 'object' || stored === null) return out;
  for (const [name, doc] of Object.entries(stored as Record<string, unknown>)) {
    const parsed = typeof doc === 'object' && doc !== null ? parsePolicyJson(policyDocumentToJson(doc as PolicyDocument)) : { ok: false as const, reason: 'not an object' };
    if (parsed.ok) out[name] = parsed.policy;
    else log.warn({ service: name, reason: parsed.reason }, 'dump file: admin policy ignored');
  }
  return out;
}

export interface PolicyKvWatchOptions {
  readonly endpoint: ConsulEndpoint;
  readonly waitMs: number;
  readonly minQueryIntervalMs: number;
  readonly holder: () => TableHolder | undefined;
  readonly logger: pino.Logger;
  /** the watch's way through the primary's connection budget; default: blocking outside any budget */
  readonly slot?: WatchSlot;
}

/** Follows balancer/policy/ until the signal aborts; resolves then. */
export function startPolicyKvWatch(opts: PolicyKvWatchOptions, signal: AbortSignal): Promise<void> {
  let lastWarnings = '';
  return watchKvPrefix({
    endpoint: opts.endpoint,
    prefix: POLICY_KV_PREFIX,
    waitMs: opts.waitMs,
    minQueryIntervalMs: opts.minQueryIntervalMs,
    slot: opts.slot,
    onChange: (entries) => {
      const warnings: string[] = [];
      const policies = policiesFromKv(entries, warnings);
      if (warnings.join('\n') !== lastWarnings) for (const w of warnings) opts.logger.warn({ warning: w }, 'policy warning');
      lastWarnings = warnings.join('\n');
      const changed = opts.holder()?.setKvPolicies(policies);
      opts.logger.info({ services: Object.keys(policies), changed }, 'consul kv policies');
    },
    onError: (err, consecutive) => {
      if (consecutive === 1 || consecutive % 10 === 0) opts.logger.warn({ err: err.message, consecutive }, 'consul kv policy watch failed, retrying');
    },
  }, signal).catch((err) => opts.logger.error({ err }, 'consul kv policy watch stopped'));
}
