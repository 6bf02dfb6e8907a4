// The script thread's side (see script-thread.ts): each script in its own vm context (script-source.ts:
// no require, process, timers, network, eval), its hooks called through function handles taken once
// at load. The thread has no budget of its own: the worker process stops it from outside (terminate)
// when a call runs over. A call after which this thread's heap grew by more than the memory budget
// fails, and that script's context (with whatever it kept) is built afresh.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import vm from 'node:vm';
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { loadInto, scriptContext } from './script-source.js';
import { CTL, type ThreadReply, type ThreadRequest } from './script-thread-protocol.js';

// Data crosses into the context as one \0-joined string and comes out as JSON made inside it, so no
// host object, getter or prototype is ever within reach of a script.
const HANDLES = `(function () {
  var split = function (a) { return a.split('\\u0000'); };
  globalThis.__req = function (a) {
    var p = split(a), headers = {}, query = {};
    for (var i = 5; i + 1 < p.length; i += 2) { var k = p[i]; headers[k] = k in headers ? headers[k] + ', ' + p[i + 1] : p[i + 1]; }
    var search = p[3];
    if (search.length > 1) search.slice(1).split('&').forEach(function (kv) {
      if (kv === '') return;
      var eq = kv.indexOf('='), k = eq < 0 ? kv : kv.slice(0, eq), v = eq < 0 ? '' : kv.slice(eq + 1);
      try { k = decodeURIComponent(k.replace(/\\+/g, ' ')); v = decodeURIComponent(v.replace(/\\+/g, ' ')); } catch (e) {}
      if (!(k in query)) query[k] = v;
    });
    var r = __onRequest({ method: p[0], host: p[1], path: p[2], search: search, query: query, clientAddress: p[4], headers: headers });
    return r === undefined || r === null ? '' : JSON.stringify(r);
  };
  globalThis.__res = function (a) {
    var p = split(a), headers = {};
    for (var i = 1; i + 1 < p.length; i += 2) { var k = p[i].toLowerCase(); headers[k] = k in headers ? headers[k] + ', ' + p[i + 1] : p[i + 1]; }
    var r = __onResponse({ status: Number(p[0]), headers: headers });
    return r === undefined || r === null ? '' : JSON.stringify(r);
  };
})()`;
const handlesScript = new vm.Script(HANDLES, { filename: 'script-host:handles' });

interface Loaded {
  readonly name: string;
  readonly source: string;
  readonly loadTimeoutMs: number;
  readonly memoryBudget: number;
  req: (a: string) => unknown;
  res: (a: string) => unknown;
}

function build(name: string, source: string, loadTimeoutMs: number): { hooks: number; req: (a: string) => unknown; res: (a: string) => unknown } {
  const context = scriptContext();
  const hooks = loadInto(context, name, source, loadTimeoutMs);
  handlesScript.runInContext(context, { timeout: loadTimeoutMs });
  return { hooks, req: context.__req as (a: string) => unknown, res: context.__res as (a: string) => unknown };
}

// A full collection after a context was dropped for its memory: without it the next call's heap
// figure is fooled (a collection during the call frees the old context's garbage and hides what the
// call allocated). gc is taken from a throw-away context with the flag on for that one context only
// (no script context ever sees it; the process's other threads create no contexts meanwhile).
setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;
setFlagsFromString('--no-expose-gc');
let collectAfterReply = false;

const { sab, port } = workerData as { sab: SharedArrayBuffer; port: MessagePort };
const ctl = new Int32Array(sab, 0, 8);
const started = new Float64Array(sab, 32, 1);
const scripts = new Map<string, Loaded>();

function handle(m: ThreadRequest): ThreadReply {
  if (m.op === 'load') {
    try {
      const b = build(m.name, m.source, m.loadTimeoutMs);
      scripts.set(m.key, { name: m.name, source: m.source, loadTimeoutMs: m.loadTimeoutMs, memoryBudget: m.memoryBudget, req: b.req, res: b.res });
      return { ok: true, hooks: b.hooks };
    } catch (err) {
      const e = err as { code?: string; message?: string; line?: number };
      return { ok: false, error: String(e?.message ?? err), code: e?.code, line: e?.line };
    }
  }
  if (m.op === 'unload') {
    scripts.delete(m.key);
    return { ok: true };
  }
  const s = scripts.get(m.key);
  if (s === undefined) return { ok: false, error: 'not loaded in the script thread', code: 'ERR_SCRIPT_UNKNOWN' };
  const before = getHeapStatistics().used_heap_size;
  let out: unknown;
  try {
    out = (m.hook === 0 ? s.req : s.res)(m.input);
  } catch (err) {
    return { ok: false, error: `threw: ${String((err as Error)?.message ?? err).slice(0, 300)}` };
  }
  const grown = getHeapStatistics().used_heap_size - before;
  if (grown > s.memoryBudget) {
    // whatever it allocated may still be referenced from its context: start that context afresh
    let disabled = false;
    try {
      const b = build(s.name, s.source, s.loadTimeoutMs);
      s.req = b.req;
      s.res = b.res;
    } catch {
      scripts.delete(m.key);
      disabled = true;
    }
    collectAfterReply = true;
    return { ok: false, error: `allocated ${Math.round(grown / 1048576)} MB (budget ${s.memoryBudget / 1048576} MB)`, disabled };
  }
  if (typeof out !== 'string') return { ok: false, error: 'returned something JSON cannot carry' };
  return { ok: true, out };
}

Atomics.store(ctl, CTL.ready, 1);
Atomics.notify(ctl, CTL.ready);
for (;;) {
  Atomics.wait(ctl, CTL.request, 0);
  Atomics.store(ctl, CTL.request, 0);
  const got = receiveMessageOnPort(port);
  if (got === undefined) continue;
  const m = got.message as ThreadRequest;
  if (m.op === 'call') started[0] = performance.timeOrigin + performance.now();
  let reply: ThreadReply;
  try {
    reply = handle(m);
  } catch (err) {
    reply = { ok: false, error: String((err as Error)?.message ?? err) };
  }
  port.postMessage(reply);
  Atomics.store(ctl, CTL.done, 1);
  Atomics.notify(ctl, CTL.done);
  // after the answer: the collection's time is no call's budget
  if (collectAfterReply) {
    collectAfterReply = false;
    collect();
  }
}
