// What a client may not do through the proxy, on every engine: pass a prefix route with dot segments,
// forge forwarding headers, or have an any-host route capture a Host that names a service.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { RouteTable } from '../../balancer/src/routing/types.js';
import { connectWebSocket, startBackends, startProxy, startWebSocketEcho, upstreamSpec, type Backend, type RunningProxy, type WebSocketEchoBackend } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

/** One request as raw bytes on a fresh connection; the whole answer (the proxy closes after it). */
function rawRequest(port: number, text: string, timeoutMs = 5_000): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no complete answer within ${timeoutMs} ms to ${JSON.stringify(text)}`)); }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks).toString('latin1');
      const end = all.indexOf('\r\n\r\n');
      const head = end < 0 ? all : all.slice(0, end);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, body: end < 0 ? '' : all.slice(end + 4) });
    });
    socket.write(text);
  });
}

const get = (path: string, host: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`;

for (const engine of ENGINES) describe(`balancer proxy: request safety [${engine}]`, () => {
  let pub: Backend;
  let admin: Backend;
  let web: Backend;
  let catchall: Backend;
  let echo: WebSocketEchoBackend;
  let proxy: RunningProxy;
  let trusting: RunningProxy;

  const table = (): RouteTable => tableFromUpstreams({
    pub: upstreamSpec('pub', [pub.spec()]),
    internal: upstreamSpec('internal', [admin.spec()]),
    web: upstreamSpec('web', [web.spec()]),
    catchall: upstreamSpec('catchall', [catchall.spec()]),
    chat: upstreamSpec('chat', [echo.spec()]),
  }, [
    // site.example exposes /public only; internal.example is another host's business
    { host: 'site.example', pathPrefix: '/public', upstream: 'pub' },
    { host: 'internal.example', pathPrefix: '/admin', upstream: 'internal' },
    // one urlprefix-/ tag: a fallback for hosts nothing else claims
    { host: '', pathPrefix: '/', upstream: 'catchall' },
  ]);

  before(async () => {
    [pub, admin, web, catchall] = await startBackends(4);
    echo = await startWebSocketEcho();
    proxy = await startProxy(engineOptions(engine));
    proxy.runtime.applyTable(table());
    trusting = await startProxy({ ...engineOptions(engine), trustForwarded: ['127.0.0.0/8', '::1'] });
    trusting.runtime.applyTable(table());
  });
  after(async () => {
    await proxy.runtime.close();
    await trusting.runtime.close();
    await Promise.all([pub, admin, web, catchall].map((b) => b.kill()));
    await echo.close();
  });

  it('routes on the normalized path and forwards that path: dot segments cannot pass a prefix route', async () => {
    const cases: { path: string; status: number; reaches?: Backend; forwarded?: string; reason?: string }[] = [
      { path: '/public/a/./b/../c?x=1', status: 200, reaches: pub, forwarded: '/public/a/c?x=1' },
      { path: '/public/%7Euser/%41', status: 200, reaches: pub, forwarded: '/public/~user/A' },
      { path: '/public/a%2fb', status: 200, reaches: pub, forwarded: '/public/a%2Fb' },
      // out of /public: no route of site.example matches, the fallback gets it with the clean path
      { path: '/public/../admin', status: 200, reaches: catchall, forwarded: '/admin' },
      { path: '/public/%2e%2e/admin?y', status: 200, reaches: catchall, forwarded: '/admin?y' },
      { path: '/public/.%2E/.%2e/admin', status: 200, reaches: catchall, forwarded: '/admin' },
      // meaning depends on the backend: refused
      { path: '/public/..%2fadmin', status: 400, reason: 'ambiguous_dot_segment' },
      { path: '/public/..;/admin', status: 400, reason: 'ambiguous_dot_segment' },
      { path: '/public/%2e%2e%5cadmin', status: 400, reason: 'ambiguous_dot_segment' },
      { path: '/public/%zz', status: 400, reason: 'bad_percent_encoding' },
      { path: '/public/a%00', status: 400, reason: 'encoded_nul' },
    ];
    for (const c of cases) {
      const before = [pub, admin, web, catchall].map((b) => b.urls.length);
      const res = await rawRequest(proxy.port, get(c.path, 'site.example'));
      assert.equal(res.status, c.status, `${c.path}: ${res.head}\n${res.body}`);
      const reached = [pub, admin, web, catchall].filter((b, i) => b.urls.length > before[i]);
      if (c.reaches === undefined) {
        assert.deepEqual(reached.map((b) => b.id), [], `${c.path} must reach no backend`);
        assert.deepEqual(JSON.parse(res.body), { error: 'bad_path', reason: c.reason }, c.path);
      } else {
        assert.deepEqual(reached.map((b) => b.id), [c.reaches.id], c.path);
        assert.equal(c.reaches.urls.at(-1), c.forwarded, c.path);
      }
    }
  });

  it('refuses an ambiguous path on an Upgrade request too', async () => {
    await assert.rejects(connectWebSocket(proxy.port, 'chat', '/ws/..%2f..%2fadmin'), /400/);
    const ws = await connectWebSocket(proxy.port, 'chat', '/ws/x/../room');
    ws.close();
    assert.equal(echo.upgrades, 1);
  });

  it('replaces Forwarded, X-Real-IP and X-Forwarded-* sent by an untrusted client', async () => {
    const forged = 'X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6;proto=https\r\n'
      + 'X-Forwarded-Proto: https\r\nX-Forwarded-Host: internal.example\r\nX-Forwarded-Port: 443\r\nX_Forwarded_For: 7.7.7.7\r\n';
    const res = await rawRequest(proxy.port, get('/headers', 'web', forged));
    assert.equal(res.status, 200, res.head);
    const seen = web.lastHeaders ?? {};
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'web');
    assert.equal(seen['x-forwarded-port'], String(proxy.port), 'the port the client connected to, not the forged 443');
    for (const name of ['x-real-ip', 'forwarded', 'x_forwarded_for']) assert.equal(seen[name], undefined, name);

    // the same through a WebSocket upgrade
    const ws = await new Promise<void>((resolve, reject) => {
      const socket = net.connect(proxy.port, '127.0.0.1');
      let got = '';
      socket.on('data', (c: Buffer) => { got += c.toString('latin1'); if (got.includes('\r\n\r\n')) { socket.destroy(); resolve(); } });
      socket.on('error', reject);
      socket.write(`GET /ws HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${forged}\r\n`);
    });
    void ws;
    assert.equal(echo.lastHeaders?.['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.lastHeaders?.['x-real-ip'], undefined);
    assert.equal(echo.lastHeaders?.forwarded, undefined);
  });

  it('keeps the forwarding headers of a client in --trust-forwarded, appending to X-Forwarded-For', async () => {
    const res = await rawRequest(trusting.port, get('/headers', 'web', 'X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\n'));
    assert.equal(res.status, 200, res.head);
    const seen = web.lastHeaders ?? {};
    assert.equal(seen['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
    assert.equal(seen['x-real-ip'], '6.6.6.6');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen.forwarded, 'for=6.6.6.6');
  });

  it('a Host naming a service wins over an any-host urlprefix-/ route', async () => {
    const cases: [host: string, path: string, backend: () => Backend][] = [
      ['web', '/', () => web],
      ['WEB:8080', '/x', () => web],
      ['internal.example', '/admin/x', () => admin],
      ['internal.example', '/other', () => catchall], // no route of that host matches the path
      ['nobody.example', '/', () => catchall],
    ];
    for (const [host, path, backend] of cases) {
      const res = await proxy.fetch(host, path);
      assert.equal(res.status, 200, `${host}${path}`);
      assert.equal(res.text, backend().id, `${host}${path}`);
    }
  });
});
