// Request scripts, the worker side: each script compiled once per version into its own vm context
// (script-source.ts: no require, process, timers, network, eval) in the worker's script thread
// (script-thread.ts), its hooks called per request, synchronously, with a hard time budget: a call
// over it has its thread terminated (a loop or a runaway builtin is stopped; the process is not).
//
// onRequest(req) gets {method, host, path, query (object, first value per name), search ('?...' or
// ''), headers (lower-case names), clientAddress} and may return nothing (no change) or
//   {respond: {status, headers?, body?}}           answer directly, the upstream is not asked
//   {path?: '/new?x=1', headers?: {name: 'v' | null}, upstream?: 'name'}   rewrite and/or re-route
// onResponse(res) gets {status, headers} and may return {headers: {name: 'v' | null}}.
// Data crosses the boundary as strings only (in: one \0-joined string; out: JSON made inside the
// context under the same budget), so no host object, getter or prototype is ever within reach.
//
// A throw, a result that is not one of the above, an over-budget call, or a call after which the
// heap grew by more than MEMORY_BUDGET_BYTES fails that request (500, logged with name and version,
// counted). The memory check cannot stop an allocation, only its aftermath: the context (and all
// it holds) is dropped and rebuilt, so a script keeping 100 MB per call cannot pile it up; the
// thread's heap cap stops one that allocates past it within a call (the thread dies). After
// maxFailures failures in a row the script is disabled in this worker until a new version arrives.
//
// A script the worker cannot load (the upload check passed in the primary, but here its top level
// threw or ran past the load budget, or the thread did not start in time, or a restarted thread
// lost its context) fails closed: every request to a service it is bound to gets 503
// script_unavailable, counted as an error of that script, logged once per version. A request
// tries the load again after a backoff (1 s doubling to 60 s). Passing such requests on unscripted
// would silently drop what the script enforces (an access rule, a refusal).
import type { RouteTable, ScriptSpec } from '../routing/types.js';
import { SCRIPT_LOAD_BUDGET_MS, ScriptError } from './script-source.js';
import { ScriptLoadError, type ScriptThread } from './script-thread.js';

export const MEMORY_BUDGET_BYTES = 64 * 1024 * 1024;
/** first and longest wait before a request tries loading a script that would not load */
const LOAD_RETRY_FIRST_MS = 1_000;
const LOAD_RETRY_MAX_MS = 60_000;
const MAX_BODY_BYTES = 1024 * 1024;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const BAD_VALUE = /[\r\n\0]/;
const UPSTREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface ScriptStats {
  readonly name: string;
  readonly version: string;
  readonly calls: number;
  readonly errors: number;
  readonly disabled: boolean;
  readonly lastError?: string;
}

export type HeaderEdits = Readonly<Record<string, string | null>>;

/** What the exchange does with a request after its scripts ran. */
export type RequestVerdict =
  | { readonly kind: 'respond'; readonly status: number; readonly headers: string[]; readonly body: Buffer }
  | { readonly kind: 'rewrite'; readonly url?: string; readonly headers?: HeaderEdits; readonly upstream?: string }
  | { readonly kind: 'fail'; readonly script: string; readonly version: string }
  | { readonly kind: 'unavailable'; readonly script: string; readonly version: string; readonly reason: string };

export interface ScriptFailure {
  readonly script: string;
  readonly version: string;
  readonly hook: 'onRequest' | 'onResponse';
  readonly error: string;
}

class HookFailure extends Error {}
/** the script is not loaded in the script thread: its requests are refused, not run unscripted */
class ScriptUnavailable extends Error {}

export class LoadedScript {
  calls = 0;
  errors = 0;
  consecutive = 0;
  disabled = false;
  lastError: string | undefined;
  /** its context's name in the script thread */
  readonly key: string;
  hasRequest = false;
  hasResponse = false;
  /** why it is not loaded in the script thread (undefined: loaded) */
  loadError: Error | undefined;
  #retryAt = 0;
  #retryMs = LOAD_RETRY_FIRST_MS;

  constructor(readonly spec: ScriptSpec, private readonly onFailure: (f: ScriptFailure) => void, private readonly thread: ScriptThread,
    private readonly now: () => number = Date.now) {
    this.key = thread.newKey(`${spec.name}@${spec.version}`);
    this.#load();
  }

  #load(): void {
    const spec = this.spec;
    try {
      const hooks = this.thread.load(this.key, { name: spec.name, source: spec.source, loadTimeoutMs: Math.max(spec.timeoutMs, SCRIPT_LOAD_BUDGET_MS), memoryBudget: MEMORY_BUDGET_BYTES });
      this.hasRequest = (hooks & 1) !== 0;
      this.hasResponse = (hooks & 2) !== 0;
      this.loadError = undefined;
      this.#retryMs = LOAD_RETRY_FIRST_MS;
    } catch (err) {
      this.loadError = err instanceof ScriptLoadError && err.code?.startsWith('ERR_SCRIPT_') ? new ScriptError(err.code as ScriptError['code'], err.message, err.line) : err as Error;
      this.#retryAt = this.now() + this.#retryMs;
      this.#retryMs = Math.min(this.#retryMs * 2, LOAD_RETRY_MAX_MS);
    }
  }

  /** Loaded, or loaded now by a retry whose backoff is over; false: refuse its requests (refused()). */
  available(): boolean {
    if (this.loadError === undefined) return true;
    if (this.now() >= this.#retryAt) this.#load();
    return this.loadError === undefined;
  }

  /** A request refused because the script is not loaded: counted as one of its errors, not as a failure in a row. */
  refused(): string {
    const reason = `not loaded: ${this.loadError?.message ?? 'unknown'}`;
    this.errors++;
    this.lastError = reason;
    return reason;
  }

  /** One hook call under the budget; the JSON text it returned ('' = nothing), or a HookFailure. */
  call(hook: 'onRequest' | 'onResponse', input: string, reloaded = false): string {
    if (!this.available()) throw new ScriptUnavailable(this.refused());
    this.calls++;
    const r = this.thread.call(this.key, hook === 'onRequest' ? 0 : 1, input, this.spec.timeoutMs);
    if (!r.ok && r.code === 'ERR_SCRIPT_UNKNOWN' && !reloaded) {
      // a restarted script thread could not compile it again: load it (now), or refuse
      this.calls--;
      this.loadError = new Error(r.error);
      this.#retryAt = 0;
      return this.call(hook, input, true);
    }
    if (!r.ok) {
      if (r.disabled === true) this.disabled = true;
      throw this.fail(hook, r.error);
    }
    this.consecutive = 0;
    return r.out;
  }

  /** Its context in the script thread is no longer needed (a later table dropped it). */
  release(): void {
    this.thread.unload(this.key);
  }

  /** A result the script returned that is not what the hook may return. */
  invalid(hook: 'onRequest' | 'onResponse', why: string): HookFailure {
    return this.fail(hook, `returned an invalid result: ${why}`);
  }

  private fail(hook: 'onRequest' | 'onResponse', error: string): HookFailure {
    this.errors++;
    this.consecutive++;
    this.lastError = `${hook} ${error}`;
    if (this.consecutive >= this.spec.maxFailures) this.disabled = true;
    this.onFailure({ script: this.spec.name, version: this.spec.version, hook, error });
    return new HookFailure(error);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function headerEdits(v: unknown): HeaderEdits | string {
  if (!isObject(v)) return 'headers must be an object';
  const out: Record<string, string | null> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!HEADER_NAME.test(k)) return `bad header name "${k.slice(0, 60)}"`;
    if (val === null) out[k.toLowerCase()] = null;
    else if (typeof val === 'string' && !BAD_VALUE.test(val) && val.length <= 8192) out[k.toLowerCase()] = val;
    else return `header "${k}": value must be a string without CR, LF or NUL, or null`;
  }
  return out;
}

/** Flat header list with edits applied: a name set to a value replaces every field of that name, null removes them. */
export function applyHeaderEdits(raw: readonly string[], edits: HeaderEdits): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!Object.hasOwn(edits, raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  }
  for (const [k, v] of Object.entries(edits)) if (v !== null) out.push(k, v);
  return out;
}

export interface RequestFacts {
  readonly method: string;
  readonly host: string;
  /** origin-form path + query */
  readonly url: string;
  readonly clientAddress: string;
  readonly rawHeaders: readonly string[];
}

function requestInput(f: RequestFacts, url: string, raw: readonly string[]): string {
  const q = url.indexOf('?');
  let s = `${f.method}\u0000${f.host}\u0000${q < 0 ? url : url.slice(0, q)}\u0000${q < 0 ? '' : url.slice(q)}\u0000${f.clientAddress}`;
  for (let i = 0; i + 1 < raw.length; i += 2) s += `\u0000${raw[i].toLowerCase()}\u0000${raw[i + 1]}`;
  return s;
}

/** The scripts of one table, compiled, with the chain each service runs. */
export class CompiledScripts {
  private readonly byService = new Map<string, LoadedScript[]>();
  private readonly everywhere: LoadedScript[];

  constructor(readonly scripts: readonly LoadedScript[], table: RouteTable) {
    this.everywhere = scripts.filter((s) => s.spec.services.includes('*'));
    for (const name of Object.keys(table.upstreams)) {
      const chain = scripts.filter((s) => s.spec.services.includes('*') || s.spec.services.includes(name));
      if (chain.length > 0) this.byService.set(name, chain);
    }
  }

  /** the chain for a request routed to `upstream` (undefined: no route); undefined when none applies */
  chain(upstream: string | undefined): readonly LoadedScript[] | undefined {
    const c = upstream === undefined ? this.everywhere : this.byService.get(upstream);
    return c === undefined || c.length === 0 ? undefined : c;
  }

  stats(): ScriptStats[] {
    return this.scripts.map((s) => ({
      name: s.spec.name, version: s.spec.version, calls: s.calls, errors: s.errors, disabled: s.disabled,
      ...(s.lastError === undefined ? {} : { lastError: s.lastError }),
    }));
  }
}

/** Runs the onRequest hooks of `chain` in order; undefined = pass the request on unchanged. */
export function runRequestHooks(chain: readonly LoadedScript[], facts: RequestFacts): RequestVerdict | undefined {
  let url = facts.url;
  let raw = facts.rawHeaders;
  let edits: Record<string, string | null> | undefined;
  let upstream: string | undefined;
  for (const s of chain) {
    // before the hook test: a script that would not load has no known hooks, and fails closed
    if (!s.available()) return { kind: 'unavailable', script: s.spec.name, version: s.spec.version, reason: s.refused() };
    if (!s.hasRequest || s.disabled) continue;
    let text: string;
    try {
      text = s.call('onRequest', requestInput(facts, url, raw));
    } catch (err) {
      if (err instanceof ScriptUnavailable) return { kind: 'unavailable', script: s.spec.name, version: s.spec.version, reason: err.message };
      return { kind: 'fail', script: s.spec.name, version: s.spec.version };
    }
    if (text === '') continue;
    const r = JSON.parse(text) as unknown;
    const bad = (why: string): RequestVerdict => { s.invalid('onRequest', why); return { kind: 'fail', script: s.spec.name, version: s.spec.version }; };
    if (!isObject(r)) return bad('expected an object');
    if (r.respond !== undefined) {
      const a = r.respond;
      if (!isObject(a) || !Number.isInteger(a.status) || (a.status as number) < 200 || (a.status as number) > 599) return bad('respond.status must be an integer 200-599');
      const body = a.body === undefined ? '' : a.body;
      if (typeof body !== 'string' || Buffer.byteLength(body) > MAX_BODY_BYTES) return bad('respond.body must be a string up to 1 MB');
      const h = a.headers === undefined ? {} : headerEdits(a.headers);
      if (typeof h === 'string') return bad(`respond.${h}`);
      const headers: string[] = [];
      for (const [k, v] of Object.entries(h)) if (v !== null && k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') headers.push(k, v);
      return { kind: 'respond', status: a.status as number, headers, body: Buffer.from(body) };
    }
    if (r.path !== undefined) {
      if (typeof r.path !== 'string' || r.path.charCodeAt(0) !== 47 || r.path.length > 8192 || /[\s\0]/.test(r.path)) return bad('path must start with / and hold no spaces');
      url = r.path;
    }
    if (r.headers !== undefined) {
      const h = headerEdits(r.headers);
      if (typeof h === 'string') return bad(h);
      edits = { ...edits, ...h };
      raw = applyHeaderEdits(raw, h);
    }
    if (r.upstream !== undefined) {
      if (typeof r.upstream !== 'string' || !UPSTREAM_NAME.test(r.upstream)) return bad('upstream must be an upstream name');
      upstream = r.upstream;
    }
  }
  if (url === facts.url && edits === undefined && upstream === undefined) return undefined;
  return { kind: 'rewrite', ...(url !== facts.url ? { url } : {}), ...(edits ? { headers: edits } : {}), ...(upstream ? { upstream } : {}) };
}

/**
 * Runs the onResponse hooks; returns the (possibly edited) flat header list, or a failure naming
 * the script.
 */
export function runResponseHooks(chain: readonly LoadedScript[], status: number, headers: string[]): string[] | { script: string; version: string } {
  let out = headers;
  for (const s of chain) {
    // not loaded since the request went through (a restarted thread): its edits cannot be made
    if (!s.available()) { s.refused(); return { script: s.spec.name, version: s.spec.version }; }
    if (!s.hasResponse || s.disabled) continue;
    let input = String(status);
    for (let i = 0; i + 1 < out.length; i += 2) input += `\u0000${out[i]}\u0000${out[i + 1]}`;
    let text: string;
    try {
      text = s.call('onResponse', input);
    } catch {
      return { script: s.spec.name, version: s.spec.version };
    }
    if (text === '') continue;
    const r = JSON.parse(text) as unknown;
    if (!isObject(r)) { s.invalid('onResponse', 'expected an object'); return { script: s.spec.name, version: s.spec.version }; }
    if (r.headers !== undefined) {
      const h = headerEdits(r.headers);
      if (typeof h === 'string') { s.invalid('onResponse', h); return { script: s.spec.name, version: s.spec.version }; }
      out = applyHeaderEdits(out, h);
    }
  }
  return out;
}

/** Compile the scripts of `table`, reusing `prev`'s loaded scripts (and their counters) for unchanged versions. */
/** In-flight requests of a replaced table may still run its onResponse hooks for this long. */
export const RELEASE_GRACE_MS = 60_000;

/**
 * Compile the scripts of `table` in `thread`, reusing `prev`'s loaded scripts (and their counters)
 * for unchanged versions; the contexts of the ones dropped are released after RELEASE_GRACE_MS.
 */
export function compileScripts(table: RouteTable, prev: CompiledScripts | undefined, onFailure: (f: ScriptFailure) => void,
  onLoadError: (spec: ScriptSpec, err: Error) => void, thread: ScriptThread): CompiledScripts | undefined {
  const specs = table.scripts ?? [];
  const loaded: LoadedScript[] = [];
  for (const spec of specs) {
    const kept = prev?.scripts.find((s) => s.spec.name === spec.name && s.spec.version === spec.version && s.spec.timeoutMs === spec.timeoutMs && s.spec.maxFailures === spec.maxFailures && s.spec.services.join() === spec.services.join());
    if (kept !== undefined) { loaded.push(kept); continue; }
    // kept even when it would not load: its services are refused (503) until a retry loads it
    const s = new LoadedScript(spec, onFailure, thread);
    if (s.loadError !== undefined) onLoadError(spec, s.loadError);
    loaded.push(s);
  }
  const dropped = prev?.scripts.filter((s) => !loaded.includes(s)) ?? [];
  if (dropped.length > 0) setTimeout(() => { for (const s of dropped) s.release(); }, RELEASE_GRACE_MS).unref();
  return loaded.length === 0 ? undefined : new CompiledScripts(loaded, table);
}
