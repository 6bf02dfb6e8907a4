// WebSocket / Upgrade pass-through: the handshake and frames cross the proxy untouched.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { connectWebSocket, startBackends, startProxy, startWebSocketEcho, upstreamSpec, type Backend, type RunningProxy, type WebSocketEchoBackend } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

for (const engine of ENGINES) describe(`balancer proxy: WebSocket pass-through [${engine}]`, () => {
  let echo: WebSocketEchoBackend;
  let dead: Backend;
  let proxy: RunningProxy;

  before(async () => {
    echo = await startWebSocketEcho();
    [dead] = await startBackends(1, 'dead');
    await dead.kill();
    proxy = await startProxy(engineOptions(engine));
    proxy.runtime.applyTable(tableFromUpstreams({
      // the dead server first in id order: the connect failure must move on to the echo server
      chat: upstreamSpec('chat', [echo.spec(), dead.spec()]),
      nobody: upstreamSpec('nobody', []),
    }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await echo.close();
  });

  it('echoes text frames through the proxy', async () => {
    for (let round = 0; round < 3; round++) {
      const ws = await connectWebSocket(proxy.port, 'chat', '/socket?room=1');
      try {
        ws.send('hello');
        assert.equal(await ws.receive(), 'echo:hello');
        const big = 'x'.repeat(70_000);
        ws.send(big);
        assert.equal(await ws.receive(), `echo:${big}`);
      } finally {
        ws.close();
      }
    }
    assert.equal(echo.upgrades, 3);
    assert.equal(echo.lastHeaders?.host, 'chat');
    assert.equal(echo.lastHeaders?.['x-forwarded-for'], '127.0.0.1');
    const deadStatus = proxy.runtime.status().find((u) => u.name === 'chat')?.servers.find((s) => s.id === dead.spec().id);
    assert.equal(deadStatus?.status, 'ejected', 'the refused connect was reported and retried elsewhere');
  });

  it('refuses an upgrade for an unknown host or an empty upstream', async () => {
    await assert.rejects(connectWebSocket(proxy.port, 'unknown'), /404/);
    await assert.rejects(connectWebSocket(proxy.port, 'nobody'), /502/);
  });
});
