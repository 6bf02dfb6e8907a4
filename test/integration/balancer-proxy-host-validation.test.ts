// Host validation end to end (RFC 9112 section 3.2, RFC 3986 sections 3.2.2-3.2.3, RFC 9110 section
// 4.2.4): a Host (or absolute-form authority) that is not `uri-host [":" port]` gets a 400 and never
// reaches a backend; what the backend sees as Host and X-Forwarded-Host is the value we routed on.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, startWebSocketEcho, upstreamSpec, type Backend, type RunningProxy, type WebSocketEchoBackend } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { withTimeout } from '../support/raw-client.js';

/** Send one raw request and read the answer until the proxy closes (each request asks for that, or is refused). */
function rawExchange(port: number, request: string): Promise<{ status: number; body: string; text: string }> {
  const done = new Promise<{ status: number; body: string; text: string }>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('connect', () => socket.write(request, 'latin1'));
    socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0);
      const at = got.indexOf('\r\n\r\n');
      resolve({ status, body: at < 0 ? '' : got.slice(at + 4), text: got });
    });
  });
  return withTimeout(`answer to ${JSON.stringify(request.slice(0, 80))}`, done, 10_000);
}

/** Hosts that must be refused (the routes below would send each of them to "smug" if read loosely). */
const BAD_HOSTS: readonly string[] = [
  'smug:80@evil', 'smug@evil', 'smug:evil', 'smug:80, evil', 'smug,evil', 'smug:80:80', 'smug:99999', 'smug:0',
  'smug;evil', 'sm%75g', '[::1]smug', '.smug', 'smug..', 'smug\u00e4',
];

/** [Host sent, Host and X-Forwarded-Host the backend must see] */
const FORWARDED: readonly (readonly [string, string])[] = [
  ['smug', 'smug'],
  ['SMUG', 'smug'],
  ['Smug:8080', 'smug:8080'],
  ['smug:08080', 'smug:8080'],
  ['smug.', 'smug'],
  ['smug:', 'smug'],
];

for (const engine of ENGINES) describe(`balancer proxy: Host validation [${engine}]`, () => {
  let backends: Backend[];
  let ws: WebSocketEchoBackend;
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(2);
    ws = await startWebSocketEcho();
    proxy = await startProxy(engineOptions(engine));
    proxy.runtime.applyTable(tableFromUpstreams({
      smug: upstreamSpec('smug', [backends[0].spec()]),
      evil: upstreamSpec('evil', [backends[1].spec()]),
      chat: upstreamSpec('chat', [ws.spec()]),
    }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
    await ws.close();
  });

  it('answers 400 bad_host to a Host that is not uri-host [":" port], and routes none of them', async () => {
    const before0 = backends[0].requests;
    const before1 = backends[1].requests;
    const wrong: string[] = [];
    for (const host of BAD_HOSTS) {
      const res = await rawExchange(proxy.port, `GET /headers HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      // a byte our codec refuses in any header value (non-ASCII is fine there) would be a plain 400
      const body = res.body === '' ? undefined : (JSON.parse(res.body) as { error?: string });
      if (res.status !== 400 || body?.error !== 'bad_host') wrong.push(`${JSON.stringify(host)}: ${res.status} ${res.body}`);
    }
    assert.deepEqual(wrong, []);
    assert.equal(backends[0].requests, before0, 'a refused Host reached smug');
    assert.equal(backends[1].requests, before1, 'a refused Host reached evil');
  });

  it('forwards as Host and X-Forwarded-Host the value it routed on', async () => {
    for (const [sent, seen] of FORWARDED) {
      const res = await rawExchange(proxy.port, `GET /headers HTTP/1.1\r\nHost: ${sent}\r\nConnection: close\r\n\r\n`);
      assert.equal(res.status, 200, `${sent}: ${res.text}`);
      const headers = JSON.parse(res.body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, '')) as Record<string, string>;
      assert.equal(headers.host, seen, `Host for ${JSON.stringify(sent)}`);
      assert.equal(headers['x-forwarded-host'], seen, `X-Forwarded-Host for ${JSON.stringify(sent)}`);
    }
  });

  it('reads the absolute-form authority by the same rules', async () => {
    const ok = await rawExchange(proxy.port, 'GET http://SMUG:8080/headers HTTP/1.1\r\nHost: evil\r\nConnection: close\r\n\r\n');
    assert.equal(ok.status, 200, ok.text);
    const headers = JSON.parse(ok.body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, '')) as Record<string, string>;
    assert.equal(headers.host, 'smug:8080');
    assert.equal(headers['x-forwarded-host'], 'smug:8080');
    const before1 = backends[1].requests;
    const before0 = backends[0].requests;
    for (const target of ['http://smug:80@evil/headers', 'http://evil@smug/headers', 'http://smug:evil/headers']) {
      const res = await rawExchange(proxy.port, `GET ${target} HTTP/1.1\r\nHost: smug\r\nConnection: close\r\n\r\n`);
      // the native codec refuses userinfo in the request-target already (bad_request); node's parser lets it through to bad_host
      assert.equal(res.status, 400, `${target}: ${res.text}`);
    }
    // an invalid Host is a 400 even when the absolute-form authority is fine (RFC 9112 section 3.2)
    const res = await rawExchange(proxy.port, 'GET http://smug/headers HTTP/1.1\r\nHost: smug:80@evil\r\nConnection: close\r\n\r\n');
    assert.equal(res.status, 400, res.text);
    assert.equal(backends[0].requests, before0);
    assert.equal(backends[1].requests, before1);
  });

  it('refuses an upgrade with a bad Host the same way', async () => {
    const res = await rawExchange(proxy.port, 'GET /chat HTTP/1.1\r\nHost: chat:80@evil\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    assert.equal(res.status, 400, res.text);
    assert.equal(JSON.parse(res.body).error, 'bad_host');
    assert.equal(ws.upgrades, 0);
  });
});
