// Discovery at scale under the agent's real constraint (the double enforces
// http_max_conns_per_client): 1,000 services x 3 instances behind 2 workers are all routable, a new
// instance reaches traffic within a bounded time, and the agent never sees more connections than
// --consul-max-conns. A 429 storm (the agent's limit at 4) makes discovery back off, not hot-loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Agent, request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { watchConsulCatalog } from '../../balancer/src/discovery/consul-catalog.js';
import { balancerConfig } from '../support/balancer-config.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const RUN = `scale${process.pid}x${Date.now().toString(36)}`;

/** The test's own client to the agent: a few connections, counted in the budget check below. */
const TEST_CONNS = 4;
const consulClient = new Agent({ connections: TEST_CONNS });

async function consulPut(consul: ConsulTarget, path: string, body?: unknown): Promise<void> {
  const res = await request(`${consul.url}${path}`, { method: 'PUT', dispatcher: consulClient, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `PUT ${path}: ${text}`);
}

/** Runs fn over items with at most `limit` in flight. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

const proxyClient = new Agent({ connections: 16 });
async function get(port: number, host: string): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host }, dispatcher: proxyClient, signal: AbortSignal.timeout(5000) });
  return { status: res.statusCode, body: await res.body.text() };
}

test('1,000 services x 3 instances, 2 workers, budget 16: all routable, a change reaches traffic, the agent never sees more than the budget', { timeout: 120_000 }, async (t) => {
  const consul = await consulForTest();
  const backends = await Promise.all(['i0', 'i1', 'i2', 'new'].map((name) => startNamedBackend(name, { keepAliveTimeoutMs: 10_000 })));
  const services = Array.from({ length: 1000 }, (_, i) => `${RUN}-s${i}`);
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    const regs = services.flatMap((name) => [0, 1, 2].map((k) => ({ ID: `${name}-${k}`, Name: name, Address: '127.0.0.1', Port: backends[k].port })));
    await eachLimited(regs, TEST_CONNS, (r) => consulPut(consul, '/v1/agent/service/register', r));
    consul.double?.resetStats();

    const started = Date.now();
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '5s', '--consul-max-conns', '16', '--log-level', 'warn', '--services', services.join(',')]), logger);
    const port = primary.proxy.port;
    // every service answers through the proxy (both workers serve; requests spread over 16 sockets)
    const unroutable = new Set(services);
    await until('every service routable', async () => {
      await eachLimited([...unroutable], 16, async (name) => {
        const r = await get(port, name);
        if (r.status === 200 && ['i0', 'i1', 'i2'].includes(r.body)) unroutable.delete(name);
      });
      return unroutable.size === 0 ? true : undefined;
    }, 60_000);
    t.diagnostic(`all 1000 services routable ${Date.now() - started} ms after start`);

    // a new instance of one service: plain registration without checks, no signal names it (the catalog summary does)
    const target = services[500];
    const t0 = Date.now();
    await consulPut(consul, '/v1/agent/service/register', { ID: `${target}-new`, Name: target, Address: '127.0.0.1', Port: backends[3].port });
    await until('traffic on the new instance', async () => {
      for (let i = 0; i < 8; i++) if ((await get(port, target)).body === 'new') return true;
      return undefined;
    }, 15_000);
    t.diagnostic(`new instance got traffic ${Date.now() - t0} ms after registration`);

    // and one with a check that starts critical and then passes, as the registrator registers: signalled
    const t1 = Date.now();
    await consulPut(consul, '/v1/agent/service/register', { ID: `${services[7]}-new`, Name: services[7], Address: '127.0.0.1', Port: backends[3].port, Check: { TTL: '60s' } });
    await consulPut(consul, `/v1/agent/check/pass/${encodeURIComponent(`service:${services[7]}-new`)}`);
    await until('traffic on the checked instance', async () => {
      for (let i = 0; i < 8; i++) if ((await get(port, services[7])).body === 'new') return true;
      return undefined;
    }, 15_000);
    t.diagnostic(`checked instance got traffic ${Date.now() - t1} ms after registration`);

    if (consul.double) {
      const s = consul.double.stats();
      t.diagnostic(`agent: peak ${s.peakPerClient} connections, ${s.requests} requests, ${s.rejected} refused`);
      // the balancer's 16 plus this test's own client
      assert.ok(s.peakPerClient <= 16 + TEST_CONNS, `agent saw ${s.peakPerClient} connections at once`);
      assert.equal(s.rejected, 0);
    } else {
      t.diagnostic('real agent: connection figures not observable, budget assertion not made');
    }
  } finally {
    await primary?.stop();
    for (const b of backends) {
      b.server.closeAllConnections();
      b.server.close();
    }
    await cleanConsul(consul, `${RUN}-`, 10_000).catch(() => undefined);
    await consul.close();
  }
});

test('a 429 storm (the agent allows 4 connections) makes discovery back off: bounded request rate, and it still converges', { timeout: 60_000 }, async (t) => {
  // its own double, also when CONSUL_HTTP_ADDR names an agent: a test cannot lower a real agent's limit
  const consul = await consulForTest({ ownDouble: true });
  const double = consul.double!;
  const services = Array.from({ length: 40 }, (_, i) => `${RUN}-storm${i}`);
  const ac = new AbortController();
  // the other clients on the host: 3 connections held by long blocking queries
  const others = new Agent({ connections: 3 });
  const hogs: Promise<unknown>[] = [];
  try {
    await eachLimited(services, TEST_CONNS, (name) => consulPut(consul, '/v1/agent/service/register', { ID: `${name}-0`, Name: name, Address: '127.0.0.1', Port: 9000 }));
    await new Promise<void>((r) => consulClient.close().then(() => r(), () => r()));
    const idx = double.state.indexForCatalogServices();
    for (let i = 0; i < 3; i++) {
      hogs.push(request(`${consul.url}/v1/catalog/services?index=${idx}&wait=30s`, { dispatcher: others, signal: ac.signal }).then((r) => r.body.text()).catch(() => undefined));
    }
    await until('hogs connected', async () => (double.stats().open >= 3 ? true : undefined), 5000);
    double.setMaxConnsPerClient(4);
    double.resetStats();
    const watcher = watchConsulCatalog({
      endpoint: { baseUrl: consul.url },
      waitMs: 5000, minQueryIntervalMs: 10, debounceMs: 5, maxConns: 16, startGraceMs: 60_000,
      services, logger, onSnapshot: () => undefined,
    }, ac.signal);
    const windowMs = 4000;
    await new Promise((r) => setTimeout(r, windowMs));
    const storm = double.stats();
    t.diagnostic(`during the storm: ${storm.requests} requests answered, ${storm.rejected} refused in ${windowMs} ms; budget ${JSON.stringify(watcher.stats().budget)}`);
    // a hot loop makes thousands of attempts per second; backing off (250 ms doubling to 10 s) a few dozen
    assert.ok(storm.rejected + storm.requests < 200, `${storm.rejected} refused + ${storm.requests} answered in ${windowMs} ms`);
    assert.ok(watcher.stats().budget.overBudget > 0, 'the storm was noticed as over budget');

    // the other clients leave: discovery converges on every service
    ac.abort();
    const ac2 = new AbortController();
    double.setMaxConnsPerClient(200);
    await others.close().catch(() => undefined);
    const after = watchConsulCatalog({
      endpoint: { baseUrl: consul.url },
      waitMs: 5000, minQueryIntervalMs: 10, debounceMs: 5, maxConns: 16, services, logger, onSnapshot: () => undefined,
    }, ac2.signal);
    const snap = await after.ready;
    assert.equal(Object.keys(snap.services).length, services.length);
    ac2.abort();
    await after.done;
    await watcher.done;
  } finally {
    ac.abort();
    await Promise.all(hogs);
    await others.close().catch(() => undefined);
    await cleanConsul(consul, `${RUN}-storm`, 10_000).catch(() => undefined);
    await consul.close();
  }
});
