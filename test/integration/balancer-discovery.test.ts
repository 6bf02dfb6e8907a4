// Discovery against the Consul double: the watcher follows register/deregister, emits only on
// content changes, keeps the last snapshot through an outage and recovers; with the whole primary
// running, traffic continues on the last table during the outage and follows Consul after it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { watchConsulCatalog } from '../../balancer/src/discovery/consul-catalog.js';
import type { CatalogSnapshot } from '../../balancer/src/routing/types.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulPut } from '../support/consul-http.js';
import { consulForTest, testScope, type ConsulTarget, type TestScope } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

// IDs and names go through the test's scope: a shared agent holds other tests' services too
const register = (c: ConsulTarget, scope: TestScope, id: string, name: string, port: number, tags: string[] = []) =>
  consulPut(c, '/v1/agent/service/register', { ID: scope.id(id), Name: scope.name(name), Address: '127.0.0.1', Port: port, Tags: tags });
const deregister = (c: ConsulTarget, scope: TestScope, id: string) => consulPut(c, `/v1/agent/service/deregister/${encodeURIComponent(scope.id(id))}`);

function ports(s: CatalogSnapshot | undefined, service: string): number[] {
  return (s?.services[service] ?? []).map((i) => i.port).sort((a, b) => a - b);
}

test('watcher follows register/deregister, emits only changes, survives an outage', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const controller = new AbortController();
  const snapshots: CatalogSnapshot[] = [];
  const reach: boolean[] = [];
  try {
    await register(consul, scope, 'web-1', 'web', 9001);
    const watcher = watchConsulCatalog({
      endpoint: { baseUrl: consul.url }, waitMs: 2000, minQueryIntervalMs: 5, debounceMs: 5, logger,
      backoff: { baseMs: 20, maxMs: 200 },
      onSnapshot: (s) => snapshots.push(s),
      onReachability: (ok) => reach.push(ok),
    }, controller.signal);
    const first = await watcher.ready;
    assert.deepEqual(ports(first, scope.name('web')), [9001]);
    assert.equal(first.services[scope.name('web')][0].status, 'passing');

    await register(consul, scope, 'web-2', 'web', 9002, ['weight=2']);
    await until('web-2 seen', () => ports(watcher.current(), scope.name('web')).length === 2, 5000);
    await register(consul, scope, 'api-1', 'api', 9100);
    await until('api seen', () => ports(watcher.current(), scope.name('api')).length === 1, 5000);
    await deregister(consul, scope, 'web-1');
    await until('web-1 gone', () => ports(watcher.current(), scope.name('web')).join() === '9002', 5000);
    await deregister(consul, scope, 'api-1');
    await until('api gone', () => watcher.current()?.services[scope.name('api')] === undefined, 5000);

    // re-registering identical content changes the index, not the content: no new snapshot
    const count = snapshots.length;
    await register(consul, scope, 'web-2', 'web', 9002, ['weight=2']);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(snapshots.length, count, 'unchanged content must not emit');

    // outage: the last snapshot stays, reachability flips, and comes back after restore
    await consul.outage();
    await until('unreachable', () => watcher.reachable() === false, 5000);
    assert.deepEqual(ports(watcher.current(), scope.name('web')), [9002]);
    await consul.restore();
    await register(consul, scope, 'web-3', 'web', 9003);
    await until('recovered with web-3', () => ports(watcher.current(), scope.name('web')).join() === '9002,9003', 8000);
    assert.equal(watcher.reachable(), true);
    assert.deepEqual(reach.slice(0, 3), [true, false, true]);
    controller.abort();
    await watcher.done;
  } finally {
    controller.abort();
    await scope.clean(consul);
    await consul.close();
  }
});

async function get(port: number, host: string): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host }, signal: AbortSignal.timeout(3000) });
  return { status: res.statusCode, body: await res.body.text() };
}

test('whole primary: traffic follows Consul, continues on the last table in an outage, recovers after restore', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const a = await startNamedBackend('a', { keepAliveTimeoutMs: 10_000 });
  const b = await startNamedBackend('b', { keepAliveTimeoutMs: 10_000 });
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, scope, 'web-a', 'web', a.port);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--consul-wait', '2s', '--log-level', 'warn']), logger);
    const port = primary.proxy.port;
    assert.deepEqual(await get(port, scope.name('web')), { status: 200, body: 'a' });

    await register(consul, scope, 'web-b', 'web', b.port);
    await deregister(consul, scope, 'web-a');
    await until('traffic on b only', async () => {
      for (let i = 0; i < 4; i++) if ((await get(port, scope.name('web'))).body !== 'b') return undefined;
      return true;
    }, 5000);

    await consul.outage();
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 20; i++) assert.deepEqual(await get(port, scope.name('web')), { status: 200, body: 'b' });
    const admin = await request(`http://127.0.0.1:${primary.admin.port}/healthz`);
    assert.equal(((await admin.body.json()) as { consulReachable: boolean }).consulReachable, false);

    await consul.restore();
    await register(consul, scope, 'web-a', 'web', a.port);
    await until('a back after restore', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add((await get(port, scope.name('web'))).body);
      return seen.has('a') && seen.has('b') ? true : undefined;
    }, 10_000);
  } finally {
    await primary?.stop();
    a.server.closeAllConnections();
    b.server.closeAllConnections();
    a.server.close();
    b.server.close();
    await scope.clean(consul);
    await consul.close();
  }
});

test('a burst of registrations is coalesced: fewer snapshots than changes, the last one complete', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const controller = new AbortController();
  const snapshots: CatalogSnapshot[] = [];
  try {
    const watcher = watchConsulCatalog({
      endpoint: { baseUrl: consul.url }, waitMs: 2000, minQueryIntervalMs: 10, debounceMs: 20, logger,
      onSnapshot: (s) => snapshots.push(s),
    }, controller.signal);
    await watcher.ready;
    const BURST = 30;
    await Promise.all(Array.from({ length: BURST }, (_, i) => register(consul, scope, `burst-${i}`, 'burst', 10_000 + i)));
    await until('all burst instances', () => ports(watcher.current(), scope.name('burst')).length === BURST, 5000);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(snapshots.length < BURST / 2, `${snapshots.length} snapshots for ${BURST} changes`);
    assert.equal(ports(snapshots[snapshots.length - 1], scope.name('burst')).length, BURST);
  } finally {
    controller.abort();
    await scope.clean(consul);
    await consul.close();
  }
});
