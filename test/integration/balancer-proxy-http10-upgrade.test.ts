// RFC 9110 section 7.8: a server MUST ignore Upgrade in an HTTP/1.0 request. Before, both engines
// forwarded it as an HTTP/1.1 upgrade, relayed the 101 and opened a tunnel; now it is a plain request
// (the WebSocket backend answers a plain request 426) and no tunnel opens.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startProxy, startWebSocketEcho, upstreamSpec, type RunningProxy, type WebSocketEchoBackend } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { rawClient, until, withTimeout } from '../support/raw-client.js';

function rawExchange(port: number, request: string): Promise<string> {
  return withTimeout('answer and close', new Promise<string>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('connect', () => socket.write(request, 'latin1'));
    socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  }), 10_000);
}

const UPGRADE_10 = 'GET /chat HTTP/1.0\r\nHost: chat\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

for (const engine of ENGINES) describe(`balancer proxy: Upgrade in HTTP/1.0 is ignored [${engine}]`, () => {
  let ws: WebSocketEchoBackend;
  let proxy: RunningProxy;

  before(async () => {
    ws = await startWebSocketEcho();
    proxy = await startProxy(engineOptions(engine));
    proxy.runtime.applyTable(tableFromUpstreams({ chat: upstreamSpec('chat', [ws.spec()]) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await ws.close();
  });

  it('serves it as a plain request: the backend answer, no 101, no tunnel', async () => {
    const got = await rawExchange(proxy.port, UPGRADE_10);
    assert.match(got, /^HTTP\/1\.1 426 /, got);
    assert.equal(ws.upgrades, 0, 'the backend saw an upgrade');
  });

  it('an HTTP/1.1 upgrade still opens the tunnel', async () => {
    const upgrades = ws.upgrades;
    const client = rawClient(proxy.port);
    client.socket.write(UPGRADE_10.replace('HTTP/1.0', 'HTTP/1.1'), 'latin1');
    await until('the 101', () => client.text().startsWith('HTTP/1.1 101 '), 10_000);
    assert.equal(ws.upgrades, upgrades + 1);
    client.socket.destroy();
  });
});
