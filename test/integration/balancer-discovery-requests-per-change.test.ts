// Consul requests per change: every change the signals can see costs discovery at most 3 requests
// (the two signal answers and one read of the service), whatever the size of the catalog: a
// registration (check starts critical), the check passing, a health flip, a new service, a removed
// service, a drained instance (maintenance) then deregistered, a passing instance of a service changed
// lately deregistered. A deletion costs at most 5 (the summary too: one deletion index may cover many
// services, a node leaving), and so does the one change no signal names (a passing instance of a quiet
// service deregistered without drain): the catalog summary names the service.
// Besides those, every explained change is followed by a background sweep (explain-step.ts `verify`):
// one raft index may write services no read names (a /v1/txn), so the services not read since are
// re-read. Those reads are counted apart (stats().sweepReads) and reported; the bound here is on what
// the change costs before it shows, and the sweep is the only rescan. Each sweep read of a service that
// did not change is a probe (its index only, an empty answer: follower-core.ts SWEEP_PROBE_FILTER).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { watchConsulCatalog, type CatalogWatcher } from '../../balancer/src/discovery/consul-catalog.js';
import { VERIFY_REASON } from '../../balancer/src/discovery/explain-step.js';
import type { CatalogSnapshot } from '../../balancer/src/routing/types.js';
import { consulPutOwnConnection } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

test('each change a signal sees costs at most 3 Consul requests, whatever the number of services', { timeout: 60_000 }, async (t) => {
  // a double of its own: counting requests per change needs an agent no other test changes meanwhile.
  // noise off, explicitly: this counts what the signals cost per catalog change; with KV/coordinate
  // writes between catalog writes (a live cluster, the double's default) every change also costs a
  // summary read today (DOUBLE-FINDINGS.md, issue 17 item 3, discovery's to fix)
  const consul = await consulForTest({ ownDouble: true, noise: false });
  const double = consul.double!;
  const scope = testScope();
  const ac = new AbortController();
  let watcher: CatalogWatcher | undefined;
  t.after(async () => {
    ac.abort();
    await watcher?.done;
    await scope.clean(consul);
    await consul.close();
  });
  // 60 quiet services x 2 instances: a rescan would cost 60 reads, plainly more than 3
  const quiet = Array.from({ length: 60 }, (_, i) => scope.name(`q${i}`));
  for (const [i, name] of quiet.entries()) {
    for (const k of [0, 1]) await consulPutOwnConnection(consul, '/v1/agent/service/register', { ID: `${name}-${k}`, Name: name, Address: '127.0.0.1', Port: 10_000 + i * 2 + k });
  }
  const web = scope.name('web');
  await consulPutOwnConnection(consul, '/v1/agent/service/register', { ID: scope.id('web-0'), Name: web, Address: '127.0.0.1', Port: 9000 });
  watcher = watchConsulCatalog({
    endpoint: { baseUrl: consul.url }, waitMs: 10_000, minQueryIntervalMs: 5, debounceMs: 2, maxConns: 16, resyncMs: 0,
    logger, onSnapshot: () => undefined,
  }, ac.signal);
  const w = watcher;
  await w.ready;

  const instances = (snap: CatalogSnapshot | undefined, name: string) => snap?.services[name] ?? [];
  const costs: Record<string, number> = {};
  /** runs one change; waits until the watcher shows it and both signals answered at its index and all is settled */
  const measure = async (what: string, change: () => Promise<void>, shows: (s: CatalogSnapshot | undefined) => boolean): Promise<number> => {
    await until(`settled before ${what}`, () => w.stats().settled, 5000, 10);
    const q0 = w.stats().queries - (w.stats().sweepReads ?? 0);
    const sweep0 = w.stats().sweepReads ?? 0;
    const probes0 = w.stats().sweepProbes ?? 0;
    const bytes0 = w.stats().bodyBytes;
    await change();
    const catalogAt = double.state.indexForCatalogServices();
    const checksAt = double.state.indexForChecks();
    await until(`${what} seen`, () => {
      const s = w.stats();
      return shows(w.current()) && s.settled && s.indexes.catalog >= catalogAt && s.indexes.checks >= checksAt;
    }, 10_000, 10);
    const cost = w.stats().queries - (w.stats().sweepReads ?? 0) - q0;
    costs[what] = cost;
    const sweep = (w.stats().sweepReads ?? 0) - sweep0;
    const probes = (w.stats().sweepProbes ?? 0) - probes0;
    t.diagnostic(`${what}: ${cost} requests + ${sweep} sweep reads (${probes} of them probes), ${w.stats().bodyBytes - bytes0} bytes`);
    // the quiet services did not change: each sweep read of one asks for its index only (an empty answer)
    assert.equal(probes, sweep, `${what}: every sweep read a probe`);
    return cost;
  };

  const id1 = scope.id('web-1');
  const checks = [
    await measure('register (check starts critical)', () => consulPutOwnConnection(consul, '/v1/agent/service/register', { ID: id1, Name: web, Address: '127.0.0.1', Port: 9001, Check: { TTL: '60s' } }),
      (s) => instances(s, web).some((i) => i.serviceId === id1 && i.status === 'critical')),
    await measure('check passes', () => consulPutOwnConnection(consul, `/v1/agent/check/pass/service:${id1}`),
      (s) => instances(s, web).some((i) => i.serviceId === id1 && i.status === 'passing')),
    await measure('health flip to critical', () => consulPutOwnConnection(consul, `/v1/agent/check/fail/service:${id1}`),
      (s) => instances(s, web).some((i) => i.serviceId === id1 && i.status === 'critical')),
    await measure('health flip to passing', () => consulPutOwnConnection(consul, `/v1/agent/check/pass/service:${id1}`),
      (s) => instances(s, web).some((i) => i.serviceId === id1 && i.status === 'passing')),
    await measure('new service', () => consulPutOwnConnection(consul, '/v1/agent/service/register', { ID: scope.id('api-0'), Name: scope.name('api'), Address: '127.0.0.1', Port: 9100, Check: { TTL: '60s' } }),
      (s) => instances(s, scope.name('api')).length === 1),
    await measure('removed service', () => consulPutOwnConnection(consul, `/v1/agent/service/deregister/${scope.id('api-0')}`),
      (s) => s !== undefined && !(scope.name('api') in s.services)),
    await measure('drain (maintenance on)', () => consulPutOwnConnection(consul, `/v1/agent/service/maintenance/${id1}?enable=true&reason=drain`),
      (s) => instances(s, web).some((i) => i.serviceId === id1 && i.status === 'critical')),
    await measure('drained instance deregistered', () => consulPutOwnConnection(consul, `/v1/agent/service/deregister/${id1}`),
      (s) => !instances(s, web).some((i) => i.serviceId === id1)),
  ];
  // a passing instance of a service changed lately, deregistered without drain: the signals cannot
  // name it, the most recently changed service is read first
  const id2 = scope.id('web-2');
  await measure('register (passing at once)', () => consulPutOwnConnection(consul, '/v1/agent/service/register', { ID: id2, Name: web, Address: '127.0.0.1', Port: 9002, Check: { TTL: '60s', Status: 'passing' } }),
    (s) => instances(s, web).some((i) => i.serviceId === id2));
  checks.push(await measure('passing instance of a service changed lately deregistered', () => consulPutOwnConnection(consul, `/v1/agent/service/deregister/${id2}`),
    (s) => !instances(s, web).some((i) => i.serviceId === id2)));
  // a deletion is named by no instance, only by the service's own index, and one deletion may remove
  // instances of many services (a node leaving: deleteNodeTxn, one index): the summary checks the rest
  const deletions = new Set(['removed service', 'drained instance deregistered', 'passing instance of a service changed lately deregistered']);
  for (const [what, cost] of Object.entries(costs)) {
    if (what === 'register (passing at once)') continue;
    const most = deletions.has(what) ? 5 : 3;
    assert.ok(cost <= most, `${what}: ${cost} requests (at most ${most})`);
  }
  assert.equal(checks.length, 9);

  // the change no signal names: the catalog answer, the checks answer, one guess (the service changed
  // last), the catalog summary and the read of the service whose instance count differs; no rescan
  // but the sweeps
  const cold = await measure('passing instance of a quiet service deregistered (no drain)', () => consulPutOwnConnection(consul, `/v1/agent/service/deregister/${quiet[30]}-1`),
    (s) => instances(s, quiet[30]).length === 1);
  assert.ok(cold <= 5, `cold deregistration: ${cold} requests (at most 5; a rescan is ${quiet.length + 2})`);
  assert.deepEqual(Object.keys(w.stats().rescanReasons), [VERIFY_REASON], 'no rescan but the sweeps behind explained windows');
});
