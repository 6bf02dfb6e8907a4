// Request scripts through the real worker runtime: each hook of the example scripts, a throwing
// script (500, counted, disabled after N in a row), an infinite loop (over budget: 500, the worker
// keeps serving), a 100 MB allocation (500, the worker keeps serving), a syntax error refused with
// its line, and script swaps under load with no failed request. Admin upload end to end at the end.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { request } from 'undici';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { RouteTable, ScriptSpec } from '../../balancer/src/routing/types.js';
import { checkScript, MAX_SCRIPT_TIMEOUT_MS, ScriptError, scriptVersion } from '../../balancer/src/scripts/script-source.js';
import { withScripts } from '../../balancer/src/scripts/table-scripts.js';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { parseBalancerArgs } from '../../balancer/src/config.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { h2connect, h2request } from '../support/http2-client.js';

const example = (name: string) => readFileSync(new URL(`../../../examples/scripts/${name}`, import.meta.url), 'utf8');

describe('request scripts in the worker', () => {
  let backends: Backend[];
  let proxy: RunningProxy;
  let base: RouteTable;
  const apply = (scripts: ScriptSpec[]) => proxy.runtime.applyTable(withScripts(base, scripts));
  const script = (name: string, source: string, services = ['web'], extra: { timeoutMs?: number; maxFailures?: number } = {}) =>
    checkScript({ name, source, services, ...extra });

  before(async () => {
    backends = await startBackends(2);
    proxy = await startProxy();
    base = tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]), 'web-b': upstreamSpec('web-b', [backends[1].spec()]) }, []);
  });
  after(async () => {
    await proxy.runtime.close();
    for (const b of backends) await b.kill();
  });

  it('onRequest answers directly: refuse DELETE for one host', async () => {
    apply([script('refuse', example('refuse-delete.js').replace('shop.example', 'web'), ['*'])]);
    const refused = await proxy.fetch('web', '/x', { method: 'DELETE' });
    assert.equal(refused.status, 403);
    assert.equal(refused.text, 'DELETE is not allowed here\n');
    assert.equal((await proxy.fetch('web', '/x')).text, 'b0');
    assert.equal((await proxy.fetch('web-b', '/x', { method: 'DELETE' })).text, 'b1', 'another host is not refused');
  });

  it('onRequest adds request headers, onResponse response headers', async () => {
    apply([script('add-header', example('add-header.js'))]);
    const res = await proxy.fetch('web', '/headers');
    const seen = JSON.parse(res.text) as Record<string, string>;
    assert.equal(seen['x-request-script'], 'add-header');
    assert.equal(seen['x-client-address'], '127.0.0.1');
    assert.equal(res.headers['x-served-by'], 'balancer');
    assert.equal(res.headers['x-upstream-status'], '200');
    assert.equal((await proxy.fetch('web-b', '/x')).headers['x-served-by'], undefined, 'bound to web only');
  });

  it('onRequest rewrites a path prefix and picks another upstream by query parameter', async () => {
    apply([script('rewrite', example('rewrite-prefix.js')), script('ab', example('ab-by-query.js'))]);
    await proxy.fetch('web', '/old/a/b?x=1');
    assert.equal(backends[0].urls.at(-1), '/new/a/b?x=1');
    assert.equal((await proxy.fetch('web', '/item?variant=b')).text, 'b1');
    assert.equal((await proxy.fetch('web', '/item?variant=a')).text, 'b0');
  });

  it('a throwing script fails only its requests (500), is counted, and is disabled after N failures in a row', async () => {
    apply([script('thrower', 'export function onRequest(req) { if (req.path === "/boom") throw new Error("kaboom"); }', ['web'], { maxFailures: 3 })]);
    for (let i = 0; i < 3; i++) {
      const res = await proxy.fetch('web', '/boom');
      assert.equal(res.status, 500);
      assert.deepEqual(JSON.parse(res.text), { error: 'script_failed', script: 'thrower', version: checkScript({ name: 'thrower', source: 'export function onRequest(req) { if (req.path === "/boom") throw new Error("kaboom"); }', services: ['web'] }).version });
      assert.equal((await proxy.fetch('web-b', '/boom')).text, 'b1', 'other services unaffected');
    }
    const stats = proxy.runtime.scriptStats!();
    assert.equal(stats[0].errors, 3);
    assert.equal(stats[0].disabled, true);
    assert.match(stats[0].lastError ?? '', /kaboom/);
    assert.equal((await proxy.fetch('web', '/boom')).text, 'b0', 'disabled: requests pass unchanged');
  });

  it('an infinite loop is stopped by the budget: 500, and the worker keeps serving', async () => {
    apply([script('loop', 'export function onRequest(req) { if (req.path === "/loop") for (;;) {} }', ['web'], { timeoutMs: 20 })]);
    const started = Date.now();
    const res = await proxy.fetch('web', '/loop');
    assert.equal(res.status, 500);
    assert.ok(Date.now() - started < 3000, 'stopped near its budget');
    assert.equal((await proxy.fetch('web', '/fine')).text, 'b0');
    assert.match(proxy.runtime.scriptStats!()[0].lastError ?? '', /over its 20 ms budget/);
  });

  it('a 100 MB allocation fails the request, not the worker', async () => {
    const source = 'let kept = []; export function onRequest(req) { if (req.path === "/alloc") { const a = new Array(13 * 1024 * 1024).fill(0); kept.push(a); return { headers: { "x-len": String(a.length) } }; } }';
    // the time budget is not what this proves: the largest one, so that the 100 MB fill ends and the
    // memory check is what fails the call (filled with 0, not 1.5: the same 104 MB in half the CPU,
    // 0.6 s at load 7; with 1.5 and a 2 s budget it ran over under a competing CPU load)
    apply([script('alloc', source, ['web'], { timeoutMs: MAX_SCRIPT_TIMEOUT_MS, maxFailures: 100 })]);
    for (let i = 0; i < 3; i++) {
      const res = await proxy.fetch('web', '/alloc');
      assert.equal(res.status, 500, res.text);
    }
    assert.match(proxy.runtime.scriptStats!()[0].lastError ?? '', /allocated \d+ MB/);
    assert.equal((await proxy.fetch('web', '/fine')).text, 'b0');
  });

  it('a syntax error is refused at upload with its line', () => {
    assert.throws(() => checkScript({ name: 'bad', source: 'export function onRequest(req) {\n  const x = 1;\n  return {;\n}\n', services: ['*'] }),
      (err: unknown) => err instanceof ScriptError && err.code === 'ERR_SCRIPT_SYNTAX' && err.line === 3 && /line 3/.test(err.message));
    assert.throws(() => checkScript({ name: 'nohook', source: 'const x = 1;', services: ['*'] }), /neither onRequest nor onResponse/);
    assert.throws(() => checkScript({ name: 'escape', source: 'this.constructor.constructor("return process")(); export function onRequest() {}', services: ['*'] }), /Code generation from strings disallowed/);
  });

  it('swapping scripts under load fails no request', async () => {
    const versions = Array.from({ length: 12 }, (_, i) => script('swap', `export function onRequest() { return { headers: { 'x-gen': '${i}' } }; }\nexport function onResponse() { return { headers: { 'x-gen-back': '${i}' } }; }`));
    apply([versions[0]]);
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const loaders = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const res = await proxy.fetch('web', '/load');
        if (res.status === 200 && res.text === 'b0' && res.headers['x-gen-back'] !== undefined) ok++;
        else failures.push(`${res.status} ${res.text}`);
      }
    });
    for (const v of versions.slice(1)) {
      apply([v]);
      const target = ok + 20;
      const end = Date.now() + 5000;
      while (ok < target && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    }
    apply([]);
    const target = ok + 20;
    const end = Date.now() + 5000;
    while (ok < target && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    stop = true;
    await Promise.all(loaders);
    assert.deepEqual(failures.filter((f) => !f.startsWith('200 b0')), []);
    assert.ok(ok > 200, `requests served during the swaps: ${ok}`);
  });
});

// A script the worker cannot load (its top level throws there, or runs past the load budget, as
// under a CPU load the upload check did not see) must not vanish: its services answer 503 over
// HTTP/1.1 and HTTP/2, others are served. The table is built past checkScript, which refuses these
// at upload.
for (const engine of ENGINES) {
  describe(`a request script that will not load fails closed [${engine}]`, () => {
    let backends: Backend[];
    let proxy: RunningProxy;
    let base: RouteTable;
    before(async () => {
      backends = await startBackends(2);
      proxy = await startProxy({ ...engineOptions(engine), http2: { h2c: true } });
      base = tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]), 'web-b': upstreamSpec('web-b', [backends[1].spec()]) }, []);
    });
    after(async () => {
      await proxy.runtime.close();
      for (const b of backends) await b.kill();
    });

    for (const [why, top] of [['throws', 'throw new Error("not here");'], ['runs past the load budget', 'for (;;) {}']] as const) {
      it(`top level ${why} in the worker: 503 script_unavailable, not unscripted`, async () => {
        const good = checkScript({ name: `refuse-${why.length}`, source: example('refuse-delete.js').replace('shop.example', 'web'), services: ['web'] });
        const source = `${top}\n${good.source}`;
        const version = scriptVersion(source);
        proxy.runtime.applyTable(withScripts(base, [{ ...good, source, version }]));
        const expectRefused = (status: number, text: string, what: string) => {
          assert.equal(status, 503, `${what}: ${status} ${text}`);
          const body = JSON.parse(text) as { error: string; script: string; version: string; reason: string };
          assert.deepEqual({ ...body, reason: typeof body.reason }, { error: 'script_unavailable', script: good.name, version, reason: 'string' });
          assert.match(body.reason, /^not loaded: /);
        };
        for (const method of ['DELETE', 'GET']) {
          const res = await proxy.fetch('web', '/x', { method });
          expectRefused(res.status, res.text, method);
        }
        const session = await h2connect(`http://127.0.0.1:${proxy.port}`);
        try {
          const h2 = await h2request(session, { ':method': 'DELETE', ':path': '/x', ':authority': 'web' });
          expectRefused(h2.status, h2.text, 'h2c DELETE');
        } finally {
          session.close();
        }
        assert.equal((await proxy.fetch('web-b', '/x', { method: 'DELETE' })).text, 'b1', 'a service the script is not bound to is served');
        const stats = proxy.runtime.scriptStats!();
        assert.equal(stats.length, 1);
        assert.equal(stats[0].errors, 3, 'each refused request is counted');
        assert.equal(stats[0].calls, 0);
        assert.match(stats[0].lastError ?? '', /not loaded/);
      });
    }
  });
}

describe('request scripts through the admin API', () => {
  it('PUT lists and runs a script in every worker, refuses a syntax error with the line, DELETE removes it', async () => {
    const [b] = await startBackends(1, 'adm');
    const c = parseBalancerArgs(['--no-consul', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--log-level', 'warn'], {}, { cores: 2 });
    if (c.kind !== 'config') throw new Error('bad config');
    // the backend is stopped whatever happens: a start that failed (workers not ready in 30 s under a
    // competing CPU load) left it listening, and the file's process never exited
    let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
    try {
      const started = await startPrimary(c, pino({ level: 'silent' }));
      primary = started;
      const admin = `http://127.0.0.1:${started.admin.port}`;
      const up = await request(`${admin}/upstream/web`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `server 127.0.0.1:${b.port};` });
      assert.equal(up.statusCode, 200, await up.body.text());
      const put = await request(`${admin}/scripts/add-header?services=web`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: example('add-header.js') });
      assert.equal(put.statusCode, 200, await put.body.text());
      for (let i = 0; i < 6; i++) {
        const res = await request(`http://127.0.0.1:${started.proxy.port}/`, { headers: { host: 'web' } });
        assert.equal(res.headers['x-served-by'], 'balancer');
        await res.body.text();
      }
      const list = (await (await request(`${admin}/scripts`)).body.json()) as { scripts: { name: string; version: string; loadedAt: string; services: string[]; calls: number; errors: number }[] };
      assert.equal(list.scripts.length, 1);
      assert.deepEqual(list.scripts[0].services, ['web']);
      assert.match(list.scripts[0].version, /^[0-9a-f]{12}$/);
      assert.ok(!Number.isNaN(Date.parse(list.scripts[0].loadedAt)));
      assert.equal(list.scripts[0].calls, 12, 'onRequest + onResponse for 6 requests, summed over the workers');
      const bad = await request(`${admin}/scripts/broken`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'export function onRequest() {\n  return ]\n}' });
      assert.equal(bad.statusCode, 400);
      const why = (await bad.body.json()) as { error: string; line: number };
      assert.equal(why.error, 'ERR_SCRIPT_SYNTAX');
      assert.equal(why.line, 2);
      assert.equal((await request(`${admin}/scripts/add-header`, { method: 'DELETE' })).statusCode, 200);
      const res = await request(`http://127.0.0.1:${started.proxy.port}/`, { headers: { host: 'web' } });
      assert.equal(res.headers['x-served-by'], undefined);
      await res.body.text();
    } finally {
      await primary?.stop();
      await b.kill();
    }
  });
});
