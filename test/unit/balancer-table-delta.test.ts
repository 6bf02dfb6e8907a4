// The delta protocol between primary and workers: a delta applies only to the table it names (gap
// otherwise), shares unchanged upstreams, and the result equals the primary's table; the supervisor's
// resync on a gap is exercised through the worker-main logic in balancer-cluster tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouteTable, IncrementalTableBuilder, tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { applyDelta, makeDelta } from '../../balancer/src/routing/table-delta.js';
import { changedUpstreamNames } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogInstance, CatalogSnapshot, ScriptSpec } from '../../balancer/src/routing/types.js';

const inst = (service: string, port: number, tags: string[] = []): CatalogInstance => ({
  serviceId: `${service}-${port}`, service, node: 'n1', address: '127.0.0.1', port, tags, meta: {}, status: 'passing',
});
function snapshot(n: number, extra: Record<string, CatalogInstance[]> = {}): CatalogSnapshot {
  const services: Record<string, CatalogInstance[]> = {};
  for (let i = 0; i < n; i++) services[`s${i}`] = [inst(`s${i}`, 1000 + i), inst(`s${i}`, 2000 + i)];
  return { services: { ...services, ...extra } };
}

test('delta: apply gives the primary\'s table (same version, same content), unchanged upstreams shared', () => {
  const b = new IncrementalTableBuilder(DEFAULT_TABLE_DEFAULTS);
  const base = snapshot(50);
  const t1 = b.build(base, {}).table;
  const next = { services: { ...base.services, s7: [inst('s7', 9999)], s60: [inst('s60', 6000, ['urlprefix-/sixty'])] } };
  delete (next.services as Record<string, unknown>).s3;
  const r = b.build(next, {});
  assert.deepEqual([...r.upserted].sort(), ['s60', 's7']);
  assert.deepEqual(r.removed, ['s3']);
  const delta = makeDelta(t1, r.table, r.upserted, r.removed);
  assert.equal(delta.upserted.length, 2);
  assert.ok(delta.routes, 'routes changed, so they travel');
  // over IPC the delta is JSON; the worker holds its own copy of t1
  const workerT1 = JSON.parse(JSON.stringify(t1));
  const applied = applyDelta(workerT1, JSON.parse(JSON.stringify(delta)));
  assert.ok(applied.ok);
  if (!applied.ok) return;
  assert.equal(applied.table.version, r.table.version);
  assert.deepEqual(JSON.parse(JSON.stringify(applied.table)), JSON.parse(JSON.stringify(r.table)));
  assert.equal(applied.table.upstreams.s10, workerT1.upstreams.s10, 'an untouched upstream is the same object');
  assert.ok(Object.isFrozen(applied.table) && Object.isFrozen(applied.table.upstreams) && Object.isFrozen(applied.table.upstreams.s7));
  // and equals a full build of the same input
  assert.equal(buildRouteTable({ snapshot: next, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS }).table.version, r.table.version);
});

test('delta: a worker on another version reports a gap and keeps its table; the full table resyncs it', () => {
  const b = new IncrementalTableBuilder(DEFAULT_TABLE_DEFAULTS);
  const t1 = b.build(snapshot(5), {}).table;
  const t2 = b.build(snapshot(6), {}).table;
  const t3r = b.build(snapshot(7), {});
  const d23 = makeDelta(t2, t3r.table, t3r.upserted, t3r.removed);
  // the worker still has t1 (it missed t1 -> t2)
  const gap = applyDelta(t1, d23);
  assert.deepEqual(gap, { ok: false, reason: 'gap', have: t1.version });
  // resync: the full table replaces whatever it had, and the next delta applies again
  let workerTable = JSON.parse(JSON.stringify(t3r.table));
  const t4r = b.build(snapshot(8), {});
  const d34 = makeDelta(t3r.table, t4r.table, t4r.upserted, t4r.removed);
  const ok = applyDelta(workerTable, d34);
  assert.ok(ok.ok);
  if (ok.ok) workerTable = ok.table;
  assert.equal(workerTable.version, t4r.table.version);
});

test('delta: routes travel only when they changed; an admin upstream replacing a Consul one is an upsert', () => {
  const b = new IncrementalTableBuilder(DEFAULT_TABLE_DEFAULTS);
  const t1 = b.build(snapshot(3), {}).table;
  const admin = tableFromUpstreams({ s1: { ...t1.upstreams.s1, origin: 'admin', servers: [] } }, []).upstreams;
  const r = b.build(snapshot(3), admin);
  assert.deepEqual(r.upserted, ['s1']);
  const d = makeDelta(t1, r.table, r.upserted, r.removed);
  assert.equal(d.routes, undefined);
  assert.deepEqual(changedUpstreamNames(t1, r.table), { upserted: ['s1'], removed: [] });
  const back = b.build(snapshot(3), {});
  assert.equal(back.table.version, t1.version, 'removing the admin upstream restores the Consul one: same version');
});

test('delta: request scripts travel when they change, stay when they do not, and can all be removed', () => {
  const b = new IncrementalTableBuilder(DEFAULT_TABLE_DEFAULTS);
  const base = b.build(snapshot(3), {}).table;
  const script: ScriptSpec = {
    name: 'deny-delete', source: 'export function onRequest() {}', version: 'abc123abc123', loadedAt: '2026-12-01T00:00:00.000Z',
    services: ['*'], timeoutMs: 50, maxFailures: 5,
  };
  const withScript = Object.freeze({ ...base, version: 'v-scripts', scripts: Object.freeze([script]) }) as typeof base;
  const over = (from: typeof base, to: typeof base, upserted: string[] = []) =>
    applyDelta(JSON.parse(JSON.stringify(from)), JSON.parse(JSON.stringify(makeDelta(from, to, upserted, []))));

  const added = over(base, withScript);
  assert.ok(added.ok);
  if (!added.ok) return;
  assert.deepEqual(added.table.scripts?.map((s) => s.name), ['deny-delete'], 'an added script reaches the worker');

  // an upstream change alone: the delta names no scripts, the worker keeps its own
  const next = b.build({ services: { ...snapshot(3).services, s1: [inst('s1', 7777)] } }, {});
  const changed = Object.freeze({ ...next.table, version: 'v-upstream', scripts: withScript.scripts }) as typeof base;
  const delta = makeDelta(withScript, changed, next.upserted, next.removed);
  assert.equal(delta.scripts, undefined, 'unchanged scripts do not travel');
  const kept = applyDelta(added.table, JSON.parse(JSON.stringify(delta)));
  assert.ok(kept.ok);
  if (!kept.ok) return;
  assert.deepEqual(kept.table.scripts?.map((s) => s.name), ['deny-delete']);

  const removed = over(changed, Object.freeze({ ...changed, version: 'v-none', scripts: undefined }) as typeof base);
  assert.ok(removed.ok);
  if (removed.ok) assert.equal(removed.table.scripts, undefined, 'removing every script reaches the worker');
});
