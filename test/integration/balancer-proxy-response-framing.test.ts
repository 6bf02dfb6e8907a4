// Response framing from a raw upstream: a repeated identical Content-Length is collapsed into one
// (RFC 9110 section 8.6; strict clients such as llhttp refuse a repeated one), differing ones are a 502.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { withTimeout } from '../support/raw-client.js';

/** path -> the upstream's whole answer */
const ANSWERS: Record<string, string> = {
  '/same': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\ncontent-length: 2\r\n\r\nok',
  '/differ': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!',
  '/hints': 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
};

async function rawUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let got = '';
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const path = got.split(' ')[1];
      got = got.slice(end + 4);
      socket.write(ANSWERS[path] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n', 'latin1');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

function rawGet(port: number, path: string, version = '1.1'): Promise<string> {
  return withTimeout(`answer to ${path}`, new Promise<string>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('connect', () => socket.write(`GET ${path} HTTP/${version}\r\nHost: raw\r\nConnection: close\r\n\r\n`));
    socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  }), 10_000);
}

for (const engine of ENGINES) describe(`balancer proxy: response Content-Length repeats [${engine}]`, () => {
  let upstream: { port: number; close(): Promise<void> };
  let proxy: RunningProxy;

  before(async () => {
    upstream = await rawUpstream();
    proxy = await startProxy(engineOptions(engine));
    const server = { id: `127.0.0.1:${upstream.port}`, host: '127.0.0.1', port: upstream.port, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false };
    proxy.runtime.applyTable(tableFromUpstreams({ raw: upstreamSpec('raw', [server]) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await upstream.close();
  });

  it('a repeated identical Content-Length reaches the client once (undici: refused, 502)', async () => {
    const got = await rawGet(proxy.port, '/same');
    if (engine === 'undici') {
      // undici's llhttp refuses the repeat before we see it: RFC 9110 section 8.6 allows rejecting too
      assert.match(got, /^HTTP\/1\.1 502 /, got);
      return;
    }
    const head = got.slice(0, got.indexOf('\r\n\r\n'));
    assert.match(got, /^HTTP\/1\.1 200 /, got);
    assert.equal(head.split('\r\n').filter((l) => /^content-length:/i.test(l)).length, 1, head);
    assert.ok(got.endsWith('\r\n\r\nok'), got);
  });

  it('differing Content-Lengths are a 502', async () => {
    assert.match(await rawGet(proxy.port, '/differ'), /^HTTP\/1\.1 502 /);
  });

  it('103 Early Hints are relayed to an HTTP/1.1 client, not to an HTTP/1.0 one (RFC 9110 section 15.2)', async () => {
    const got = await rawGet(proxy.port, '/hints');
    assert.match(got, /^HTTP\/1\.1 103 Early Hints\r\nLink: <\/a\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 /, got);
    assert.ok(got.endsWith('\r\n\r\nok'), got);
    const old = await rawGet(proxy.port, '/hints', '1.0');
    assert.match(old, /^HTTP\/1\.1 200 /, old);
  });
});
