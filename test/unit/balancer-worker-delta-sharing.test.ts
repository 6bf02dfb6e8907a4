// A worker applying a delta shares every unchanged upstream with its current table: the new table's
// record is not made per delta (only when read whole), unchanged entries keep their identity, and the
// table stays frozen and equal to the one a full apply would give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
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
