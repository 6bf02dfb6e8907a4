// The primary's edges of request scripts in Consul KV (--scripts-kv): the watch that loads every
// script under the prefix (blocking queries through the primary's shared Consul budget) into the
// table holder, and the writes the admin API makes on upload and delete. Every write is bounded by
// a timeout and the primary's signal.
import type pino from 'pino';
import { request } from 'undici';
import { withDeadline } from '../../../common/backoff.js';
import type { ConsulEndpoint } from '../discovery/blocking-query.js';
import type { WatchSlot } from '../discovery/watch-slot.js';
import { watchKvPrefix } from '../policy/kv-prefix-watcher.js';
import type { TableHolder } from '../routing/table-holder.js';
import type { ScriptSpec } from '../routing/types.js';
import { scriptKvValue, scriptsFromKv, type KvScriptCache } from './kv-scripts.js';

/** Where the admin API persists scripts besides the dump file. */
export interface ScriptStore {
  /** e.g. "consul kv balancer/scripts/" (for messages) */
  readonly where: string;
  put(spec: ScriptSpec): Promise<void>;
  delete(name: string): Promise<void>;
}

export const SCRIPT_KV_WRITE_TIMEOUT_MS = 5_000;

function kvPath(key: string): string {
  return `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/** `read`: runs each write inside the primary's connection budget (its read share); default: at once */
export function consulScriptStore(endpoint: ConsulEndpoint, prefix: string, signal: AbortSignal, timeoutMs = SCRIPT_KV_WRITE_TIMEOUT_MS, read?: WatchSlot['read']): ScriptStore {
  const inBudget = read ?? ((_s: AbortSignal, fn: () => Promise<void>) => fn());
  const call = (method: 'PUT' | 'DELETE', name: string, body?: string) => withDeadline(signal, timeoutMs, (s) => inBudget(s, async () => {
    const headers: Record<string, string> = endpoint.token ? { 'x-consul-token': endpoint.token } : {};
    const res = await request(new URL(kvPath(`${prefix}${name}`), endpoint.baseUrl), { method, headers, body, signal: s, dispatcher: endpoint.dispatcher });
    const text = (await res.body.text()).slice(0, 300);
    if (res.statusCode !== 200 || text.trim() !== 'true') throw new Error(`${method} ${kvPath(`${prefix}${name}`)} -> ${res.statusCode}: ${text}`);
  }));
  return {
    where: `consul kv ${prefix}`,
    put: (spec) => call('PUT', spec.name, scriptKvValue(spec)),
    delete: (name) => call('DELETE', name),
  };
}

export interface ScriptKvWatchOptions {
  readonly endpoint: ConsulEndpoint;
  readonly prefix: string;
  readonly waitMs: number;
  readonly minQueryIntervalMs: number;
  readonly holder: () => TableHolder | undefined;
  readonly logger: pino.Logger;
  /** the watch's way through the primary's connection budget; default: blocking outside any budget */
  readonly slot?: WatchSlot;
}

/** Follows the scripts prefix until the signal aborts; resolves then. */
export function startScriptKvWatch(opts: ScriptKvWatchOptions, signal: AbortSignal): Promise<void> {
  let cache: KvScriptCache = new Map();
  let lastWarnings = '';
  let lastShadowed = '';
  return watchKvPrefix({
    endpoint: opts.endpoint,
    prefix: opts.prefix,
    waitMs: opts.waitMs,
    minQueryIntervalMs: opts.minQueryIntervalMs,
    slot: opts.slot,
    onChange: (entries) => {
      const r = scriptsFromKv(opts.prefix, entries, cache);
      cache = r.cache;
      // a bad script is a warning for that key only, logged when the set of warnings changes
      if (r.warnings.join('\n') !== lastWarnings) for (const w of r.warnings) opts.logger.warn({ warning: w }, 'request script warning');
      lastWarnings = r.warnings.join('\n');
      const holder = opts.holder();
      if (holder === undefined) return;
      const changed = holder.setKvScripts(r.scripts);
      const admin = new Set(holder.adminScripts().map((s) => s.name));
      const shadowed = r.scripts.filter((s) => admin.has(s.name)).map((s) => s.name);
      if (shadowed.join() !== lastShadowed && shadowed.length > 0) opts.logger.info({ scripts: shadowed }, 'consul kv scripts shadowed by admin uploads of the same name (admin wins until DELETE)');
      lastShadowed = shadowed.join();
      opts.logger.info({ scripts: r.scripts.map((s) => `${s.name}@${s.version}`), changed }, 'consul kv scripts');
    },
    onError: (err, consecutive) => {
      if (consecutive === 1 || consecutive % 10 === 0) opts.logger.warn({ err: err.message, consecutive }, 'consul kv script watch failed, retrying');
    },
  }, signal).catch((err) => opts.logger.error({ err }, 'consul kv script watch stopped'));
}
