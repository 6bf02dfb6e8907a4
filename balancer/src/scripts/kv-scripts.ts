// Request scripts kept in Consul KV (--scripts-kv): one key per script, `<prefix><name>`, its value
// either the JSON document the admin API writes ({source, services?, timeoutMs?, maxFailures?}) or
// the bare module text (bound to every service, default budget), so an operator can
// `consul kv put balancer/scripts/deny-delete @deny-delete.js`. Every script is checked as an
// upload is; a bad one is a warning for that key only (a syntax error names its line).
import type { ScriptSpec } from '../routing/types.js';
import { checkScript, ScriptError, type ScriptUpload } from './script-source.js';

export const DEFAULT_SCRIPTS_KV_PREFIX = 'balancer/scripts/';

/** What the admin API writes to `<prefix><name>` for an uploaded script. */
export function scriptKvValue(spec: ScriptSpec): string {
  return JSON.stringify({ source: spec.source, services: spec.services, timeoutMs: spec.timeoutMs, maxFailures: spec.maxFailures });
}

/** A KV value as an upload (or the reason it is not one). */
export function uploadFromKvValue(name: string, value: string): ScriptUpload | string {
  const text = value.trimStart();
  if (!text.startsWith('{')) return { name, source: value, services: ['*'] };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // an object literal at the top of a module is not JSON: take it as the source
    return { name, source: value, services: ['*'] };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'expected a JSON object or the module text';
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!['source', 'services', 'timeoutMs', 'maxFailures'].includes(k)) return `unknown field "${k}"`;
  if (typeof d.source !== 'string') return '"source" must be the module text';
  if (d.services !== undefined && (!Array.isArray(d.services) || d.services.some((s) => typeof s !== 'string'))) return '"services" must be an array of service names';
  if (d.timeoutMs !== undefined && typeof d.timeoutMs !== 'number') return '"timeoutMs" must be a number';
  if (d.maxFailures !== undefined && typeof d.maxFailures !== 'number') return '"maxFailures" must be a number';
  return { name, source: d.source, services: (d.services as string[] | undefined) ?? ['*'], timeoutMs: d.timeoutMs as number | undefined, maxFailures: d.maxFailures as number | undefined };
}

/** A checked script per raw value: unchanged keys are not compiled again and keep their load time. */
export type KvScriptCache = ReadonlyMap<string, { readonly raw: string; readonly spec: ScriptSpec }>;

export interface KvScriptsResult {
  /** sorted by name (the order they run in, after the admin API's scripts) */
  readonly scripts: readonly ScriptSpec[];
  readonly cache: KvScriptCache;
  readonly warnings: readonly string[];
}

/** The scripts of a whole KV prefix (keys relative to it); bad entries left out with a warning each. */
export function scriptsFromKv(prefix: string, entries: Readonly<Record<string, string>>, previous: KvScriptCache = new Map(), now: Date = new Date()): KvScriptsResult {
  const scripts: ScriptSpec[] = [];
  const cache = new Map<string, { raw: string; spec: ScriptSpec }>();
  const warnings: string[] = [];
  for (const key of Object.keys(entries).sort()) {
    const raw = entries[key];
    const kept = previous.get(key);
    if (kept !== undefined && kept.raw === raw) {
      scripts.push(kept.spec);
      cache.set(key, kept);
      continue;
    }
    if (key.includes('/')) {
      warnings.push(`consul kv ${prefix}${key}: ignored, expected ${prefix}<script name>`);
      continue;
    }
    const upload = uploadFromKvValue(key, raw);
    if (typeof upload === 'string') {
      warnings.push(`consul kv ${prefix}${key}: script ignored: ${upload}`);
      continue;
    }
    try {
      const spec: ScriptSpec = { ...checkScript(upload, now), origin: 'kv' };
      scripts.push(spec);
      cache.set(key, { raw, spec });
    } catch (err) {
      if (!(err instanceof ScriptError)) throw err;
      warnings.push(`consul kv ${prefix}${key}: script ignored: ${err.message}`);
    }
  }
  return { scripts, cache, warnings };
}

/** The scripts that run: the admin API's in their order, then KV's whose name the admin API does not use (admin wins). */
export function effectiveScripts(admin: readonly ScriptSpec[], kv: readonly ScriptSpec[]): { scripts: readonly ScriptSpec[]; shadowed: readonly string[] } {
  const names = new Set(admin.map((s) => s.name));
  const shadowed = kv.filter((s) => names.has(s.name)).map((s) => s.name);
  return { scripts: shadowed.length === kv.length && kv.length === 0 ? admin : [...admin, ...kv.filter((s) => !names.has(s.name))], shadowed };
}
