// Request scripts, the upload side: a JavaScript module exporting `onRequest(req)` and/or
// `onResponse(res)` (see script-host.ts for what they get and may return). The source is checked
// here once, in the primary, before it enters the table: a syntax error is refused with its line,
// a top-level throw or over-budget top level too, and a module without a hook. Workers compile the
// same text again when the table arrives (a worker never trusts what it did not compile itself).
import { createHash } from 'node:crypto';
import vm from 'node:vm';
import type { ScriptSpec } from '../routing/types.js';

export const SCRIPT_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const MAX_SCRIPT_BYTES = 256 * 1024;
export const DEFAULT_SCRIPT_TIMEOUT_MS = 50;
export const MAX_SCRIPT_TIMEOUT_MS = 5_000;
export const DEFAULT_SCRIPT_MAX_FAILURES = 5;
/** Budget for running a script's top level once, at upload and at load: still a bound on a loop there,
 *  but wide enough that a busy machine descheduling us (the budget is wall time) never refuses a good script. */
export const SCRIPT_LOAD_BUDGET_MS = 1_000;
export const HOOKS = ['onRequest', 'onResponse'] as const;
export type HookName = (typeof HOOKS)[number];

export function scriptVersion(source: string): string {
  return createHash('sha256').update(source).digest('hex').slice(0, 12);
}

/**
 * The module as a classic script: `export` in front of a top-level declaration is dropped (the
 * declaration becomes a global of the script's own context) and `export default` becomes a
 * variable. Line numbers stay as written.
 */
export function moduleToScript(source: string): string {
  return source
    .replace(/(^|[;}])(\s*)export\s+default\s+/gm, '$1$2var __default = ')
    .replace(/(^|[;}])(\s*)export\s+(?=(?:async\s+)?function\b|const\b|let\b|var\b|class\b)/gm, '$1$2');
}

/** Evaluated once in the script's context after its source: which hooks it has, as context globals. */
export const HOOK_BINDING = `(function () {
  var d = typeof __default === 'object' && __default !== null ? __default : {};
  globalThis.__onRequest = typeof onRequest === 'function' ? onRequest : typeof d.onRequest === 'function' ? d.onRequest : undefined;
  globalThis.__onResponse = typeof onResponse === 'function' ? onResponse : typeof d.onResponse === 'function' ? d.onResponse : undefined;
  return (globalThis.__onRequest ? 1 : 0) | (globalThis.__onResponse ? 2 : 0);
})()`;

export class ScriptError extends Error {
  constructor(readonly code: 'ERR_SCRIPT_SYNTAX' | 'ERR_SCRIPT_LOAD' | 'ERR_SCRIPT_NO_HOOK' | 'ERR_SCRIPT_INVALID', message: string, readonly line?: number) {
    super(message);
    this.name = 'ScriptError';
  }
}

/** A context with nothing but the language: no require, process, timers, fetch; no eval / new Function. */
export function scriptContext(): vm.Context {
  // a null-prototype sandbox, so `this.constructor.constructor` is the context's own Function, which
  // cannot compile strings, and never the host's
  return vm.createContext(Object.create(null), {
    name: 'request-script',
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: 'afterEvaluate',
  });
}

function lineOf(err: unknown, filename: string): number | undefined {
  const stack = String((err as Error)?.stack ?? '');
  const m = new RegExp(`${filename.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+)`).exec(stack);
  return m ? Number(m[1]) : undefined;
}

/** Compile and evaluate the top level in `context`; returns the hook bits (1 onRequest, 2 onResponse). */
export function loadInto(context: vm.Context, name: string, source: string, timeoutMs: number): number {
  const filename = `script:${name}`;
  let script: vm.Script;
  try {
    script = new vm.Script(moduleToScript(source), { filename });
  } catch (err) {
    const line = lineOf(err, filename);
    throw new ScriptError('ERR_SCRIPT_SYNTAX', `script "${name}": ${(err as Error).message}${line === undefined ? '' : ` at line ${line}`}`, line);
  }
  try {
    script.runInContext(context, { timeout: timeoutMs });
    return new vm.Script(HOOK_BINDING).runInContext(context, { timeout: timeoutMs }) as number;
  } catch (err) {
    const line = lineOf(err, filename);
    throw new ScriptError('ERR_SCRIPT_LOAD', `script "${name}": top level failed: ${(err as Error)?.message ?? String(err)}${line === undefined ? '' : ` at line ${line}`}`, line);
  }
}

export interface ScriptUpload {
  readonly name: string;
  readonly source: string;
  readonly services: readonly string[];
  readonly timeoutMs?: number;
  readonly maxFailures?: number;
}

/** Validates an upload and returns the spec that goes into the table; ScriptError when refused. */
export function checkScript(upload: ScriptUpload, now: Date = new Date()): ScriptSpec {
  const { name, source } = upload;
  if (!new RegExp(SCRIPT_NAME_PATTERN).test(name)) throw new ScriptError('ERR_SCRIPT_INVALID', `script name "${name.slice(0, 80)}": expected ${SCRIPT_NAME_PATTERN}`);
  if (typeof source !== 'string' || source.trim() === '') throw new ScriptError('ERR_SCRIPT_INVALID', `script "${name}": empty source`);
  if (Buffer.byteLength(source) > MAX_SCRIPT_BYTES) throw new ScriptError('ERR_SCRIPT_INVALID', `script "${name}": larger than ${MAX_SCRIPT_BYTES} bytes`);
  const timeoutMs = upload.timeoutMs ?? DEFAULT_SCRIPT_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_SCRIPT_TIMEOUT_MS) throw new ScriptError('ERR_SCRIPT_INVALID', `script "${name}": timeout must be 1-${MAX_SCRIPT_TIMEOUT_MS} ms`);
  const maxFailures = upload.maxFailures ?? DEFAULT_SCRIPT_MAX_FAILURES;
  if (!Number.isInteger(maxFailures) || maxFailures < 1 || maxFailures > 1_000_000) throw new ScriptError('ERR_SCRIPT_INVALID', `script "${name}": maxFailures must be an integer >= 1`);
  const services = upload.services.length === 0 ? ['*'] : [...new Set(upload.services)].sort();
  for (const s of services) {
    if (s !== '*' && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s)) throw new ScriptError('ERR_SCRIPT_INVALID', `script "${name}": bad service name "${s.slice(0, 80)}"`);
  }
  const hooks = loadInto(scriptContext(), name, source, Math.max(timeoutMs, SCRIPT_LOAD_BUDGET_MS));
  if (hooks === 0) throw new ScriptError('ERR_SCRIPT_NO_HOOK', `script "${name}": exports neither onRequest nor onResponse`);
  return { name, source, version: scriptVersion(source), loadedAt: now.toISOString(), services, timeoutMs, maxFailures };
}

/** Scripts of a dump file's table, re-checked as if uploaded again (a bad entry is dropped, not fatal). */
export function scriptsFromDump(stored: unknown): ScriptSpec[] {
  if (!Array.isArray(stored)) return [];
  const out: ScriptSpec[] = [];
  for (const s of stored as Partial<ScriptSpec>[]) {
    try {
      if (typeof s?.name !== 'string' || typeof s.source !== 'string' || !Array.isArray(s.services)) continue;
      const spec = checkScript({ name: s.name, source: s.source, services: s.services, timeoutMs: s.timeoutMs, maxFailures: s.maxFailures });
      out.push({ ...spec, loadedAt: typeof s.loadedAt === 'string' ? s.loadedAt : spec.loadedAt, ...(s.origin === 'kv' ? { origin: 'kv' as const } : {}) });
    } catch {
      // dropped: the admin API shows what is loaded
    }
  }
  return out;
}
