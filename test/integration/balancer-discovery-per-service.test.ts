// `--consul-watch per-service`: one blocking query per service over HTTP/2 to the double's HTTPS
// listener (agent.go setupHTTPS: h2 by ALPN, 250 streams per connection), under KV noise. The double
// is the test's own (ownDouble): the HTTPS listener with a test CA is set up here, which a shared real
// agent does not offer. Writes go through the plain listener, as a client of ports.http would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseBalancerArgs, ConfigError } from '../../balancer/src/config.js';
import { watchConsulPerService, type PerServiceWatcher } from '../../balancer/src/discovery/per-service/watch.js';
import { spawnBalancer, type BalancerProcess } from '../support/balancer-process.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { consulPut } from '../support/consul-http.js';
import { workerRoutings } from '../support/follower-harness.js';
import { until } from '../support/poll.js';
import { makeTestCa, type TestCa } from '../support/tls-certs.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

async function tlsConsul(t: { after(fn: () => Promise<void>): void }, kvWritesPerSec: number): Promise<{ consul: ConsulTarget; ca: TestCa; httpsUrl: string }> {
  const ca = await makeTestCa('per-service');
  const pem = await ca.issue(['localhost'], { extraIps: ['127.0.0.1'] });
  const consul = await consulForTest({ ownDouble: true, tls: { cert: pem.cert, key: pem.key }, noise: { kvWritesPerSec } });
  t.after(async () => {
    await consul.close();
    await ca.close();
  });
  assert.ok(consul.double?.httpsUrl, 'the double has an HTTPS listener');
  return { consul, ca, httpsUrl: consul.double.httpsUrl };
}

test('--consul-watch per-service with an http:// agent: a clear error at start', () => {
  const r = parseBalancerArgs(['--consul', '127.0.0.1:8500', '--consul-watch', 'per-service'], {}, { cores: 2 });
  assert.ok(r instanceof ConfigError);
  assert.match(r.message, /per-service needs HTTP\/2.*HTTPS listener.*127\.0\.0\.1:8500/);
  const ok = parseBalancerArgs(['--consul', 'https://127.0.0.1:8501', '--consul-watch', 'per-service'], {}, { cores: 2 });
  assert.ok(!(ok instanceof ConfigError) && 'consul' in ok && ok.consul?.watch === 'per-service');
  const bad = parseBalancerArgs(['--consul-watch', 'both'], {}, { cores: 2 });
  assert.ok(bad instanceof ConfigError && /expected index or per-service/.test(bad.message));
});

test('per-service watcher: h2 sessions at 250 streams, KV noise wakes nothing, a count-preserving move is seen', { timeout: 60_000 }, async (t) => {
  const { consul, ca, httpsUrl } = await tlsConsul(t, 10);
  const scope = testScope();
  const names = Array.from({ length: 20 }, (_, i) => scope.name(`s${i}`));
  for (const [i, name] of names.entries()) {
    for (const k of [0, 1]) await consulPut(consul, '/v1/agent/service/register', { ID: `${name}-${k}`, Name: name, Address: '127.0.0.1', Port: 20_000 + i * 10 + k });
  }
  const ac = new AbortController();
  let watcher: PerServiceWatcher | undefined;
  t.after(async () => {
    ac.abort();
    await watcher?.done;
  });
  watcher = watchConsulPerService({
    endpoint: { baseUrl: httpsUrl }, ca: ca.cert, waitMs: 60_000, minQueryIntervalMs: 5, debounceMs: 2, maxConns: 16,
    logger, onSnapshot: () => undefined,
  }, ac.signal);
  const w = watcher;
  await w.ready;
  await until('every query held', () => w.stats().settled, 10_000);
  const ids = (name: string) => (w.current()?.services[name] ?? []).map((i) => `${i.serviceId}@${i.port}`).sort();
  assert.deepEqual(ids(names[3]), [`${names[3]}-0@20030`, `${names[3]}-1@20031`]);
  const pool = w.perServiceStats().pool;
  assert.equal(pool.sessions, 1, '21 streams fit one session');
  assert.equal(pool.peerMaxStreams, 250, 'the agent announces Go\'s 250 streams per connection');
  // 10 KV writes/s move the raft index; no service's own index moves: no query answers
  const before = w.stats().queries;
  const raftBefore = consul.double!.state.lastIndex();
  await until('the raft index moved by KV noise', () => consul.double!.state.lastIndex() >= raftBefore + 10, 10_000);
  assert.equal(w.stats().queries, before, 'KV noise woke a service query');
  // one instance out and another in (count unchanged): its own answer shows it
  await consulPut(consul, `/v1/agent/service/deregister/${encodeURIComponent(`${names[3]}-0`)}`);
  await consulPut(consul, '/v1/agent/service/register', { ID: `${names[3]}-2`, Name: names[3], Address: '127.0.0.1', Port: 20_039 });
  await until('the new instance in, the old one out', () => ids(names[3]).join(' ') === `${names[3]}-1@20031 ${names[3]}-2@20039`, 10_000);
  assert.equal(w.stats().rescans, 0);
});

test('a balancer with 2 workers in per-service mode: registrations, a count-preserving move under noise, check flaps, a node leave of 50 services', { timeout: 180_000 }, async (t) => {
  const { consul, ca, httpsUrl } = await tlsConsul(t, 10);
  const scope = testScope();
  const names = Array.from({ length: 50 }, (_, i) => scope.name(`w${i}`));
  const node = (n: number) => scope.name(`wnode${n}`);
  const port = (i: number, n: number) => 16_000 + n * 100 + i;
  let balancer: BalancerProcess | undefined;
  t.after(async () => {
    await balancer?.stop(10_000);
  });
  for (const n of [1, 2]) await consulPut(consul, '/v1/catalog/register', { Node: node(n), Address: '127.0.0.1', Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' } });
  for (const [i, name] of names.entries()) {
    for (const n of [1, 2]) await consulPut(consul, '/v1/catalog/register', { Node: node(n), Address: '127.0.0.1', SkipNodeUpdate: true, Service: { ID: `${name}-${n}`, Service: name, Address: '127.0.0.1', Port: port(i, n) } });
  }
  balancer = spawnBalancer(['--consul', httpsUrl, '--consul-watch', 'per-service', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--consul-wait', '10s', '--log-level', 'info'],
    { NODE_EXTRA_CA_CERTS: ca.certPath });
  const b = balancer;
  const started = await b.waitForLog((l) => l.msg === 'balancer started', 60_000, 'balancer started').catch((err: Error) => {
    throw new Error(`${err.message}; last lines: ${b.logs.slice(-3).map((l) => JSON.stringify(l)).join(' | ')}`);
  });
  const adminPort = Number(started.adminPort);
  const prefix = scope.name('w');
  const routed = async (name: string) => (await workerRoutings(adminPort, prefix)).map((w) => (w.get(name) ?? []).join(' '));
  const everyWorker = (wantText: string) => async (name: string) => {
    const want = wantText.split(' ').sort().join(' ');
    const got = await routed(name);
    return got.length === 2 && got.every((g) => g === want);
  };
  await until('every worker routes both nodes of every service', async () => {
    const workers = await workerRoutings(adminPort, prefix);
    return workers.length === 2 && workers.every((w) => names.every((s) => (w.get(s) ?? []).length === 2));
  }, 30_000, 50);

  // a registration of a new service
  const fresh = scope.name('wnew');
  await consulPut(consul, '/v1/catalog/register', { Node: node(1), Address: '127.0.0.1', SkipNodeUpdate: true, Service: { ID: `${fresh}-1`, Service: fresh, Address: '127.0.0.1', Port: 16_900 } });
  await until('the new service in every worker', () => everyWorker('127.0.0.1:16900')(fresh), 10_000, 20);

  // one instance out and another in at once (count unchanged), under 10 KV writes/s
  const moved = names[7];
  await consulPut(consul, '/v1/catalog/deregister', { Node: node(1), ServiceID: `${moved}-1` });
  await consulPut(consul, '/v1/catalog/register', { Node: node(1), Address: '127.0.0.1', SkipNodeUpdate: true, Service: { ID: `${moved}-1b`, Service: moved, Address: '127.0.0.1', Port: 16_950 } });
  const t1 = Date.now();
  await until('the moved instance in every worker, the old one out', () => everyWorker(`127.0.0.1:16950 127.0.0.1:${port(7, 2)}`)(moved), 10_000, 20);
  t.diagnostic(`count-preserving move in both workers in ${Date.now() - t1} ms`);

  // a check flap: a service check critical takes the instance out, passing brings it back
  const flapped = names[9];
  await consulPut(consul, '/v1/catalog/register', { Node: node(2), Address: '127.0.0.1', SkipNodeUpdate: true, Check: { CheckID: `${flapped}-chk`, Name: 'flap', ServiceID: `${flapped}-2`, Status: 'critical' } });
  await until('the critical instance out of every worker', () => everyWorker(`127.0.0.1:${port(9, 1)}`)(flapped), 10_000, 20);
  await consulPut(consul, '/v1/catalog/register', { Node: node(2), Address: '127.0.0.1', SkipNodeUpdate: true, Check: { CheckID: `${flapped}-chk`, Name: 'flap', ServiceID: `${flapped}-2`, Status: 'passing' } });
  await until('the passing instance back in every worker', () => everyWorker(`127.0.0.1:${port(9, 1)} 127.0.0.1:${port(9, 2)}`)(flapped), 10_000, 20);

  // node 2 leaves: every service's instance on it at one index
  const t0 = Date.now();
  await consulPut(consul, '/v1/catalog/deregister', { Node: node(2) });
  let last: number[] = [];
  await until('node 2 gone from every worker', async () => {
    const workers = await workerRoutings(adminPort, prefix);
    last = workers.map((w) => names.filter((s, i) => (w.get(s) ?? []).includes(`127.0.0.1:${port(i, 2)}`)).length);
    return last.length === 2 && last.every((n) => n === 0);
  }, 10_000, 20).catch((err: Error) => {
    throw new Error(`${err.message}: services still routed to node 2, per worker: ${last.join(', ')} of 50`);
  });
  t.diagnostic(`node leave out of both workers' tables in ${Date.now() - t0} ms`);
  assert.equal(b.logs.filter((l) => l.msg === 'consul rescan').length, 0, 'no rescan: there is no index accounting in this mode');
});
