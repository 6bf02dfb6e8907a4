// Discovery against what a real Consul does and our old double did not (agent/consul/state/catalog.go):
// - a node leaving removes every service of the node at ONE raft index (deleteNodeTxn): reading one of
//   the services names that index, and the others' instances must leave too;
// - one instance out and another in inside one catalog answer leaves every instance count as it was:
//   the catalog summary cannot see it, the follower must still find it (and an ID re-registered with
//   another port, the same);
// - an agent (or a proxy before it) without the filter language answers the filtered checks query 400:
//   discovery falls back to state/critical + state/warning and still follows checks and maintenance.
// Each runs against the double or, with CONSUL_HTTP_ADDR, a real agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Agent } from 'undici';
import { watchConsulCatalog, type CatalogWatcher, type CatalogWatcherOptions } from '../../balancer/src/discovery/consul-catalog.js';
import { spawnBalancer, type BalancerProcess } from '../support/balancer-process.js';
import { CatalogGate } from '../support/catalog-gate.js';
import { consulForTest, testScope, type ConsulTarget, type TestScope } from '../support/consul.js';
import type { ConsulDoubleOptions } from '../support/consul-double/index.js';
import { consulPut } from '../support/consul-http.js';
import { workerRoutings } from '../support/follower-harness.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

interface Follower {
  readonly consul: ConsulTarget;
  readonly scope: TestScope;
  readonly gate: CatalogGate;
  readonly watcher: CatalogWatcher;
  ids(name: string): string[];
}

async function startFollower(t: { after(fn: () => Promise<void>): void }, setup: (consul: ConsulTarget, scope: TestScope) => Promise<void>, opts: { rewrite?: (path: string) => string; watcher?: Partial<CatalogWatcherOptions>; double?: ConsulDoubleOptions } = {}): Promise<Follower> {
  const consul = await consulForTest(opts.double);
  const scope = testScope();
  const ac = new AbortController();
  const inner = new Agent({ connections: 16 });
  const gate = new CatalogGate(inner, opts.rewrite);
  let watcher: CatalogWatcher | undefined;
  t.after(async () => {
    gate.release();
    ac.abort();
    await watcher?.done;
    await inner.close();
    await scope.clean(consul);
    await consul.close();
  });
  await setup(consul, scope);
  watcher = watchConsulCatalog({
    endpoint: { baseUrl: consul.url, dispatcher: gate }, waitMs: 10_000, minQueryIntervalMs: 5, debounceMs: 2, maxConns: 16, resyncMs: 0,
    logger, onSnapshot: () => undefined, ...opts.watcher,
  }, ac.signal);
  const w = watcher;
  await w.ready;
  await until('settled', () => w.stats().settled, 10_000);
  return { consul, scope, gate, watcher: w, ids: (name) => (w.current()?.services[name] ?? []).map((i) => `${i.serviceId}@${i.port}`).sort() };
}

let triggers = 0;

/** Holds the next catalog query while `writes` run, so the one answer after covers all of them. */
async function insideOneAnswer(f: Follower, writes: () => Promise<void>): Promise<void> {
  f.gate.holding = true;
  // the query at the agent answers the trigger write; the next one is held. Each trigger moves to a
  // port of its own: an identical re-registration writes nothing (catalog.go ensureServiceTxn), so a
  // second call would only see the query at the agent end by its wait running out.
  const port = 9000 + ++triggers;
  await consulPut(f.consul, '/v1/agent/service/register', { ID: f.scope.id('trigger'), Name: f.scope.name('trigger'), Address: '127.0.0.1', Port: port });
  await until('the catalog query after the trigger held', () => f.gate.held.length === 1, 10_000);
  await until('the trigger seen', () => f.ids(f.scope.name('trigger')).join(' ') === `${f.scope.id('trigger')}@${port}`, 10_000);
  await writes();
  f.gate.release();
}

test('one instance out and another in inside one catalog answer (counts unchanged): the new one in, the old one out', { timeout: 60_000 }, async (t) => {
  // 20 quiet services x 2 instances, no checks: no signal but the catalog move names them
  const quiet = (scope: TestScope) => Array.from({ length: 20 }, (_, i) => scope.name(`q${i}`));
  const f = await startFollower(t, async (consul, scope) => {
    for (const [i, name] of quiet(scope).entries()) {
      for (const k of [0, 1]) await consulPut(consul, '/v1/agent/service/register', { ID: `${name}-${k}`, Name: name, Address: '127.0.0.1', Port: 12_000 + i * 10 + k });
    }
  });
  const q = quiet(f.scope);
  await insideOneAnswer(f, async () => {
    await consulPut(f.consul, `/v1/agent/service/deregister/${encodeURIComponent(`${q[7]}-1`)}`);
    await consulPut(f.consul, '/v1/agent/service/register', { ID: `${q[7]}-2`, Name: q[7], Address: '127.0.0.1', Port: 12_072 });
  });
  const started = Date.now();
  await until(`${q[7]}: -1 out, -2 in`, () => f.ids(q[7]).join(' ') === `${q[7]}-0@12070 ${q[7]}-2@12072`, 10_000, 5);
  t.diagnostic(`count-preserving change followed ${Date.now() - started} ms after the catalog answer was released (rescans: ${JSON.stringify(f.watcher.stats().rescanReasons)})`);

  // an ID re-registered with another port: no count, node or check changes either
  await until('settled', () => f.watcher.stats().settled, 10_000);
  await insideOneAnswer(f, () => consulPut(f.consul, '/v1/agent/service/register', { ID: `${q[9]}-0`, Name: q[9], Address: '127.0.0.1', Port: 12_095 }));
  await until(`${q[9]}-0 on its new port`, () => f.ids(q[9]).join(' ') === `${q[9]}-0@12095 ${q[9]}-1@12091`, 10_000, 5);
});

// Without index noise the node leave is the window's only write: the old ledger took the one service
// it read as the whole story. With noise (the double's default, a real cluster's case) any KV write in
// the window sends discovery to the summary anyway.
for (const noise of [false, undefined] as const) test(`a node leaving with instances of 50 services: every one of them leaves (${noise === false ? 'no index noise' : 'index noise'})`, { timeout: 120_000 }, async (t) => {
  const names = (scope: TestScope) => Array.from({ length: 50 }, (_, i) => scope.name(`s${i}`));
  const node = (scope: TestScope, n: number) => scope.name(`node${n}`);
  const f = await startFollower(t, async (consul, scope) => {
    for (const n of [1, 2]) {
      await consulPut(consul, '/v1/catalog/register', { Node: node(scope, n), Address: `127.0.0.${n + 1}`, Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } });
    }
    for (const [i, name] of names(scope).entries()) {
      for (const n of [1, 2]) {
        await consulPut(consul, '/v1/catalog/register', { Node: node(scope, n), Address: `127.0.0.${n + 1}`, SkipNodeUpdate: true, Service: { ID: `${name}-${n}`, Service: name, Port: 13_000 + i } });
      }
    }
    t.after(async () => {
      for (const n of [1, 2]) await consulPut(consul, '/v1/catalog/deregister', { Node: node(scope, n) }).catch(() => undefined);
    });
  }, { double: noise === false ? { noise: false } : {} });
  const all = names(f.scope);
  await until('both instances of every service', () => all.every((s) => f.ids(s).length === 2), 10_000);
  const started = Date.now();
  await consulPut(f.consul, '/v1/catalog/deregister', { Node: node(f.scope, 2) });
  const left = () => all.filter((s) => f.ids(s).some((id) => id.startsWith(`${s}-2@`)));
  await until('node 2 gone from every service', () => left().length === 0, 10_000, 10).catch((err: Error) => {
    throw new Error(`${err.message}: ${left().length} of 50 services still list node 2's instance`);
  });
  t.diagnostic(`node leave followed in ${Date.now() - started} ms (summaries ${f.watcher.stats().summaries}, rescans ${JSON.stringify(f.watcher.stats().rescanReasons)})`);
  assert.ok(all.every((s) => f.ids(s).length === 1));
});

test('the filtered checks query refused with a 400: falls back, still follows checks and maintenance, stays reachable', { timeout: 60_000 }, async (t) => {
  // an agent without the filter language: the filtered query goes to a state the agent refuses with 400
  const rewrite = (path: string) => (path.startsWith('/v1/health/state/any') && path.includes('filter=') ? path.replace('/v1/health/state/any', '/v1/health/state/no-filter-here') : path);
  const f = await startFollower(t, async () => undefined, { rewrite });
  const web = f.scope.name('web');
  const id = f.scope.id('web-1');
  const status = () => f.watcher.current()?.services[web]?.[0]?.status;
  await consulPut(f.consul, '/v1/agent/service/register', { ID: id, Name: web, Address: '127.0.0.1', Port: 9001, Check: { TTL: '60s' } });
  await until('registered, critical', () => status() === 'critical', 10_000);
  await consulPut(f.consul, `/v1/agent/check/pass/service:${id}`);
  await until('passing', () => status() === 'passing', 10_000);
  await consulPut(f.consul, `/v1/agent/check/warn/service:${id}`);
  await until('warning', () => status() === 'warning', 10_000);
  await consulPut(f.consul, `/v1/agent/check/pass/service:${id}`);
  await until('passing again', () => status() === 'passing', 10_000);
  await consulPut(f.consul, `/v1/agent/service/maintenance/${id}?enable=true&reason=drain`);
  await until('in maintenance', () => status() === 'critical', 10_000);
  const s = f.watcher.stats();
  assert.equal(s.checksFilterRefused, true);
  assert.equal(s.signalFallbacks, 1, 'counted once');
  assert.equal(f.watcher.reachable(), true, 'a refused filter is no unreachable agent');
});

// The same node leave through a balancer process: every worker's table (admin API) drops node 2's
// instance of every one of the 50 services.
test('a node leaving with instances of 50 services: every worker of a balancer drops them', { timeout: 120_000 }, async (t) => {
  const consul = await consulForTest({ noise: false });
  const scope = testScope();
  const names = Array.from({ length: 50 }, (_, i) => scope.name(`w${i}`));
  const node = (n: number) => scope.name(`wnode${n}`);
  const port = (i: number, n: number) => 15_000 + n * 100 + i;
  let balancer: BalancerProcess | undefined;
  t.after(async () => {
    await balancer?.stop(10_000);
    for (const n of [1, 2]) await consulPut(consul, '/v1/catalog/deregister', { Node: node(n) }).catch(() => undefined);
    await scope.clean(consul);
    await consul.close();
  });
  for (const n of [1, 2]) await consulPut(consul, '/v1/catalog/register', { Node: node(n), Address: '127.0.0.1', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } });
  for (const [i, name] of names.entries()) {
    for (const n of [1, 2]) await consulPut(consul, '/v1/catalog/register', { Node: node(n), Address: '127.0.0.1', SkipNodeUpdate: true, Service: { ID: `${name}-${n}`, Service: name, Address: '127.0.0.1', Port: port(i, n) } });
  }
  balancer = spawnBalancer(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--consul-wait', '10s', '--consul-resync', '1h', '--log-level', 'info']);
  const b = balancer;
  const started = await b.waitForLog((l) => l.msg === 'balancer started', 60_000, 'balancer started').catch((err: Error) => {
    throw new Error(`${err.message}; last lines: ${b.logs.slice(-3).map((l) => JSON.stringify(l)).join(' | ')}`);
  });
  const adminPort = Number(started.adminPort);
  const prefix = scope.name('w');
  const node2Left = async () => {
    const workers = await workerRoutings(adminPort, prefix);
    return workers.map((w) => names.filter((s, i) => (w.get(s) ?? []).includes(`127.0.0.1:${port(i, 2)}`)).length);
  };
  await until('every worker routes both nodes of every service', async () => {
    const workers = await workerRoutings(adminPort, prefix);
    return workers.length === 2 && workers.every((w) => names.every((s) => (w.get(s) ?? []).length === 2));
  }, 30_000, 50);
  const t0 = Date.now();
  await consulPut(consul, '/v1/catalog/deregister', { Node: node(2) });
  let last: number[] = [];
  await until('node 2 gone from every worker', async () => {
    last = await node2Left();
    return last.every((n) => n === 0);
  }, 10_000, 20).catch((err: Error) => {
    throw new Error(`${err.message}: services still routed to node 2, per worker: ${last.join(', ')} of 50`);
  });
  t.diagnostic(`node leave out of both workers' tables in ${Date.now() - t0} ms`);
});
