// Access rules and rate limits end to end: the real primary, 2 workers, the Consul double (or a real
// agent). Clients bound to 127.0.0.2 and 127.0.0.3: allowed / denied by tags for an HTTP service
// (403) and a TCP service (closed), then by an admin policy replacing the tags. A rate test measures
// accepted requests per second against rate=40/s with 2 workers (each holds half the budget):
// new connections per request, spread over the workers, and one keep-alive connection (one worker).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { Pool, request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { httpFrom, tcpFrom } from '../support/bound-clients.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until, untilRetryingErrors } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

async function consulCall(consul: ConsulTarget, method: string, path: string, body?: string): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}${path}`, { method: method as 'PUT', headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `${method} ${path}: ${text}`);
}
const register = (c: ConsulTarget, id: string, name: string, port: number, tags: string[]) =>
  consulCall(c, 'PUT', '/v1/agent/service/register', JSON.stringify({ ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags }));

test('allow= / deny= from tags, then an admin policy: 403 for HTTP, closed for TCP, by client address', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const web = scope.name('web');
  const db = scope.name('db');
  const backend = await startNamedBackend('web');
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const echoPort = (echo.address() as net.AddressInfo).port;
  const tcpPort = await freePort();
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, scope.id('web1'), web, backend.port, ['allow=ip:127.0.0.2,ip:fe80::/10']);
    await register(consul, scope.id('db1'), db, echoPort, ['proto=tcp', `urlprefix-:${tcpPort}`, 'deny=ip:127.0.0.3']);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '2s', '--log-level', 'warn', '--tcp-ports', `${tcpPort}`]), logger);
    const port = primary.proxy.port;
    await until('both services in the table', () => primary!.holder.current().upstreams[web]?.policy?.access !== undefined && primary!.holder.current().upstreams[db] !== undefined, 8000);
    await untilRetryingErrors('tcp port open', async () => (await tcpFrom('127.0.0.2', tcpPort)) === 'ping', 8000, 50);

    for (let i = 0; i < 4; i++) {
      assert.equal((await httpFrom('127.0.0.2', port, web)).status, 200, 'allowed address');
      const denied = await httpFrom('127.0.0.3', port, web);
      assert.equal(denied.status, 403, 'an address outside the allow list');
      assert.match(denied.head, /content-type: application\/json/i);
      assert.equal(await tcpFrom('127.0.0.2', tcpPort), 'ping', 'TCP: not denied');
      assert.equal(await tcpFrom('127.0.0.3', tcpPort), 'closed', 'TCP: denied address closed');
    }

    // the admin policy replaces the tags' document: now 127.0.0.2 is the denied one
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    const put = await request(`${admin}/policy/${web}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ deny: ['ip:127.0.0.2'] }) });
    assert.equal(put.statusCode, 200, await put.body.text());
    await until('admin policy live', async () => (await httpFrom('127.0.0.2', port, web)).status === 403, 8000);
    assert.equal((await httpFrom('127.0.0.3', port, web)).status, 200);
    const bad = await request(`${admin}/policy/${web}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ allow: '10.0.0.0/8' }) });
    assert.equal(bad.statusCode, 400);
    assert.match(((await bad.body.json()) as { message: string }).message, /expected ip:/);
  } finally {
    await primary?.stop();
    await scope.clean(consul);
    backend.server.closeAllConnections();
    backend.server.close();
    echo.close();
    await consul.close();
  }
});

test('rate=40/s with 2 workers: accepted/s of new connections and of one keep-alive connection within 10 % of the rate', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const web = scope.name('rated');
  const backend = await startNamedBackend('rated');
  const RATE = 40;
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, scope.id('r1'), web, backend.port, [`rate=${RATE}/s`, 'burst=10']);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '2s', '--log-level', 'warn']), logger);
    const port = primary.proxy.port;
    await until('service in the table', () => primary!.holder.current().upstreams[web]?.policy?.rateLimit !== undefined, 8000);
    await until('both workers ready', () => primary!.supervisor.metrics().workersReady === 2, 10_000);

    // 8 clients, a new connection per request, as fast as they can for 1 s (burst spent), then measured for 4 s
    const counts = { ok: 0, limited: 0, other: 0 };
    let measuring = false;
    let on = true;
    const client = async () => {
      while (on) {
        const r = await httpFrom('127.0.0.2', port, web);
        if (!measuring) continue;
        if (r.status === 200) counts.ok++;
        else if (r.status === 429) {
          counts.limited++;
          assert.match(r.head, /retry-after: \d+/i);
        } else counts.other++;
      }
    };
    const clients = Array.from({ length: 8 }, () => client());
    await new Promise((r) => setTimeout(r, 1000)); // load generation time, not synchronization
    measuring = true;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 4000));
    const seconds = (Date.now() - t0) / 1000;
    const okAtEnd = counts.ok;
    on = false;
    await Promise.all(clients);
    const perSecond = okAtEnd / seconds;
    process.stderr.write(`rate limit, 2 workers, new connections: ${perSecond.toFixed(1)}/s accepted for ${RATE}/s configured (${(perSecond / RATE).toFixed(3)}x), ${counts.limited} limited\n`);
    assert.equal(counts.other, 0);
    assert.ok(counts.limited > 0, 'the clients asked for more than the rate');
    assert.ok(perSecond >= RATE * 0.9 && perSecond <= RATE * 1.1, `${perSecond.toFixed(1)}/s accepted, configured ${RATE}/s`);

    // one keep-alive connection meets one worker: the primary gives that worker the key's share by demand
    // (1 - 0.1/2 of the rate, policy/rate-shares.ts); 1/N would give it half
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1, pipelining: 1 });
    try {
      let ok = 0;
      const end = Date.now() + 3000;
      const k0 = Date.now();
      while (Date.now() < end) {
        const r = await pool.request({ path: '/', method: 'GET', headers: { host: web } });
        await r.body.text();
        if (r.statusCode === 200) ok++;
      }
      const kaPerSecond = ok / ((Date.now() - k0) / 1000);
      process.stderr.write(`rate limit, 2 workers, one keep-alive connection: ${kaPerSecond.toFixed(1)}/s accepted for ${RATE}/s configured\n`);
      assert.ok(kaPerSecond >= RATE * 0.9 && kaPerSecond <= RATE * 1.1, `keep-alive: ${kaPerSecond.toFixed(1)}/s accepted, configured ${RATE}/s`);
    } finally {
      await pool.close();
    }
  } finally {
    await primary?.stop();
    await scope.clean(consul);
    backend.server.closeAllConnections();
    backend.server.close();
    await consul.close();
  }
});
