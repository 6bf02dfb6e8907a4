// Upgrade requests on every engine: bytes are tunnelled only after the server's 101; any other answer
// is relayed as a normal response on a closing connection (a keep-alive server that ignores Upgrade
// never sees what the client sends next); only allowed protocols pass; idle tunnels close; a drain
// waits for open tunnels.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { connectWebSocket, encodeTextFrame, decodeFrame, startProxy, startWebSocketEcho, upstreamSpec, websocketAccept, type RunningProxy, type WebSocketEchoBackend } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { rawClient, until, withTimeout } from '../support/raw-client.js';

/** A keep-alive HTTP/1.1 server that ignores Upgrade: answers every request head "200 ok", records the heads. */
async function startIgnoringServer(): Promise<{ port: number; heads: string[]; close(): Promise<void> }> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        heads.push(buf.slice(0, end));
        buf = buf.slice(end + 4);
        s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    heads,
    close: () => new Promise<void>((r) => { server.close(() => r()); for (const s of sockets) s.destroy(); }),
  };
}

const UPGRADE = (host: string, protocol = 'websocket'): string =>
  `GET /chat HTTP/1.1\r\nHost: ${host}\r\nUpgrade: ${protocol}\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const FORGED = 'GET /admin HTTP/1.1\r\nHost: internal.example\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n';

for (const engine of ENGINES) describe(`balancer proxy: upgrade safety [${engine}]`, () => {
  let ignoring: Awaited<ReturnType<typeof startIgnoringServer>>;
  let echo: WebSocketEchoBackend;
  let proxy: RunningProxy;
  let h2cProxy: RunningProxy;

  before(async () => {
    ignoring = await startIgnoringServer();
    echo = await startWebSocketEcho();
    const table = tableFromUpstreams({
      plain: upstreamSpec('plain', [{ id: `127.0.0.1:${ignoring.port}`, host: '127.0.0.1', port: ignoring.port, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false }]),
      chat: upstreamSpec('chat', [echo.spec()]),
    }, []);
    proxy = await startProxy({ ...engineOptions(engine), timeouts: { connectMs: 1_000, headersMs: 3_000, idleMs: 5_000, clientKeepAliveMs: 5_000, tunnelIdleMs: 600 } });
    proxy.runtime.applyTable(table);
    h2cProxy = await startProxy({ ...engineOptions(engine), upgradeProtocols: ['websocket', 'h2c'] });
    h2cProxy.runtime.applyTable(table);
  });
  after(async () => {
    await proxy.runtime.close();
    await h2cProxy.runtime.close();
    await ignoring.close();
    await echo.close();
  });

  it('a server that ignores Upgrade: its answer is relayed and closes; a smuggled follow-up never reaches it', { timeout: 10_000 }, async () => {
    const before = ignoring.heads.length;
    // the follow-up rides in the same packet as the upgrade head (early data)
    const early = rawClient(proxy.port);
    early.socket.write(UPGRADE('plain') + FORGED);
    await withTimeout('connection closed after the relayed answer', early.closed, 5_000);
    assert.match(early.text(), /^HTTP\/1\.1 200 OK\r\n/, early.text());
    assert.match(early.text(), /\r\nconnection: close\r\n/i);
    assert.ok(early.text().endsWith('\r\n\r\nok'), early.text());
    // ... or after the answer arrived, on the same connection
    const late = rawClient(proxy.port);
    late.socket.write(UPGRADE('plain'));
    await until('the relayed answer', () => late.text().endsWith('ok'), 5_000);
    if (!late.socket.destroyed) late.socket.write(FORGED);
    await withTimeout('second connection closed', late.closed, 5_000);
    const heads = ignoring.heads.slice(before);
    assert.equal(heads.length, 2, `the server saw exactly the two upgrade requests:\n${heads.join('\n---\n')}`);
    for (const h of heads) {
      assert.match(h, /^GET \/chat HTTP\/1\.1\r\n/);
      assert.doesNotMatch(h, /internal\.example|10\.0\.0\.1/);
    }
  });

  it('bytes sent with the upgrade head reach the server only after its 101', async () => {
    const c = rawClient(proxy.port);
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    c.socket.write(Buffer.concat([Buffer.from(UPGRADE('chat'), 'latin1'), encodeTextFrame('early', true)]));
    await until('101 and the echo of the early frame', () => c.text().includes('\r\n\r\n') && decodeFrame(Buffer.from(c.text().slice(c.text().indexOf('\r\n\r\n') + 4), 'latin1')) !== undefined, 5_000);
    const text = c.text();
    assert.match(text, /^HTTP\/1\.1 101 /);
    assert.ok(text.includes(websocketAccept(key)));
    assert.equal(decodeFrame(Buffer.from(text.slice(text.indexOf('\r\n\r\n') + 4), 'latin1'))?.text, 'echo:early');
    c.socket.destroy();
  });

  it('only Upgrade: websocket passes unless --upgrade-protocols allows more', async () => {
    const before = ignoring.heads.length;
    const refused = rawClient(proxy.port);
    refused.socket.write(UPGRADE('plain', 'h2c'));
    await withTimeout('refusal', refused.closed, 5_000);
    assert.match(refused.text(), /^HTTP\/1\.1 400 /, refused.text());
    assert.ok(refused.text().includes('"error":"upgrade_not_allowed"'), refused.text());
    assert.equal(ignoring.heads.length, before, 'a refused upgrade reaches no server');
    const allowed = rawClient(h2cProxy.port);
    allowed.socket.write(UPGRADE('plain', 'h2c'));
    await withTimeout('relayed answer', allowed.closed, 5_000);
    assert.match(allowed.text(), /^HTTP\/1\.1 200 OK/, allowed.text());
    assert.equal(ignoring.heads.length, before + 1);
  });

  it('an idle tunnel is closed after --tunnel-idle-timeout', { timeout: 10_000 }, async () => {
    const c = rawClient(proxy.port);
    c.socket.write(UPGRADE('chat'));
    await until('101', () => c.text().includes('\r\n\r\n'), 5_000);
    assert.match(c.text(), /^HTTP\/1\.1 101 /);
    c.socket.write(encodeTextFrame('ping', true));
    await until('echo', () => c.text().includes('echo:ping'), 5_000);
    const t0 = Date.now();
    await withTimeout('idle tunnel closed by the proxy', c.closed, 5_000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 400, `closed after ${waited} ms, before the 600 ms idle limit`);
    await until('server side of the tunnel closed', () => echo.openSockets === 0, 3_000);
  });

  it('a drain waits for open tunnels', { timeout: 15_000 }, async () => {
    const draining = await startProxy(engineOptions(engine));
    draining.runtime.applyTable(tableFromUpstreams({ chat: upstreamSpec('chat', [echo.spec()]) }, []));
    const ws = await connectWebSocket(draining.port, 'chat');
    let drained = false;
    const drain = draining.runtime.stopAccepting().then(() => { drained = true; });
    try {
      // the tunnel keeps working while the worker drains, and the drain does not end under it
      for (let i = 0; i < 3; i++) {
        ws.send(`during drain ${i}`);
        assert.equal(await ws.receive(), `echo:during drain ${i}`);
      }
      await assert.rejects(until('drain end', () => drained, 1_000), /timed out/);
      ws.close();
      await withTimeout('drain after the tunnel closed', drain, 5_000);
    } finally {
      ws.close();
      await draining.runtime.close();
    }
  });
});
