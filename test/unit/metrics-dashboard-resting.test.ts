// The dashboard reads only the servers not at rest from the workers (PeerHealth.notable) and fills
// in the others from the table (withRestingServers). Differential: after random passive events,
// shared active-check states and table changes in two workers, the dashboard state built that way
// equals the one built from the workers' whole status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerHealth } from '../../balancer/src/health/peer-health.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { ActiveCheckSpec, RouteTable, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';
import { mergeWorkerStatus } from '../../balancer/src/admin/merge-status.js';
import { withRestingServers } from '../../balancer/src/admin/routes/dashboard.js';
import { buildDashboardState, type ServerHealthInput } from '../../balancer/src/metrics/dashboard-state.js';
import type { UpstreamStatus } from '../../balancer/src/worker/runtime.js';
import { mulberry32 } from '../support/fuzz.js';

const CHECK: ActiveCheckSpec = { type: 'http', path: '/h', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, expectStatuses: [200] };

function srv(id: string, down: boolean): ServerSpec {
  const [host, port] = id.split(':');
  return { id, host, port: Number(port), weight: 1, maxFails: 2, failTimeoutMs: 1000, down, backup: false };
}

function withPool(list: ReturnType<PeerHealth['status']>): UpstreamStatus[] {
  return list.map((u) => ({ ...u, servers: u.servers.map((s) => ({ ...s, pool: { connected: 0, pending: 0, running: 0 } })) }));
}

function dashboard(table: RouteTable, merged: readonly { name: string; servers: readonly ServerHealthInput[] }[]) {
  const health = new Map(merged.map((u) => [u.name, new Map(u.servers.map((s) => [s.id, s]))]));
  const none = { rps: 0, p50Ms: undefined, p99Ms: undefined };
  return buildDashboardState({
    at: 0, mode: 'dynamic', generation: 1, workers: { alive: 2, ready: 2, restarts: 0 }, table, snapshot: undefined, health,
    consul: { enabled: false, reachable: null }, diffs: [], serviceWindow: () => ({ ...none, points: [] }), serverWindow: () => none,
  });
}

test('dashboard from the servers not at rest + the table equals the dashboard from every server\'s status', () => {
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    const rnd = mulberry32(seed);
    const ids = Array.from({ length: 10 }, (_, i) => `10.1.${seed}.${i}:80`);
    const randomTable = (): RouteTable => {
      const ups: Record<string, UpstreamSpec> = {};
      for (const name of ['a', 'b', 'c', 'd']) {
        if (rnd() < 0.15) continue;
        const servers = ids.filter(() => rnd() < 0.4).map((id) => srv(id, rnd() < 0.1));
        ups[name] = { name, algorithm: 'roundrobin', servers, origin: 'consul', retry: { tries: 1, timeoutMs: 0, onStatuses: [], nonIdempotent: false }, ...(rnd() < 0.5 ? { check: CHECK } : {}) };
      }
      return tableFromUpstreams(ups, []);
    };
    let table = randomTable();
    const workers = [new PeerHealth({ sharedActive: true }), new PeerHealth({ sharedActive: true })];
    let now = 0;
    for (const w of workers) w.retain(table, now);
    let restingSeen = 0;
    for (let step = 0; step < 300; step++) {
      const r = rnd();
      const id = ids[Math.floor(rnd() * ids.length)];
      const w = workers[Math.floor(rnd() * 2)];
      if (r < 0.3) w.onAttemptStart(id, now);
      else if (r < 0.6) w.onAttemptEnd(id, { ok: rnd() < 0.6, latencyMs: 2, error: 'boom' }, now);
      else if (r < 0.75) {
        const state = { id, up: rnd() < 0.6, consecutive: 1 + Math.floor(rnd() * 3), error: 'status 500' };
        for (const x of workers) x.setSharedActive(state, now);
      } else if (r < 0.85) {
        table = randomTable();
        for (const x of workers) x.retain(table, now);
      }
      now += Math.floor(rnd() * 700);
      const whole = dashboard(table, mergeWorkerStatus(workers.map((x) => withPool(x.status(table, now)))));
      const notable = workers.map((x) => withPool(x.notable(table, now)));
      const total = Object.values(table.upstreams).reduce((n, u) => n + u.servers.length, 0);
      restingSeen += total - notable[0].reduce((n, u) => n + u.servers.length, 0);
      const fromNotable = dashboard(table, withRestingServers(mergeWorkerStatus(notable), table));
      assert.deepEqual(fromNotable, whole, `seed ${seed} step ${step}`);
    }
    assert.ok(restingSeen > 100, `seed ${seed}: servers at rest were left out (${restingSeen})`);
  }
});
