// One /v1/catalog/services answer may cover several writes. Here it covers the deregistration of a
// passing instance of a quiet service (no signal names it) and a registration elsewhere that the
// checks signal names: reading the second must not make the first look explained, or the deregistered
// instance stays in the table. The next catalog query is held on the client side (a gate in front of
// the watcher's dispatcher) while both writes happen, so the one answer surely covers both, against
// the double or a real agent alike. Also: a passing instance registered to a quiet service without
// checks (no signal names it either) is found by the catalog summary, at a bounded cost.  Then the same held
// answer with a write in it that no read names: an ID of a quiet service re-registered on another port
// (count-preserving, no check), and plain KV noise. On plain HTTP the two look the same, so each costs
// one rescan of the services not read since (the divergence of the randomized follower test, seeds
// 1926614422, 442435732, 499546337: the old rule took the port move for noise and kept the old port for
// good). A double of its own with the index noise off: the cheap paths are counted where every write is
// one a read can name (with noise, a KV write in the window costs the rescan below); the noise cases
// make their noise themselves. Every explained window is also followed by a background sweep of the
// services not read since (explain-step.ts `verify`: one index may write services no read names, a
// /v1/txn); its reads are counted apart (sweepReads) and it is the only other rescan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Agent } from 'undici';
import { watchConsulCatalog, type CatalogWatcher } from '../../balancer/src/discovery/consul-catalog.js';
import { VERIFY_REASON } from '../../balancer/src/discovery/explain-step.js';
import { CatalogGate } from '../support/catalog-gate.js';
import { consulForTest, testScope } from '../support/consul.js';
import { consulPut } from '../support/consul-http.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

test('a catalog answer covering a quiet deregistration and a signalled registration drops the deregistered instance', { timeout: 60_000 }, async (t) => {
  const consul = await consulForTest({ ownDouble: true, noise: false });
  const scope = testScope();
  const ac = new AbortController();
  const inner = new Agent({ connections: 16 });
  const gate = new CatalogGate(inner);
  let watcher: CatalogWatcher | undefined;
  t.after(async () => {
    gate.release();
    ac.abort();
    await watcher?.done;
    await inner.close();
    await scope.clean(consul);
    await consul.close();
  });
  // 40 quiet services x 2 instances without checks: a rescan would cost 40 reads
  const quiet = Array.from({ length: 40 }, (_, i) => scope.name(`q${i}`));
  for (const [i, name] of quiet.entries()) {
    for (const k of [0, 1]) await consulPut(consul, '/v1/agent/service/register', { ID: `${name}-${k}`, Name: name, Address: '127.0.0.1', Port: 11_000 + i * 2 + k });
  }
  const web = scope.name('web');
  await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('web-0'), Name: web, Address: '127.0.0.1', Port: 9000 });
  watcher = watchConsulCatalog({
    endpoint: { baseUrl: consul.url, dispatcher: gate }, waitMs: 10_000, minQueryIntervalMs: 5, debounceMs: 2, maxConns: 16, resyncMs: 0,
    logger, onSnapshot: () => undefined,
  }, ac.signal);
  const w = watcher;
  await w.ready;
  const count = (name: string) => w.current()?.services[name]?.length ?? 0;
  const ids = (name: string) => (w.current()?.services[name] ?? []).map((i) => i.serviceId);
  await until('settled', () => w.stats().settled, 5000);

  // hold the next catalog query; the one at the agent answers the trigger write
  gate.holding = true;
  const trigger = scope.id('web-1');
  await consulPut(consul, '/v1/agent/service/register', { ID: trigger, Name: web, Address: '127.0.0.1', Port: 9001, Check: { TTL: '60s' } });
  await until('the catalog query after the trigger held', () => gate.held.length === 1, 10_000);
  await until('the trigger seen', () => ids(web).includes(trigger), 10_000);
  // and the sweep behind its window done: its reads would see the deregistration below early
  await until('the sweep after the trigger done', () => w.stats().settled, 10_000);
  const catalogBefore = w.stats().indexes.catalog;

  // both writes while that query is held: its one answer covers both
  const gone = `${quiet[7]}-1`;
  const added = scope.id('web-2');
  await consulPut(consul, `/v1/agent/service/deregister/${encodeURIComponent(gone)}`);
  await consulPut(consul, '/v1/agent/service/register', { ID: added, Name: web, Address: '127.0.0.1', Port: 9002, Check: { TTL: '60s' } });
  // the checks signal names the registration and reads it; the catalog index has not moved yet
  await until('the registration read through the checks signal', () => ids(web).includes(added), 10_000);
  assert.equal(gate.held.length, 1, 'the catalog query is still held');
  assert.equal(w.stats().indexes.catalog, catalogBefore, 'no catalog answer arrived meanwhile');
  assert.equal(count(quiet[7]), 2, 'the deregistration is not seen before the catalog answer');

  const sweepReads = () => w.stats().sweepReads ?? 0;
  const onlySweeps = () => Object.keys(w.stats().rescanReasons).filter((r) => r !== VERIFY_REASON);
  const q0 = w.stats().queries - sweepReads();
  gate.release();
  await until(`${gone} dropped`, () => !ids(quiet[7]).includes(gone) && w.stats().settled, 10_000);
  const cost = w.stats().queries - sweepReads() - q0;
  t.diagnostic(`coalesced answer explained with ${cost} requests (rescans: ${JSON.stringify(w.stats().rescanReasons)}, summaries ${w.stats().summaries})`);
  assert.deepEqual(ids(quiet[7]), [`${quiet[7]}-0`]);
  // the catalog answer, the summary, the read of the quiet service, and maybe one guess: not a rescan
  assert.ok(cost <= 6, `${cost} requests (a rescan is ${quiet.length + 3})`);
  assert.deepEqual(onlySweeps(), []);

  // a passing instance registered to a quiet service, no checks: only the catalog moves
  const q1 = w.stats().queries - sweepReads();
  const extra = `${quiet[20]}-2`;
  await consulPut(consul, '/v1/agent/service/register', { ID: extra, Name: quiet[20], Address: '127.0.0.1', Port: 11_900 });
  await until(`${extra} seen`, () => ids(quiet[20]).includes(extra) && w.stats().settled, 10_000);
  const coldRegistration = w.stats().queries - sweepReads() - q1;
  t.diagnostic(`cold registration: ${coldRegistration} requests`);
  assert.ok(coldRegistration <= 6, `${coldRegistration} requests (a rescan is ${quiet.length + 3})`);
  assert.deepEqual(onlySweeps(), []);

  /** Holds the catalog query, makes `writes` between two registrations the checks signal names, releases. */
  let serial = 3;
  const heldAnswer = async (writes: () => Promise<void>): Promise<number> => {
    await until('settled', () => w.stats().settled, 10_000);
    gate.holding = true;
    const named = scope.id(`web-${serial++}`);
    await consulPut(consul, '/v1/agent/service/register', { ID: named, Name: web, Address: '127.0.0.1', Port: 9000 + serial, Check: { TTL: '60s' } });
    await until('the catalog query held', () => gate.held.length === 1, 10_000);
    await until('the named registration read', () => ids(web).includes(named), 10_000);
    const q = w.stats().queries - sweepReads();
    await writes();
    const named2 = scope.id(`web-${serial++}`);
    await consulPut(consul, '/v1/agent/service/register', { ID: named2, Name: web, Address: '127.0.0.1', Port: 9000 + serial, Check: { TTL: '60s' } });
    await until('the second named registration read', () => ids(web).includes(named2), 10_000);
    gate.release();
    return q;
  };
  const rescansOf = (reason: string) => w.stats().rescanReasons[reason] ?? 0;
  const GAP = 'write no read names inside a catalog answer';

  // the divergence: quiet[12]-0 moves to another port inside the answer whose later write a read names
  const moved = `${quiet[12]}-0`;
  const ports = () => (w.current()?.services[quiet[12]] ?? []).map((i) => i.port).sort();
  const q2 = await heldAnswer(() => consulPut(consul, '/v1/agent/service/register', { ID: moved, Name: quiet[12], Address: '127.0.0.1', Port: 11_950 }));
  await until(`${moved} seen on its new port`, () => ports().includes(11_950) && w.stats().settled, 10_000);
  const moveCost = w.stats().queries - sweepReads() - q2;
  t.diagnostic(`count-preserving move inside a named answer: ${moveCost} requests (rescans: ${JSON.stringify(w.stats().rescanReasons)})`);
  assert.deepEqual(ports(), [11_000 + 12 * 2 + 1, 11_950]);
  assert.equal(rescansOf(GAP), 1);
  // one rescan: the quiet services once each, not more
  assert.ok(moveCost <= quiet.length + 10, `${moveCost} requests (one rescan is ${quiet.length + 3})`);

  // plain KV noise in the same place costs the same: nothing on plain HTTP tells it from the move
  const q3 = await heldAnswer(() => consulPut(consul, `/v1/kv/${scope.tag}/noise`, 'x'));
  await until('settled after the noise', () => rescansOf(GAP) === 2 && w.stats().settled, 10_000);
  const noiseCost = w.stats().queries - sweepReads() - q3;
  t.diagnostic(`KV write inside a named answer: ${noiseCost} requests`);
  assert.ok(noiseCost <= quiet.length + 10, `${noiseCost} requests (one rescan is ${quiet.length + 3})`);
});
