// Rate limits by client address end to end, 2 workers, the real primary and the Consul double (or a
// real agent): rate_by=ip gives every client address its own budget (clients bound to 127.0.0.2 and
// 127.0.0.3 each get the configured rate at the same time), and many clients of one address share
// that address's one budget across both workers (new connections spread over the workers, and 8
// keep-alive connections). The same for a proto=tcp service, where the rate counts new connections.
// Each accepted/s is measured against the configured rate (within 10 %), with the clients asking for at
// least twice the rate. burst=10: spent within the warm-up second, and long enough that a worker
// stalled on a loaded machine does not lose the tokens it would have saved (a token bucket caps what
// it saves at the burst; each worker holds its share of it). A bucket admits at most rate x span +
// burst in any span: 6 s at 25/s bounds that at 1.067x, inside the 10 %.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import pino from 'pino';
import { Pool, request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { httpFrom, measureAccepted, tcpFrom, type AcceptedRate } from '../support/bound-clients.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until, untilRetryingErrors } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const RATE = 25;
const WARMUP_MS = 1000;
const MEASURE_MS = 6000;

async function register(consul: ConsulTarget, id: string, name: string, port: number, tags: string[]): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}/v1/agent/service/register`, {
    method: 'PUT', headers, signal: AbortSignal.timeout(5000),
    body: JSON.stringify({ ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags }),
  });
  assert.equal(res.statusCode, 200, await res.body.text());
}

function assertNearRate(what: string, r: AcceptedRate): void {
  process.stderr.write(`${what}: ${r.perSecond.toFixed(1)}/s accepted for ${RATE}/s configured (${(r.perSecond / RATE).toFixed(3)}x), ${r.refused} refused\n`);
  assert.equal(r.other, 0, `${what}: answers neither accepted nor refused`);
  // a measurement the clients bound (they could not ask much more than the rate) says nothing of the limit
  assert.ok(r.refused >= r.accepted, `${what}: the clients asked for less than 2x the rate (${r.accepted} accepted, ${r.refused} refused)`);
  assert.ok(r.perSecond >= RATE * 0.9 && r.perSecond <= RATE * 1.1, `${what}: ${r.perSecond.toFixed(1)}/s accepted, configured ${RATE}/s`);
}

async function startBalancer(consul: ConsulTarget, extra: string[]): Promise<Awaited<ReturnType<typeof startPrimary>>> {
  const primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
    '--consul-wait', '2s', '--log-level', 'warn', ...extra]), logger);
  await until('both workers ready', () => primary.supervisor.metrics().workersReady === 2, 10_000);
  return primary;
}

test(`HTTP rate=${RATE}/s rate_by=ip, 2 workers: 127.0.0.2 and 127.0.0.3 each get the rate at once; 8 keep-alive clients of one address share it`, async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const web = scope.name('byip');
  const backend = await startNamedBackend('byip');
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, scope.id('b1'), web, backend.port, [`rate=${RATE}/s`, 'burst=10', 'rate_by=ip']);
    primary = await startBalancer(consul, []);
    const port = primary.proxy.port;
    await until('service in the table', () => primary!.holder.current().upstreams[web]?.policy?.rateLimit !== undefined, 8000);

    // .2: 16 clients, a new connection per request (spread over both workers);
    // .3: 8 keep-alive connections (the cluster deals them over both workers)
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8, pipelining: 1, localAddress: '127.0.0.3' });
    try {
      const status = (s: number) => (s === 200 ? true : s === 429 ? false : undefined);
      const [fresh, kept] = await Promise.all([
        measureAccepted(16, async () => status((await httpFrom('127.0.0.2', port, web)).status), WARMUP_MS, MEASURE_MS),
        measureAccepted(8, async () => {
          const r = await pool.request({ path: '/', method: 'GET', headers: { host: web } });
          await r.body.text();
          return status(r.statusCode);
        }, WARMUP_MS, MEASURE_MS),
      ]);
      assertNearRate('rate_by=ip, 127.0.0.2, 16 clients, new connections', fresh);
      assertNearRate('rate_by=ip, 127.0.0.3, 8 keep-alive connections', kept);
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

test(`proto=tcp rate=${RATE}/s, 2 workers: new connections per second per address (127.0.0.2, 127.0.0.3 at once) within 10 %`, async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const db = scope.name('tcprate');
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const echoPort = (echo.address() as net.AddressInfo).port;
  const tcpPort = await freePort();
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, scope.id('t1'), db, echoPort, ['proto=tcp', `urlprefix-:${tcpPort}`, `rate=${RATE}/s`, 'burst=10']);
    primary = await startBalancer(consul, ['--tcp-ports', `${tcpPort}`]);
    await until('service in the table', () => primary!.holder.current().upstreams[db]?.policy?.rateLimit !== undefined, 8000);
    await untilRetryingErrors('tcp port open in a worker', async () => (await tcpFrom('127.0.0.4', tcpPort)) === 'ping', 8000, 50);

    const attempt = (from: string) => async () => (await tcpFrom(from, tcpPort)) === 'ping';
    const [a, b] = await Promise.all([
      measureAccepted(16, attempt('127.0.0.2'), WARMUP_MS, MEASURE_MS),
      measureAccepted(16, attempt('127.0.0.3'), WARMUP_MS, MEASURE_MS),
    ]);
    assertNearRate('proto=tcp, 127.0.0.2, 16 clients', a);
    assertNearRate('proto=tcp, 127.0.0.3, 16 clients', b);
  } finally {
    await primary?.stop();
    await scope.clean(consul);
    echo.close();
    await consul.close();
  }
});
