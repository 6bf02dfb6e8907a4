// A worker applying a delta shares every unchanged upstream with its current table: the new table's
// record is not made per delta (only when read whole), unchanged entries keep their identity, and the
// table stays frozen and equal to the one a full apply would give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerHealth } from '../../balancer/src/health/peer-health.js';
import { compileTable } from '../../balancer/src/proxy/compiled-table.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { SharedMap } from '../../balancer/src/routing/shared-map.js';
import { applyDelta, makeDelta } from '../../balancer/src/routing/table-delta.js';
import { upstreamCount, upstreamOf, viewOf } from '../../balancer/src/routing/table-upstreams.js';
import type { RouteTable, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';

const srv = (port: number): ServerSpec => ({ id: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, maxFails: 2, failTimeoutMs: 1000, down: false, backup: false });
const up = (name: string, ports: number[]): UpstreamSpec => ({
  name, algorithm: 'roundrobin', servers: ports.map(srv), origin: 'consul', retry: { tries: 2, timeoutMs: 0, onStatuses: [502], nonIdempotent: false },
});

function start(n: number): RouteTable {
  const u: Record<string, UpstreamSpec> = {};
  for (let i = 0; i < n; i++) u[`s${i}`] = up(`s${i}`, [10_000 + i]);
  // as a worker gets it: plain JSON over IPC
  return JSON.parse(JSON.stringify(tableFromUpstreams(u, []))) as RouteTable;
}

test('applyDelta: unchanged upstreams keep identity, the record is made only when read, the result equals a full table', () => {
  const t0 = start(100);
  const before = t0.upstreams;
  let cur = t0;
  const expected = { ...t0.upstreams } as Record<string, UpstreamSpec>;
  for (let i = 0; i < 20; i++) {
    const name = i % 5 === 4 ? `n${i}` : `s${i}`;
    expected[name] = up(name, [20_000 + i]);
    const removed = i % 7 === 6 ? [`s${50 + i}`] : [];
    for (const r of removed) delete expected[r];
    const r = applyDelta(cur, { from: cur.version, to: `v${i}`, upserted: [up(name, [20_000 + i])], removed });
    assert.ok(r.ok);
    assert.ok(Object.isFrozen(r.table), 'the table is frozen');
    assert.equal(viewOf(r.table)?.made, false, `delta ${i}: no record made`);
    assert.equal(upstreamOf(r.table, 's99'), before.s99, 'an unchanged upstream is the same object');
    assert.equal(upstreamOf(r.table, name)?.servers[0].port, 20_000 + i);
    for (const n of removed) assert.equal(upstreamOf(r.table, n), undefined, `${n} removed`);
    assert.ok(Object.isFrozen(upstreamOf(r.table, name)), 'an upserted upstream is frozen');
    cur = r.table;
  }
  assert.equal(t0.upstreams, before, 'the previous table is untouched');
  assert.equal(upstreamCount(cur), Object.keys(expected).length);
  // read whole: sorted names, frozen, the same unchanged objects
  const rec = cur.upstreams;
  assert.ok(Object.isFrozen(rec));
  assert.deepEqual(Object.keys(rec), Object.keys(expected).sort());
  assert.equal(rec.s99, before.s99);
  assert.deepEqual(JSON.parse(JSON.stringify(cur)), JSON.parse(JSON.stringify({ version: cur.version, upstreams: tableFromUpstreams(expected, []).upstreams, routes: [] })));
  assert.equal(cur.upstreams, rec, 'made once');
});

test('applyDelta: a gap is reported, a removed unknown name is ignored, an upsert beside its removal wins', () => {
  const t0 = start(3);
  const gap = applyDelta(t0, { from: 'other', to: 'x', upserted: [], removed: [] });
  assert.deepEqual(gap, { ok: false, reason: 'gap', have: t0.version });
  const r = applyDelta(t0, { from: t0.version, to: 'v1', upserted: [up('s1', [1])], removed: ['nope', 's1', 's2'] });
  assert.ok(r.ok);
  assert.deepEqual(Object.keys(r.table.upstreams), ['s0', 's1']);
  assert.equal(r.table.upstreams.s1.servers[0].port, 1);
  // makeDelta of two delta-made tables reads them without making records
  const r2 = applyDelta(r.table, { from: 'v1', to: 'v2', upserted: [up('s0', [2])], removed: [] });
  assert.ok(r2.ok);
  const d = makeDelta(r.table, r2.table, ['s0'], []);
  assert.deepEqual(d.upserted.map((u) => u.servers[0].port), [2]);
  assert.equal(viewOf(r2.table)?.made, false);
});

test('SharedMap: a changed map reads as a copied-and-changed Map, the original is untouched, long runs flatten', () => {
  const m0 = new Map<string, number>([['a', 1], ['b', 2], ['c', 3]]);
  const s0 = SharedMap.of(m0);
  const s1 = s0.with(new Map([['b', 20], ['c', undefined], ['d', 4], ['zz', undefined]]));
  const model = new Map(m0);
  model.set('b', 20);
  model.delete('c');
  model.set('d', 4);
  assert.deepEqual([...s1], [...model], 'same entries, same order');
  assert.equal(s1.size, 3);
  assert.equal(s1.has('c'), false);
  assert.equal(s1.get('zz'), undefined);
  assert.deepEqual([...s0], [...m0], 'the first map is untouched');
  assert.deepEqual([...s1.keys()], ['a', 'b', 'd']);
  let cur = s1;
  for (let i = 0; i < 600; i++) {
    cur = cur.with(new Map([[`k${i}`, i], ...(i % 3 === 0 ? [[`k${i - 1}`, undefined] as [string, undefined]] : [])]));
    model.set(`k${i}`, i);
    if (i % 3 === 0) model.delete(`k${i - 1}`);
  }
  assert.deepEqual([...cur], [...model]);
  assert.equal(cur.size, model.size);
});

test('compileTable with a delta: unchanged pickers, spec keys and routes are the previous objects; the table record is not made', () => {
  const t0 = start(200);
  const h = new PeerHealth();
  h.retain(t0, 0);
  const env = { random: () => 0.5, now: () => 0 };
  let c = compileTable(t0, undefined, h, env);
  const first = c;
  for (let i = 0; i < 300; i++) {
    const name = `s${i % 150}`;
    const r = applyDelta(c.table, { from: c.table.version, to: `v${i}`, upserted: [up(name, [30_000 + i])], removed: i === 10 ? ['s199'] : [] });
    assert.ok(r.ok);
    const names = new Set([name, ...(i === 10 ? ['s199'] : [])]);
    const next = compileTable(r.table, c, h, env, undefined, names);
    h.retainChanged(c.table, r.table, names, i);
    assert.equal(viewOf(r.table)?.made, false, `delta ${i}: compile and health did not make the record`);
    assert.equal(next.pickers.get('s190'), first.pickers.get('s190'), 'an unchanged picker is shared');
    assert.equal(next.router.match('s190', '/'), first.router.match('s190', '/'), 'an unchanged route is shared');
    assert.notEqual(next.pickers.get(name), c.pickers.get(name), `${name}: new picker`);
    assert.equal(next.router.match(name, '/')?.upstream.servers[0].port, 30_000 + i);
    c = next;
  }
  assert.equal(c.router.match('s199', '/'), undefined, 's199 removed');
  assert.equal(first.router.match('s199', '/')?.upstream, t0.upstreams.s199, 'the first router is intact');
  const full = compileTable(c.table, undefined, new PeerHealth(), env);
  assert.deepEqual([...c.specKeys].sort(), [...full.specKeys].sort(), 'spec keys equal a full compile');
  assert.deepEqual([...c.pickers.keys()].sort(), [...full.pickers.keys()].sort());
});
