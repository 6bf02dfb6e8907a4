// Table swaps keep keep-alive pools of servers that stay; removed servers finish in-flight
// requests before their pool closes; stopAccepting drains.
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await sleep(10);
  return cond();
}

for (const engine of ENGINES) describe(`balancer proxy: table swaps [${engine}]`, () => {
  let backends: Backend[];
  let proxy: RunningProxy;

  beforeEach(async () => {
    backends = await startBackends(2);
    proxy = await startProxy(engineOptions(engine));
  });
  afterEach(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('reuses the upstream keep-alive socket across a swap that keeps the server', async () => {
    const [b0, b1] = backends;
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b0.spec()]) }, []));
    assert.equal((await proxy.fetch('web')).text, 'b0');
    const swap = proxy.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', [b0.spec()]), other: upstreamSpec('other', [b1.spec()]),
    }, []));
    assert.equal(swap.changed, true);
    assert.equal((await proxy.fetch('web')).text, 'b0');
    assert.equal((await proxy.fetch('other')).text, 'b1');
    // a changed spec of the same upstream (weights) still keeps the server's pool
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b0.spec({ weight: 5 })], { algorithm: 'wrr' }) }, []));
    assert.equal((await proxy.fetch('web')).text, 'b0');
    assert.equal(b0.remotePorts.length, 3);
    assert.equal(new Set(b0.remotePorts).size, 1, `one upstream socket expected, saw ports ${b0.remotePorts.join(',')}`);
    const web = proxy.runtime.status().find((u) => u.name === 'web');
    assert.deepEqual(web?.servers[0].pool, { connected: 1, pending: 0, running: 0 });
  });

  it('keeps the round-robin position of an upstream whose spec did not change', async () => {
    const [b0, b1] = backends;
    const web = upstreamSpec('web', [b0.spec(), b1.spec()]);
    const first = tableFromUpstreams({ web }, []);
    // the table orders servers by id; round robin starts at the first
    const byId = new Map(backends.map((b) => [b.spec().id, b.id]));
    const [one, two] = first.upstreams.web.servers.map((s) => byId.get(s.id));
    proxy.runtime.applyTable(first);
    assert.equal((await proxy.fetch('web')).text, one);
    proxy.runtime.applyTable(tableFromUpstreams({ web, other: upstreamSpec('other', [b1.spec()]) }, []));
    assert.equal((await proxy.fetch('web')).text, two, 'the cursor moved on: the picker was kept');
    assert.equal((await proxy.fetch('web')).text, one);
    // a changed spec gets a fresh picker (cursor back at the start)
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b0.spec({ weight: 2 }), b1.spec({ weight: 2 })]) }, []));
    assert.equal((await proxy.fetch('web')).text, one);
  });

  it('lets a removed server finish its in-flight request, then closes its pool', async () => {
    const [b0, b1] = backends;
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b0.spec()]) }, []));
    const slow = proxy.fetch('web', '/sleep/400');
    assert.ok(await waitFor(() => b0.requests === 1, 2_000), 'slow request reached b0');
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b1.spec()]) }, []));
    assert.equal((await proxy.fetch('web')).text, 'b1', 'new requests go to the new server at once');
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(res.text, 'b0');
    assert.ok(await waitFor(() => b0.connections === 0, 2_000), 'the removed server\'s pool closed its sockets');
    assert.ok(b1.connections > 0, 'the kept server\'s socket stays open');
  });

  it('stopAccepting finishes in-flight requests with Connection: close and resolves', async () => {
    const [b0] = backends;
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b0.spec()]) }, []));
    const slow = proxy.fetch('web', '/sleep/300');
    assert.ok(await waitFor(() => b0.requests === 1, 2_000));
    const started = Date.now();
    const drained = proxy.runtime.stopAccepting();
    const res = await slow;
    assert.equal(res.status, 200);
    assert.equal(res.headers.connection, 'close');
    await drained;
    assert.ok(Date.now() - started < 3_000);
  });

  it('stopAccepting closes idle keep-alive client connections and refuses new ones', async () => {
    const [b0] = backends;
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b0.spec()]) }, []));
    const socket = net.connect(proxy.port, '127.0.0.1');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    const answered = new Promise<string>((resolve) => {
      let got = '';
      socket.on('data', (c: Buffer) => { got += c.toString(); if (got.endsWith('0\r\n\r\n')) resolve(got); });
    });
    socket.write('GET / HTTP/1.1\r\nHost: web\r\n\r\n');
    assert.match(await answered, /^HTTP\/1\.1 200[\s\S]*\r\nb0\r\n/);
    const started = Date.now();
    await proxy.runtime.stopAccepting();
    await closed;
    assert.ok(Date.now() - started < 1_000, 'the idle keep-alive connection was closed at once');
    await assert.rejects(proxy.fetch('web'), /ECONNREFUSED/);
  });
});
