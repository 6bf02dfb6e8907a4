// The primary's work per table change is the changed services', not the catalog's: the shared active
// checker and the metrics' live view look only at the upstreams a change names (asserted by reading
// the table through a proxy that records every key looked at), the table holder's change never makes
// a new upstream record (unchanged upstreams are shared, the record is made when read), and what
// each ends up with equals a full build / full apply of the same input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { ActiveChecker } from '../../balancer/src/health/active-checker.js';
import { SharedActiveChecker } from '../../balancer/src/health/shared-checker.js';
import { BalancerMetrics, liveServers } from '../../balancer/src/metrics/balancer-metrics.js';
import { buildRouteTable, tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { makeDelta, type TableDelta } from '../../balancer/src/routing/table-delta.js';
import { TableHolder, type TableChange } from '../../balancer/src/routing/table-holder.js';
import { upstreamCount, upstreamOf, UpstreamsView, viewOf } from '../../balancer/src/routing/table-upstreams.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import { deepFreeze } from '../../balancer/src/routing/table-version.js';
import type { ActiveCheckSpec, CatalogInstance, CatalogSnapshot, RouteTable, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';
import { mulberry32 } from '../support/fuzz.js';

const logger = pino({ level: 'silent' });
// probes never fire in these tests: the first one is an hour away (timers are unref'd)
const CHECK: ActiveCheckSpec = { type: 'tcp', path: '', intervalMs: 3_600_000, timeoutMs: 1000, rise: 2, fall: 3, expectStatuses: [] };
const OTHER_CHECK: ActiveCheckSpec = { ...CHECK, rise: 5 };
const srv = (port: number): ServerSpec => ({ id: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, maxFails: 1, failTimeoutMs: 1000, down: false, backup: false });
const up = (name: string, ports: number[], check: ActiveCheckSpec | 'none' = CHECK): UpstreamSpec => ({
  name, algorithm: 'roundrobin', servers: ports.map(srv), origin: 'consul', retry: { tries: 1, timeoutMs: 0, onStatuses: [], nonIdempotent: false }, ...(check !== 'none' ? { check } : {}),
});

function catalog(n: number): Record<string, UpstreamSpec> {
  const out: Record<string, UpstreamSpec> = {};
  for (let i = 0; i < n; i++) out[`s${i}`] = up(`s${i}`, [10_000 + i * 3, 10_001 + i * 3, 10_002 + i * 3], i % 5 === 4 ? 'none' : CHECK);
  return out;
}

/** The same table whose upstreams record every name looked at, and whether they were listed. */
function recording(table: RouteTable): { table: RouteTable; read: Set<string>; listed: () => number } {
  const read = new Set<string>();
  let listed = 0;
  const upstreams = new Proxy(table.upstreams, {
    get: (t, k, r) => { if (typeof k === 'string') read.add(k); return Reflect.get(t, k, r); },
    has: (t, k) => { if (typeof k === 'string') read.add(k); return Reflect.has(t, k); },
    getOwnPropertyDescriptor: (t, k) => { if (typeof k === 'string') read.add(k); return Reflect.getOwnPropertyDescriptor(t, k); },
    ownKeys: (t) => { listed++; return Reflect.ownKeys(t); },
  });
  return { table: { ...table, upstreams }, read, listed: () => listed };
}

/** A table sharing every upstream object it is given (as the incremental builder's tables do). */
function derive(upstreams: Record<string, UpstreamSpec>): RouteTable {
  for (const u of Object.values(upstreams)) deepFreeze(u);
  return Object.freeze({ version: `v${++versions}`, upstreams: Object.freeze(upstreams), routes: Object.freeze([]) });
}
let versions = 0;

/** s3 gains a server, s8 goes, n1 comes: the holder's TableChange for it */
function oneChange(prev: RouteTable): { next: RouteTable; upserted: string[]; removed: string[] } {
  const u = { ...prev.upstreams } as Record<string, UpstreamSpec>;
  u.s3 = up('s3', [...prev.upstreams.s3.servers.map((s) => s.port), 40_000]);
  delete u.s8;
  u.n1 = up('n1', [50_000, 10_000]);
  return { next: derive(u), upserted: ['n1', 's3'], removed: ['s8'] };
}

test('shared active checker: a change is applied by looking at the upstreams it names only; states equal a full apply', () => {
  const t0 = tableFromUpstreams(catalog(2000), []);
  const inc = new SharedActiveChecker({ logger, broadcast: () => undefined });
  const full = new SharedActiveChecker({ logger, broadcast: () => undefined });
  try {
    inc.apply(t0);
    const { next, upserted, removed } = oneChange(t0);
    const rec = recording(next);
    inc.apply(rec.table, { previous: t0, upserted, removed });
    assert.equal(rec.listed(), 0, 'the table was not listed');
    assert.deepEqual([...rec.read].filter((k) => !['n1', 's3', 's8'].includes(k)), [], 'only the changed upstreams were read');
    full.apply(next);
    const sorted = (c: SharedActiveChecker) => c.states().sort((a, b) => (a.id < b.id ? -1 : 1));
    assert.deepEqual(sorted(inc), sorted(full));
    assert.deepEqual(inc.stats(), full.stats());
    // 1,600 services with a check x 3 servers, s8's 3 gone, s3's new one and n1's new one (10000 was s0's already)
    assert.equal(inc.stats().servers, 1600 * 3 - 3 + 1 + 1);
  } finally {
    inc.stop();
    full.stop();
  }
});

test('shared active checker: a change that does not follow the applied table falls back to a full look', () => {
  const t0 = tableFromUpstreams(catalog(50), []);
  const c = new SharedActiveChecker({ logger, broadcast: () => undefined });
  try {
    c.apply(t0);
    const { next, upserted, removed } = oneChange(t0);
    const second = oneChange(next);
    // the checker missed `next`: the change from next to second.next names too little for it
    const rec = recording(second.next);
    c.apply(rec.table, { previous: next, upserted: second.upserted, removed: second.removed });
    assert.ok(rec.listed() > 0, 'a full look lists the table');
    const fresh = new SharedActiveChecker({ logger, broadcast: () => undefined });
    fresh.apply(second.next);
    assert.deepEqual(c.stats(), fresh.stats());
    fresh.stop();
    void upserted;
    void removed;
  } finally {
    c.stop();
  }
});

test('active checker: 300 random changes applied incrementally leave the loops a full apply makes; servers shared by upstreams probed once', () => {
  const rand = mulberry32(8);
  const pick = (n: number) => Math.floor(rand() * n);
  let table = tableFromUpstreams(catalog(40), []);
  const inc = new ActiveChecker({ logger, sink: { onActiveResult: () => undefined } });
  inc.apply(table);
  try {
    for (let step = 0; step < 300; step++) {
      const u = { ...table.upstreams } as Record<string, UpstreamSpec>;
      const names: string[] = [];
      for (let k = 0; k < 1 + pick(3); k++) {
        const name = `s${pick(50)}`;
        names.push(name);
        const r = rand();
        // ports from a small range, so upstreams share servers; checks come, go and change
        if (r < 0.2) delete u[name];
        else u[name] = up(name, Array.from({ length: pick(4) }, () => 10_000 + pick(60)), r < 0.35 ? 'none' : r < 0.5 ? OTHER_CHECK : CHECK);
      }
      const next = derive(u);
      const upserted = names.filter((n) => Object.hasOwn(next.upstreams, n));
      const removed = names.filter((n) => !Object.hasOwn(next.upstreams, n));
      inc.apply(next, { previous: table, upserted, removed });
      table = next;
      const full = new ActiveChecker({ logger, sink: { onActiveResult: () => undefined } });
      full.apply(table);
      assert.equal(inc.size, full.size, `step ${step}: loops`);
      full.stop();
    }
  } finally {
    inc.stop();
  }
});

test('metrics live view: a table change walks nothing; the store reads only the services it holds figures for', () => {
  const t0 = tableFromUpstreams(catalog(3000), []);
  const metrics = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: [0.1, 1], maxServersPerService: 100 }, {
    mode: 'dynamic', table: () => ({ version: t0.version, swaps: 0, upstreams: 0 }), workers: () => ({ generation: 1, workersAlive: 1, workersReady: 1, restarts: 0, reloads: 0 }),
  });
  const rec = recording(t0);
  metrics.retainLive(rec.table);
  metrics.store.tick();
  assert.equal(rec.listed(), 0, 'the table was not listed');
  assert.deepEqual([...rec.read], [], 'an empty store reads no service');
  // figures for s5 (live) and gone1 (not in the table): the tick reads those two names, nothing else
  for (const name of ['s5', 'gone1']) {
    metrics.store.addDelta({ bucketsSeconds: [0.1, 1], services: [{ name, retries: 0, series: [[200, 'GET', 'http', 1, 0, 10, 0.005, [1, 0, 0]]], servers: [['127.0.0.1:10015', 1, 0, 5, [3, 1]]] }], scripts: [] });
  }
  metrics.store.tick();
  assert.deepEqual([...rec.read].sort(), ['gone1', 's5']);
  assert.equal(rec.listed(), 0);
  assert.ok(metrics.store.services.get('s5')?.servers.has('127.0.0.1:10015'), 'the live server keeps its figures');
  // the view answers as a map of the table would
  const view = liveServers(t0);
  assert.equal(view.size, 3000);
  assert.deepEqual([...view.get('s7')!].sort(), ['127.0.0.1:10021', '127.0.0.1:10022', '127.0.0.1:10023']);
  assert.equal(view.get('nope'), undefined);
  assert.equal(view.has('s2999'), true);
  // the same (shared, frozen) upstream gives the same id set: made once, not per table
  const { next } = oneChange(t0);
  assert.equal(liveServers(next).get('s7'), view.get('s7'));
  metrics.stop();
});

test('table holder at 3,000 services: a change (build, version, diff, delta, checker, metrics) never makes the upstream record; unchanged upstreams keep identity; the version and the record equal a full build', () => {
  const inst = (service: string, port: number): CatalogInstance => ({ serviceId: `${service}-${port}`, service, node: 'n1', address: '127.0.0.1', port, tags: [], meta: {}, status: 'passing' });
  const services: Record<string, CatalogInstance[]> = {};
  for (let i = 0; i < 3000; i++) services[`s${i}`] = [inst(`s${i}`, 1000 + i), inst(`s${i}`, 5000 + i)];
  const defaults = { ...DEFAULT_TABLE_DEFAULTS, check: CHECK };
  const holder = new TableHolder({ defaults, logger, initialSnapshot: { services } });
  const checker = new SharedActiveChecker({ logger, broadcast: () => undefined });
  const metrics = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: [0.1, 1], maxServersPerService: 100 }, {
    mode: 'dynamic', table: () => holder.stats(), workers: () => ({ generation: 1, workersAlive: 1, workersReady: 1, restarts: 0, reloads: 0 }),
  });
  checker.apply(holder.current());
  const changes: TableChange[] = [];
  const deltas: TableDelta[] = [];
  // what primary.ts does with a change
  holder.subscribe((c) => metrics.retainLive(c.table, (name) => upstreamOf(c.table, name)));
  holder.subscribe((c) => checker.apply(c.table, c));
  holder.subscribe((c) => { changes.push(c); deltas.push(makeDelta(c.previous, c.table, c.upserted, c.removed)); });
  try {
    let snap: CatalogSnapshot = { services };
    // an instance added, a service removed, a service added: names change, the record still is not made
    const steps: [string, CatalogInstance[] | undefined][] = [['s42', [...services.s42, inst('s42', 9042)]], ['s7', undefined], ['new1', [inst('new1', 9500)]]];
    for (const [name, list] of steps) {
      const next = { ...snap.services } as Record<string, readonly CatalogInstance[]>;
      if (list) next[name] = list;
      else delete next[name];
      snap = { services: next };
      assert.equal(holder.setSnapshot(snap, new Set([name])), true);
      metrics.store.tick();
      assert.equal(holder.stats().upstreams, list ? 3000 : 2999);
      assert.equal(viewOf(holder.current())?.made, false, `after ${name}: the record was not made`);
    }
    assert.deepEqual(changes.map((c) => c.diff), [
      ['+ s42 127.0.0.1:9042 weight=1'],
      ['- upstream s7', '- s7 127.0.0.1:1007 weight=1', '- s7 127.0.0.1:5007 weight=1'],
      ['+ upstream new1', '+ new1 127.0.0.1:9500 weight=1'],
    ]);
    assert.deepEqual(deltas.map((d) => [d.upserted.map((u) => u.name), d.removed]), [[['s42'], []], [[], ['s7']], [['new1'], []]]);
    const first = changes[0].previous;
    const last = holder.current();
    for (const name of ['s0', 's41', 's43', 's2999']) assert.equal(upstreamOf(last, name), upstreamOf(first, name), `${name} shared`);
    assert.equal(upstreamOf(last, 's7'), undefined);
    // what a full build of the last snapshot gives, in name order
    const full = buildRouteTable({ snapshot: snap, adminUpstreams: {}, defaults }).table;
    assert.equal(last.version, full.version);
    assert.deepEqual(Object.keys(last.upstreams), Object.keys(full.upstreams));
    assert.deepEqual(last.upstreams, full.upstreams);
    assert.ok(Object.isFrozen(last) && Object.isFrozen(last.upstreams));
    assert.equal(upstreamCount(last), 3000);
    const fresh = new SharedActiveChecker({ logger, broadcast: () => undefined });
    fresh.apply(full);
    assert.deepEqual(checker.stats(), fresh.stats());
    fresh.stop();
  } finally {
    checker.stop();
    metrics.stop();
  }
});

test('upstreams view: 700 random upserts and removals (past the pending bound) read as a plain record would, in name order', () => {
  const rand = mulberry32(5);
  const ref: Record<string, UpstreamSpec> = {};
  for (let i = 0; i < 200; i++) ref[`u${String(i).padStart(3, '0')}`] = deepFreeze(up(`u${i}`, [i]));
  let view = UpstreamsView.of(Object.freeze({ ...ref }));
  for (let step = 0; step < 700; step++) {
    const changed = new Map<string, UpstreamSpec | undefined>();
    for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) {
      const name = `u${String(Math.floor(rand() * 260)).padStart(3, '0')}`;
      const spec = rand() < 0.3 ? undefined : deepFreeze(up(name, [step]));
      changed.set(name, spec);
      if (spec) ref[name] = spec;
      else delete ref[name];
    }
    view = view.with(changed);
    const probe = `u${String(Math.floor(rand() * 260)).padStart(3, '0')}`;
    assert.equal(view.get(probe), ref[probe], `step ${step}: ${probe}`);
    assert.equal(view.size, Object.keys(ref).length, `step ${step}: size`);
    // now and then someone reads the record (the next view starts from it)
    if (step % 37 === 0 || step === 699) {
      assert.deepEqual(Object.keys(view.record()), Object.keys(ref).sort(), `step ${step}: names in order`);
      assert.deepEqual(view.record(), ref);
    }
  }
});
