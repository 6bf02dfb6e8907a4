// A worker applying a table delta looks only at the changed upstreams: the compiled table shares
// every other picker and route with the previous one, health records follow only the changed
// servers, and the outcome equals the full recompile (pickers aside) on the same tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerHealth } from '../../balancer/src/health/peer-health.js';
import { compileTable } from '../../balancer/src/proxy/compiled-table.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { applyDelta, makeDelta } from '../../balancer/src/routing/table-delta.js';
import type { ActiveCheckSpec, RouteTable, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';

const srv = (port: number, extra: Partial<ServerSpec> = {}): ServerSpec => ({
  id: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, maxFails: 2, failTimeoutMs: 1000, down: false, backup: false, ...extra,
});
const CHECK: ActiveCheckSpec = { type: 'http', path: '/health', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, expectStatuses: [200] };
const up = (name: string, servers: ServerSpec[], check?: ActiveCheckSpec): UpstreamSpec => ({
  name, algorithm: 'roundrobin', servers, origin: 'consul', retry: { tries: 2, timeoutMs: 0, onStatuses: [502], nonIdempotent: false },
  ...(check ? { check } : {}),
});

function base(n: number): Record<string, UpstreamSpec> {
  const out: Record<string, UpstreamSpec> = {};
  for (let i = 0; i < n; i++) out[`s${i}`] = up(`s${i}`, [srv(10_000 + i * 3), srv(10_001 + i * 3)], i % 2 === 0 ? CHECK : undefined);
  // one server listed by two upstreams
  out.shared1 = up('shared1', [srv(9000)], CHECK);
  out.shared2 = up('shared2', [srv(9000), srv(9001)]);
  return out;
}

const env = { random: () => 0.5, now: () => 0 };

/** the change: s1 gets a new server and loses one, s2 goes, n1 comes, shared1 goes (9000 stays via shared2) */
function changed(prev: RouteTable): { next: RouteTable; names: Set<string> } {
  const u = { ...prev.upstreams } as Record<string, UpstreamSpec>;
  u.s1 = up('s1', [srv(10_003), srv(20_000)]);
  delete u.s2;
  u.n1 = up('n1', [srv(30_000)], CHECK);
  delete u.shared1;
  const full = tableFromUpstreams(u, []);
  const delta = makeDelta(prev, full, ['s1', 'n1'], ['s2', 'shared1']);
  const r = applyDelta(prev, delta);
  assert.ok(r.ok);
  return { next: r.table, names: new Set(['s1', 'n1', 's2', 'shared1']) };
}

test('compileTable with the delta names: unchanged pickers shared, routes match as a full compile', () => {
  const t0 = tableFromUpstreams(base(50), []);
  const h = new PeerHealth();
  const c0 = compileTable(t0, undefined, h, env);
  const { next, names } = changed(t0);
  const inc = compileTable(next, c0, h, env, undefined, names);
  const full = compileTable(next, c0, h, env);
  assert.deepEqual([...inc.pickers.keys()].sort(), [...full.pickers.keys()].sort());
  assert.deepEqual([...inc.specKeys].sort(), [...full.specKeys].sort());
  for (const name of Object.keys(next.upstreams)) {
    if (!names.has(name)) assert.equal(inc.pickers.get(name), c0.pickers.get(name), `${name}: picker shared`);
    assert.equal(inc.router.match(name, '/')?.upstream, next.upstreams[name], `${name} routed`);
    assert.equal(inc.router.match(name.toUpperCase(), '/')?.upstream, next.upstreams[name], `${name} routed, any case`);
  }
  assert.notEqual(inc.pickers.get('s1'), c0.pickers.get('s1'), 's1 changed: new picker');
  assert.equal(inc.router.match('s2', '/'), undefined, 's2 removed');
  assert.equal(inc.router.match('shared1', '/'), undefined, 'shared1 removed');
  // the previous router is intact (requests holding it still route)
  assert.equal(c0.router.match('s2', '/')?.upstream, t0.upstreams.s2);
});

test('PeerHealth.retainChanged equals retain on the same tables, keeps state, drops only servers nobody lists', () => {
  const t0 = tableFromUpstreams(base(50), []);
  const full = new PeerHealth();
  const inc = new PeerHealth();
  for (const h of [full, inc]) {
    h.retain(t0, 0);
    // state on servers of unchanged and changed upstreams
    h.onAttemptEnd('127.0.0.1:10000', { ok: false, latencyMs: 1, error: 'ECONNRESET' }, 10);
    h.onAttemptEnd('127.0.0.1:10000', { ok: false, latencyMs: 1, error: 'ECONNRESET' }, 11);
    h.onAttemptEnd('127.0.0.1:10003', { ok: false, latencyMs: 1, error: 'ECONNRESET' }, 12);
    h.onAttemptEnd('127.0.0.1:10003', { ok: false, latencyMs: 1, error: 'ECONNRESET' }, 13);
  }
  const { next, names } = changed(t0);
  full.retain(next, 20);
  const dropped = inc.retainChanged(t0, next, names, 20);
  assert.deepEqual(dropped.sort(), ['127.0.0.1:10004', '127.0.0.1:10006', '127.0.0.1:10007'], 's1 lost 10004, s2 went (10006, 10007); 9000 stays (shared2)');
  assert.deepEqual(inc.status(next, 21), full.status(next, 21));
  assert.equal(inc.isAvailable(srv(10_000), 21), false, 'an unchanged upstream keeps its ejection');
  assert.equal(inc.isAvailable(srv(10_003), 21), false, 'a server kept by a changed upstream keeps its ejection');
  assert.equal(inc.isAvailable(srv(20_000), 21), true, 'a new server starts available');

  // and again, from the result: removing shared2 drops 9000 and 9001 now
  const u = { ...next.upstreams } as Record<string, UpstreamSpec>;
  delete u.shared2;
  const r = applyDelta(next, makeDelta(next, tableFromUpstreams(u, []), [], ['shared2']));
  assert.ok(r.ok);
  full.retain(r.table, 30);
  assert.deepEqual(inc.retainChanged(next, r.table, new Set(['shared2']), 30).sort(), ['127.0.0.1:9000', '127.0.0.1:9001']);
  assert.deepEqual(inc.status(r.table, 31), full.status(r.table, 31));
});

test('a delta costs work per changed upstream: 5,000 upstreams, CPU of the incremental apply is a small part of the full one', (t) => {
  // CPU, not wall time (the machine is shared): process.cpuUsage around 200 applies of each kind
  const t0 = tableFromUpstreams(base(5000), []);
  const h1 = new PeerHealth();
  const h2 = new PeerHealth();
  h1.retain(t0, 0);
  h2.retain(t0, 0);
  let cur1 = compileTable(t0, undefined, h1, env);
  let cur2 = cur1;
  const step = (prev: RouteTable, i: number) => {
    const name = `s${i % 5000}`;
    const u = { ...prev.upstreams } as Record<string, UpstreamSpec>;
    u[name] = up(name, [srv(10_000 + (i % 5000) * 3), srv(40_000 + (i % 20_000))]);
    const r = applyDelta(prev, makeDelta(prev, { ...prev, version: `v${i}`, upstreams: u }, [name], []));
    assert.ok(r.ok);
    return { table: r.table, names: new Set([name]) };
  };
  // only the worker's part is counted (making the next table is the primary's)
  let incUs = 0;
  for (let i = 0; i < 200; i++) {
    const { table, names } = step(cur1.table, i);
    const c0 = process.cpuUsage();
    const next = compileTable(table, cur1, h1, env, undefined, names);
    h1.retainChanged(cur1.table, table, names, i);
    incUs += process.cpuUsage(c0).user;
    cur1 = next;
  }
  let fullUs = 0;
  for (let i = 0; i < 200; i++) {
    const { table } = step(cur2.table, i);
    const c0 = process.cpuUsage();
    const next = compileTable(table, cur2, h2, env);
    h2.retain(table, i);
    fullUs += process.cpuUsage(c0).user;
    cur2 = next;
  }
  t.diagnostic(`worker apply of a one-upstream delta at 5,000 upstreams x 2: incremental ${Math.round(incUs / 200)} µs, full ${Math.round(fullUs / 200)} µs CPU (compile + health)`);
  assert.deepEqual(h1.status(cur1.table, 300), h2.status(cur2.table, 300));
  assert.ok(incUs * 3 < fullUs, `incremental ${Math.round(incUs / 200)} µs per delta vs full ${Math.round(fullUs / 200)} µs`);
});
