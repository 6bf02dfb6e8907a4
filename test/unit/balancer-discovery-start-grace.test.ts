// The catalog watcher's first snapshot waits for every service's health answer, but not forever: a
// service whose query keeps failing (an agent refusing connections beyond http_max_conns_per_client,
// a broken entry) is left out after the start grace instead of keeping every Consul change out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { watchConsulCatalog } from '../../balancer/src/discovery/consul-catalog.js';

test('catalog watcher: one service failing at start is left out after the grace, the others are served', async () => {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'x-consul-index': '5' });
      res.end(JSON.stringify(body));
    };
    // answers at once even for blocking calls: the watcher's rate limit paces the loop
    if (path === '/v1/catalog/services') return json(200, { web: [], broken: [] });
    if (path === '/v1/health/service/web') {
      return json(200, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: 'web-1', Service: 'web', Address: '127.0.0.1', Port: 9001, Tags: [] }, Checks: [] }]);
    }
    return json(500, 'rpc error');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const ac = new AbortController();
  try {
    const { port } = server.address() as AddressInfo;
    const watcher = watchConsulCatalog({
      endpoint: { baseUrl: `http://127.0.0.1:${port}` },
      waitMs: 1000,
      minQueryIntervalMs: 50,
      debounceMs: 1,
      startGraceMs: 300,
      backoff: { baseMs: 20, maxMs: 100 },
      logger: pino({ level: 'silent' }),
      onSnapshot: () => undefined,
    }, ac.signal);
    const first = await Promise.race([
      watcher.ready,
      new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 5000).unref()),
    ]);
    assert.notEqual(first, 'stuck', 'the first snapshot came despite the failing service');
    if (first === 'stuck') return;
    assert.deepEqual(Object.keys(first.services), ['web']);
    assert.equal(first.services.web[0].port, 9001);
  } finally {
    ac.abort();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
