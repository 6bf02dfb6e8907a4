// Bodies stream both ways: a 1 GB upload passes with bounded memory; a client that goes away
// aborts its upstream request.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

const GB = 1024 * 1024 * 1024;

/** `total` bytes in 64 KiB chunks of one reused buffer: generating the body costs no memory. */
function generatedBody(total: number): Readable {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let left = total;
  return new Readable({
    read() {
      if (left <= 0) { this.push(null); return; }
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

for (const engine of ENGINES) describe(`balancer proxy: streaming [${engine}]`, () => {
  let backends: Backend[];
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(1);
    proxy = await startProxy({ ...engineOptions(engine), timeouts: { connectMs: 1_000, headersMs: 60_000, idleMs: 10_000, clientKeepAliveMs: 5_000 } });
    proxy.runtime.applyTable(tableFromUpstreams({ files: upstreamSpec('files', [backends[0].spec()]) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('streams a 1 GB upload with bounded RSS growth', { timeout: 120_000 }, async () => {
    global.gc?.();
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage.rss()); }, 50);
    const started = Date.now();
    try {
      const res = await request(`http://127.0.0.1:${proxy.port}/upload`, {
        method: 'PUT', headers: { host: 'files', 'content-length': String(GB) }, body: generatedBody(GB),
        headersTimeout: 120_000, bodyTimeout: 120_000,
      });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(await res.body.json(), { id: 'b0', bytes: GB });
    } finally {
      clearInterval(sampler);
    }
    const growthMb = (rssPeak - rssBefore) / 1024 / 1024;
    console.log(`1 GB upload: ${((Date.now() - started) / 1000).toFixed(1)} s, RSS growth ${growthMb.toFixed(0)} MB`);
    assert.ok(growthMb < 200, `RSS grew ${growthMb.toFixed(0)} MB`);
  });

  it('streams a chunked upload (no content-length) too', async () => {
    const res = await request(`http://127.0.0.1:${proxy.port}/upload`, {
      method: 'POST', headers: { host: 'files' }, body: generatedBody(5 * 1024 * 1024 + 17),
    });
    assert.deepEqual(await res.body.json(), { id: 'b0', bytes: 5 * 1024 * 1024 + 17 });
  });

  it('aborts the upstream request when the client goes away', async () => {
    const b0 = backends[0];
    const abortedBefore = b0.aborted;
    const requestsBefore = b0.requests;
    const socket = net.connect(proxy.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write('GET /sleep/3000 HTTP/1.1\r\nHost: files\r\n\r\n');
    const deadline = Date.now() + 2_000;
    while (b0.requests === requestsBefore && Date.now() < deadline) await sleep(10);
    assert.equal(b0.requests, requestsBefore + 1, 'request reached the backend');
    socket.destroy();
    const abortDeadline = Date.now() + 1_000;
    while (b0.aborted === abortedBefore && Date.now() < abortDeadline) await sleep(10);
    assert.equal(b0.aborted, abortedBefore + 1, 'backend saw its client (the proxy) go away');
    const status = proxy.runtime.status()[0].servers[0];
    assert.equal(status.status, 'ok', 'a client leaving is not the server\'s fault');
    assert.equal(status.inflight, 0);
  });

  it('cuts the client connection when the upstream body stalls past the idle timeout', async () => {
    const stalling = await startProxy({ ...engineOptions(engine), timeouts: { connectMs: 1_000, headersMs: 1_000, idleMs: 200, clientKeepAliveMs: 1_000 } });
    try {
      stalling.runtime.applyTable(tableFromUpstreams({ files: upstreamSpec('files', [backends[0].spec()]) }, []));
      const res = await request(`http://127.0.0.1:${stalling.port}/stall`, { headers: { host: 'files' }, bodyTimeout: 5_000 });
      assert.equal(res.statusCode, 200);
      const started = Date.now();
      await assert.rejects(res.body.text());
      assert.ok(Date.now() - started < 2_000, 'cut by the proxy\'s idle timeout, not the client\'s');
      const server = stalling.runtime.status()[0].servers[0];
      assert.match(String(server.lastError), /UND_ERR_BODY_TIMEOUT/);
    } finally {
      await stalling.runtime.close();
    }
  });
});
