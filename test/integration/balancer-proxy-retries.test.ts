// nginx proxy_next_upstream semantics: failed attempts move to another server for idempotent
// requests, passive ejection keeps traffic off a dead server, POST is not retried, timeouts and
// connect errors become 504/502 JSON when nothing else can be tried.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

for (const engine of ENGINES) describe(`balancer proxy: retries and passive health [${engine}]`, () => {
  let backends: Backend[] = [];
  let proxy: RunningProxy | undefined;

  afterEach(async () => {
    await proxy?.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('hides a backend killed mid-load from GETs, and passive ejection stops sending to it', async () => {
    backends = await startBackends(3);
    const p = await startProxy(engineOptions(engine));
    proxy = p;
    p.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', backends.map((b) => b.spec({ maxFails: 1, failTimeoutMs: 30_000 }))),
    }, []));
    const total = 600;
    const concurrency = 8;
    let sent = 0;
    let killed: Promise<void> | undefined;
    const failures: string[] = [];
    const seenAfterKill = new Map<string, number>();
    const worker = async (): Promise<void> => {
      while (sent < total) {
        const n = sent++;
        if (n === 150) killed = backends[2].kill();
        const res = await p.fetch('web');
        if (res.status !== 200) failures.push(`${res.status} ${res.text}`);
        else if (killed !== undefined) seenAfterKill.set(res.text, (seenAfterKill.get(res.text) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await killed;
    assert.deepEqual(failures, [], 'no client-visible failure');
    const dead = p.runtime.status()[0].servers.find((s) => s.id === backends[2].spec().id);
    assert.equal(dead?.status, 'ejected');
    // after the kill, b2 can only have answered requests already in flight; then nothing
    assert.ok((seenAfterKill.get('b2') ?? 0) <= concurrency, `b2 answered ${seenAfterKill.get('b2')} after its kill`);
    assert.ok((seenAfterKill.get('b0') ?? 0) > 100 && (seenAfterKill.get('b1') ?? 0) > 100);
  });

  it('retries GET on another server after a status in retry.onStatuses, but not POST', async () => {
    backends = await startBackends(2);
    backends[0].failStatus = 503;
    const p = await startProxy(engineOptions(engine));
    proxy = p;
    // maxFails 0: no passive ejection, so every round robin turn meets the failing server again
    p.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', backends.map((b) => b.spec({ maxFails: 0 }))) }, []));
    for (let i = 0; i < 6; i++) {
      const res = await p.fetch('web');
      assert.equal(res.status, 200);
      assert.equal(res.text, 'b1');
    }
    const before = backends[0].requests + backends[1].requests;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await p.fetch('web', '/', { method: 'POST', body: 'x' })).status);
    assert.equal(backends[0].requests + backends[1].requests - before, 6, 'one upstream attempt per POST');
    assert.ok(statuses.includes(503), 'the 503 is passed through to the POST client');
    assert.ok(statuses.includes(200));
  });

  it('retries POST too when the upstream says nonIdempotent', async () => {
    backends = await startBackends(2);
    backends[0].failStatus = 503;
    const p = await startProxy(engineOptions(engine));
    proxy = p;
    p.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', backends.map((b) => b.spec({ maxFails: 0 })), { retry: { tries: 2, timeoutMs: 0, onStatuses: [503], nonIdempotent: true } }),
    }, []));
    for (let i = 0; i < 4; i++) assert.equal((await p.fetch('web', '/', { method: 'POST' })).status, 200);
    // with a body, no: the body streams to the first server and cannot be replayed (nginx would
    // have buffered it; we never buffer whole bodies)
    const withBody: number[] = [];
    for (let i = 0; i < 4; i++) withBody.push((await p.fetch('web', '/', { method: 'POST', body: 'payload' })).status);
    assert.deepEqual([...new Set(withBody)].sort(), [200, 503]);
  });

  it('moves a POST whose connection was refused to another server: nothing was sent, so it is safe', async () => {
    backends = await startBackends(2);
    const dead = backends[0].spec({ maxFails: 0 });
    await backends[0].kill();
    backends = [backends[1]];
    const p = await startProxy(engineOptions(engine));
    proxy = p;
    p.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [dead, backends[0].spec({ maxFails: 0 })]) }, []));
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await p.fetch('web', '/', { method: 'POST', body: 'payload' })).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200]);
    assert.equal(backends[0].requests, 6);
  });

  it('answers 502 JSON when the only server refuses connections, 504 JSON on a headers timeout', async () => {
    backends = await startBackends(2);
    const dead = backends[0].spec();
    await backends[0].kill();
    backends = [backends[1]];
    const p = await startProxy({ ...engineOptions(engine), timeouts: { connectMs: 500, headersMs: 200, idleMs: 1_000, clientKeepAliveMs: 1_000 } });
    proxy = p;
    p.runtime.applyTable(tableFromUpstreams({
      gone: upstreamSpec('gone', [dead]), slow: upstreamSpec('slow', [backends[0].spec()]),
    }, []));
    const refused = await p.fetch('gone');
    assert.equal(refused.status, 502);
    assert.deepEqual(JSON.parse(refused.text), { error: 'upstream_unreachable', upstream: 'gone', cause: 'ECONNREFUSED' });
    const slow = await p.fetch('slow', '/sleep/1000');
    assert.equal(slow.status, 504);
    assert.deepEqual(JSON.parse(slow.text), { error: 'upstream_timeout', upstream: 'slow', cause: 'UND_ERR_HEADERS_TIMEOUT' });
  });

  it('bounds all tries together by retry.timeoutMs', async () => {
    backends = await startBackends(3);
    for (const b of backends) b.failStatus = 503;
    const p = await startProxy(engineOptions(engine));
    proxy = p;
    p.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', backends.map((b) => b.spec({ maxFails: 0 })), { retry: { tries: 3, timeoutMs: 0, onStatuses: [503], nonIdempotent: false } }),
    }, []));
    const res = await p.fetch('web');
    assert.equal(res.status, 503, 'the last answer is passed through when every try failed');
    assert.equal(backends.reduce((n, b) => n + b.requests, 0), 3);
    for (const b of backends) b.delayMs = 150;
    p.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', backends.map((b) => b.spec({ maxFails: 0 })), { retry: { tries: 3, timeoutMs: 100, onStatuses: [503], nonIdempotent: false } }),
    }, []));
    const before = backends.reduce((n, b) => n + b.requests, 0);
    assert.equal((await p.fetch('web')).status, 503);
    assert.equal(backends.reduce((n, b) => n + b.requests, 0) - before, 1, 'no second try after the retry window closed');
  });
});
