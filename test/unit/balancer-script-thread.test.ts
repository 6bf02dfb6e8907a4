// The script thread: hooks called synchronously in another thread; a call over its budget stops
// that thread (never this one) and the next call runs in a fresh thread with every script loaded
// again; a throwing hook, an unknown key, a load refused with its line; a dropped context is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScriptLoadError, ScriptThread } from '../../balancer/src/scripts/script-thread.js';

const spec = (name: string, source: string) => ({ name, source, loadTimeoutMs: 1000, memoryBudget: 64 * 1024 * 1024 });
const input = (path: string) => `GET\u0000web\u0000${path}\u0000\u0000127.0.0.1\u0000x-a\u00001`;

test('calls, a throw, a loop over budget (thread replaced, scripts reloaded), unload, a refused load', async () => {
  const t = new ScriptThread();
  try {
    const a = t.newKey('a');
    assert.equal(t.load(a, spec('a', 'export function onRequest(req) { if (req.path === "/boom") throw new Error("kaboom"); if (req.path === "/loop") for (;;) {} return { headers: { "x-seen": req.headers["x-a"] + req.path } }; }\nexport function onResponse(res) {}')), 3);
    assert.deepEqual(t.call(a, 0, input('/p'), 50), { ok: true, out: '{"headers":{"x-seen":"1/p"}}' });
    assert.deepEqual(t.call(a, 1, '200\u0000content-type\u0000text/plain', 50), { ok: true, out: '' });
    const boom = t.call(a, 0, input('/boom'), 50);
    assert.equal(boom.ok, false);
    assert.match(!boom.ok ? boom.error : '', /threw: kaboom/);
    assert.equal(t.restarts, 0);

    const cpu = process.cpuUsage();
    const loop = t.call(a, 0, input('/loop'), 30);
    assert.deepEqual(loop, { ok: false, error: 'over its 30 ms budget', overBudget: true });
    const used = process.cpuUsage(cpu);
    assert.ok(used.user + used.system < 3_000_000, `the loop was stopped (CPU ${used.user + used.system} µs)`);
    // the next call: a fresh thread with the script loaded again, same state as a fresh load
    assert.deepEqual(t.call(a, 0, input('/q'), 50), { ok: true, out: '{"headers":{"x-seen":"1/q"}}' });
    assert.equal(t.restarts, 1);

    t.unload(a);
    const gone = t.call(a, 0, input('/p'), 50);
    assert.equal(gone.ok, false);
    assert.match(!gone.ok ? gone.error : '', /not loaded/);

    assert.throws(() => t.load(t.newKey('bad'), spec('bad', 'export function onRequest() {\n  return ]\n}')),
      (e: unknown) => e instanceof ScriptLoadError && e.code === 'ERR_SCRIPT_SYNTAX' && e.line === 2);
  } finally {
    await t.close();
  }
  assert.throws(() => t.call('x', 0, input('/'), 10), /closed/);
});
