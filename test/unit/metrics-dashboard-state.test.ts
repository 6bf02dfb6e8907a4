// The dashboard's state as a pure function: servers from the table with their merged worker
// health, instances Consul lists but the table leaves out shown as failing in place, one word per
// health cell with the reason, Consul's own service hidden.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDashboardState, type DashboardInputs, type ServerHealthInput } from '../../balancer/src/metrics/dashboard-state.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogInstance } from '../../balancer/src/routing/types.js';

function instance(port: number, status: CatalogInstance['status']): CatalogInstance {
  return { serviceId: `web-${port}`, service: 'web', node: 'n1', address: '127.0.0.1', port, tags: [], meta: {}, status };
}

function inputs(health: Map<string, Map<string, ServerHealthInput>>): DashboardInputs {
  const web = adminUpstream('web', [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2 }, { host: '127.0.0.1', port: 3 }], DEFAULT_TABLE_DEFAULTS);
  return {
    at: 1000, mode: 'dynamic', generation: 2, workers: { alive: 2, ready: 2, restarts: 1 },
    table: tableFromUpstreams({ web: { ...web, origin: 'consul' } }, []),
    snapshot: { services: { web: [instance(1, 'passing'), instance(2, 'passing'), instance(3, 'warning'), instance(4, 'critical')], consul: [instance(8300, 'passing')] } },
    health,
    consul: { enabled: true, reachable: false },
    diffs: [{ at: 900, version: 'v2', cause: 'snapshot', lines: ['+ web 127.0.0.1:3 weight=1'] }],
    serviceWindow: () => ({ rps: 12, p50Ms: 3, p99Ms: 30, points: [{ at: 999, rps: 12, p99Ms: 30 }] }),
    serverWindow: (_s, id) => ({ rps: id === '127.0.0.1:1' ? 8 : 2, p50Ms: 3, p99Ms: 30 }),
  };
}

test('servers carry table, Consul and worker health; a critical instance stays listed as failing', () => {
  const health = new Map([['web', new Map<string, ServerHealthInput>([
    ['127.0.0.1:1', { id: '127.0.0.1:1', status: 'ok', failCount: 0, inflight: 3 }],
    ['127.0.0.1:2', { id: '127.0.0.1:2', status: 'ejected', lastError: 'ECONNREFUSED: connect', failCount: 3, inflight: 0 }],
    ['127.0.0.1:3', { id: '127.0.0.1:3', status: 'ok', failCount: 0, inflight: 1, activeCheck: { up: false, consecutive: 2, lastError: 'status 500' } }],
  ])]]);
  const s = buildDashboardState(inputs(health));
  assert.deepEqual(s.services.map((x) => x.name), ['web'], 'the consul service itself is not shown');
  const web = s.services[0];
  assert.equal(web.inflight, 4);
  assert.equal(web.rps, 12);
  const byId = new Map(web.servers.map((x) => [x.id, x]));
  assert.deepEqual([...byId.keys()], ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3', '127.0.0.1:4']);
  assert.equal(byId.get('127.0.0.1:1')!.health, 'up');
  assert.equal(byId.get('127.0.0.1:1')!.rps, 8);
  assert.equal(byId.get('127.0.0.1:2')!.health, 'down');
  assert.match(byId.get('127.0.0.1:2')!.healthReason!, /passive: ECONNREFUSED/);
  assert.equal(byId.get('127.0.0.1:3')!.health, 'down');
  assert.match(byId.get('127.0.0.1:3')!.healthReason!, /active check: status 500/);
  const gone = byId.get('127.0.0.1:4')!;
  assert.equal(gone.inTable, false);
  assert.equal(gone.health, 'failing');
  assert.equal(gone.healthReason, 'consul: critical');
  assert.deepEqual(s.consul, { enabled: true, reachable: false });
  assert.equal(s.diffs.length, 1);
});

test('without worker health (status unavailable) the table still shows, every server up', () => {
  const s = buildDashboardState({ ...inputs(new Map()), statusError: 'worker status unavailable: timeout' });
  assert.equal(s.statusError, 'worker status unavailable: timeout');
  const warning = s.services[0].servers.find((x) => x.id === '127.0.0.1:3')!;
  assert.equal(warning.health, 'degraded');
  assert.equal(warning.healthReason, 'consul: warning');
  assert.equal(s.services[0].servers.find((x) => x.id === '127.0.0.1:1')!.health, 'up');
});

test('canary group per server, the service\'s policy (split, affinity, panic threshold) and its panic state', () => {
  const base = inputs(new Map());
  const web = base.table.upstreams.web;
  const servers = web.servers.map((s) => (s.port === 3 ? { ...s, canary: true } : s));
  const policy = {
    canary: { tag: 'canary', weight: 20, header: 'x-canary', cookie: 'beta', bucketCookie: 'lb_canary' },
    sticky: { mode: 'cookie' as const, name: 'lb_srv', ttlSeconds: 3600, secure: true, httpOnly: true, sameSite: 'Lax' as const },
    panicThresholdPercent: 50,
  };
  const table = tableFromUpstreams({ web: { ...web, servers, policy }, plain: adminUpstream('plain', [{ host: '127.0.0.1', port: 9 }], DEFAULT_TABLE_DEFAULTS) }, []);
  const s = buildDashboardState({ ...base, table, panic: new Map([['web', { panicking: true, entered: 1, picks: 40 }]]) });
  const svc = s.services.find((x) => x.name === 'web')!;
  assert.deepEqual(svc.policy, {
    canary: { tag: 'canary', weight: 20, header: 'x-canary', cookie: 'beta' },
    sticky: { mode: 'cookie', name: 'lb_srv', ttlSeconds: 3600 },
    panicThresholdPercent: 50,
  });
  assert.deepEqual(svc.panic, { panicking: true, entered: 1, picks: 40 });
  assert.deepEqual(svc.servers.filter((x) => x.canary === true).map((x) => x.id), ['127.0.0.1:3']);
  const plain = s.services.find((x) => x.name === 'plain')!;
  assert.equal(plain.policy, undefined);
  assert.equal(plain.panic, undefined);
  assert.equal(plain.servers[0].canary, undefined);
});
