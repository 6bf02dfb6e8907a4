// The pure table build from Consul tags: options, filtering, routes, admin override, warnings,
// frozen output and a version that depends on content only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouteTable, tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_ACTIVE_CHECK, DEFAULT_TABLE_DEFAULTS, type TableDefaults } from '../../balancer/src/routing/tag-options.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import type { CatalogInstance, CatalogSnapshot } from '../../balancer/src/routing/types.js';

function inst(service: string, n: number, tags: string[] = [], extra: Partial<CatalogInstance> = {}): CatalogInstance {
  return {
    serviceId: `${service}-${n}`, service, node: `node${n}`, address: '127.0.0.1', port: 8000 + n,
    tags, meta: {}, status: 'passing', ...extra,
  };
}

function build(services: Record<string, CatalogInstance[]>, defaults: TableDefaults = DEFAULT_TABLE_DEFAULTS, admin = {}) {
  const snapshot: CatalogSnapshot = { services };
  return buildRouteTable({ snapshot, adminUpstreams: admin, defaults });
}

test('one upstream per service with defaults, servers sorted by id, deep-frozen', () => {
  const { table, warnings } = build({ web: [inst('web', 2), inst('web', 1, [], { meta: { zone: 'z1' } })] });
  assert.deepEqual(warnings, []);
  const web = table.upstreams.web;
  assert.equal(web.algorithm, 'roundrobin');
  assert.equal(web.origin, 'consul');
  assert.deepEqual(web.retry, DEFAULT_TABLE_DEFAULTS.retry);
  assert.deepEqual(web.servers.map((s) => s.id), ['127.0.0.1:8001', '127.0.0.1:8002']);
  assert.deepEqual(web.servers[0], {
    id: '127.0.0.1:8001', host: '127.0.0.1', port: 8001, weight: 1, maxFails: 1, failTimeoutMs: 10_000,
    down: false, backup: false, node: 'node1', zone: 'z1', serviceId: 'web-1',
  });
  assert.ok(Object.isFrozen(table) && Object.isFrozen(table.upstreams) && Object.isFrozen(web.servers) && Object.isFrozen(web.servers[0]));
  assert.match(table.version, /^[0-9a-f]{40}$/);
});

test('health filter: passingOnly keeps passing; otherwise only critical is dropped; empty service kept', () => {
  const services = {
    web: [inst('web', 1), inst('web', 2, [], { status: 'warning' }), inst('web', 3, [], { status: 'critical' })],
    dead: [inst('dead', 1, [], { status: 'critical' })],
  };
  const strict = build(services).table;
  assert.deepEqual(strict.upstreams.web.servers.map((s) => s.port), [8001]);
  assert.deepEqual(strict.upstreams.dead.servers, []);
  const lax = build(services, { ...DEFAULT_TABLE_DEFAULTS, passingOnly: false }).table;
  assert.deepEqual(lax.upstreams.web.servers.map((s) => s.port), [8001, 8002]);
});

test('service options from tags of any instance; first by service id wins', () => {
  const { table, warnings } = build({
    api: [
      inst('api', 1, ['lb=chash', 'hash=header:X-User', 'max_fails=3', 'fail_timeout=30s', 'retries=1']),
      inst('api', 2, ['check=http:/health', 'check_interval=2s', 'check_timeout=500ms', 'rise=3', 'fall=4', 'check_expect=200-204,304', 'lb=ewma']),
    ],
  });
  const api = table.upstreams.api;
  assert.equal(api.algorithm, 'chash');
  assert.deepEqual(api.hashKey, { source: 'header', name: 'x-user' });
  assert.equal(api.servers[0].maxFails, 3);
  assert.equal(api.servers[0].failTimeoutMs, 30_000);
  assert.equal(api.retry.tries, 2);
  assert.deepEqual(api.check, {
    type: 'http', path: '/health', intervalMs: 2000, timeoutMs: 500, rise: 3, fall: 4,
    expectStatuses: [200, 201, 202, 203, 204, 304],
  });
  assert.deepEqual(warnings, ['service api: conflicting tag "lb=ewma" ignored, "lb=chash" wins']);
});

test('instance tags: weight, backup, down; tcp check; chash without hash uses client IP', () => {
  const { table } = build({
    db: [inst('db', 1, ['weight=5', 'lb=chash', 'check=tcp']), inst('db', 2, ['backup']), inst('db', 3, ['down'])],
  });
  const [s1, s2, s3] = table.upstreams.db.servers;
  assert.deepEqual([s1.weight, s1.backup, s1.down], [5, false, false]);
  assert.deepEqual([s2.backup, s3.down], [true, true]);
  assert.equal(table.upstreams.db.check?.type, 'tcp');
  assert.deepEqual(table.upstreams.db.hashKey, { source: 'ip' });
});

test('bad tag values give warnings naming service and tag; the rest is kept', () => {
  const { table, warnings } = build({
    web: [inst('web', 1, ['lb=fastest', 'max_fails=-1', 'fail_timeout=soon', 'weight=0', 'hash=body', 'check=udp', 'check_expect=abc', 'rise=0', 'retries=2', 'urlprefix-bad host/x'])],
  });
  const web = table.upstreams.web;
  assert.equal(web.algorithm, 'roundrobin');
  assert.equal(web.servers[0].weight, 1);
  assert.equal(web.retry.tries, 3);
  const expected = ['lb=fastest', 'max_fails=-1', 'fail_timeout=soon', 'weight=0', 'hash=body', 'check=udp', 'check_expect=abc', 'rise=0'];
  for (const tag of expected) {
    assert.ok(warnings.some((w) => w.includes('web') && w.includes(`"${tag}"`)), `warning for ${tag}: ${warnings.join(' | ')}`);
  }
  assert.ok(warnings.some((w) => w.includes('urlprefix-bad host/x')));
});

test('urlprefix routes (fabio syntax), lower-cased host without port, conflicts keep the first service', () => {
  const { table, warnings } = build({
    a: [inst('a', 1, ['urlprefix-/api', 'urlprefix-Example.COM:8080/', 'urlprefix-shop.example.com/cart', 'urlprefix-only.host'])],
    b: [inst('b', 1, ['urlprefix-/api'])],
  });
  assert.deepEqual(table.routes, [
    { host: '', pathPrefix: '/api', upstream: 'a' },
    { host: 'example.com', pathPrefix: '/', upstream: 'a' },
    { host: 'only.host', pathPrefix: '/', upstream: 'a' },
    { host: 'shop.example.com', pathPrefix: '/cart', upstream: 'a' },
  ]);
  assert.deepEqual(warnings, ['route */api: claimed by a and b; a keeps it']);
});

test('admin upstreams override Consul services of the same name', () => {
  const admin = { web: adminUpstream('web', [{ host: '10.0.0.9', port: 9000, weight: 3 }], DEFAULT_TABLE_DEFAULTS, { algorithm: 'wrr' }) };
  const { table } = build({ web: [inst('web', 1, ['lb=ewma', 'urlprefix-/web'])], other: [inst('other', 1)] }, DEFAULT_TABLE_DEFAULTS, admin);
  assert.equal(table.upstreams.web.origin, 'admin');
  assert.equal(table.upstreams.web.algorithm, 'wrr');
  assert.deepEqual(table.upstreams.web.servers.map((s) => [s.id, s.weight]), [['10.0.0.9:9000', 3]]);
  assert.deepEqual(table.routes, [{ host: '', pathPrefix: '/web', upstream: 'web' }]);
  assert.equal(table.upstreams.other.origin, 'consul');
});

test('version is stable under reordering and changes with content', () => {
  const one = build({ a: [inst('a', 1, ['urlprefix-/x']), inst('a', 2)], b: [inst('b', 1, ['urlprefix-/y'])] }).table;
  const two = build({ b: [inst('b', 1, ['urlprefix-/y'])], a: [inst('a', 2), inst('a', 1, ['urlprefix-/x'])] }).table;
  assert.equal(one.version, two.version);
  const three = build({ a: [inst('a', 1, ['urlprefix-/x']), inst('a', 2, ['weight=2'])], b: [inst('b', 1, ['urlprefix-/y'])] }).table;
  assert.notEqual(one.version, three.version);
  const rebuilt = tableFromUpstreams({ b: one.upstreams.b, a: one.upstreams.a }, [...one.routes].reverse());
  assert.equal(rebuilt.version, one.version);
});

test('check_expect accepts codes, ranges and nginx classes', () => {
  const cases: [string, number[] | 'warn'][] = [
    ['200', [200]],
    ['204,200', [200, 204]],
    ['2xx', Array.from({ length: 100 }, (_, i) => 200 + i)],
    ['http_3xx,200', [200, ...Array.from({ length: 100 }, (_, i) => 300 + i)]],
    ['299-200', 'warn'],
    ['600', 'warn'],
  ];
  for (const [value, expect] of cases) {
    const { table, warnings } = build({ s: [inst('s', 1, ['check=http:/h', `check_expect=${value}`])] });
    if (expect === 'warn') {
      assert.equal(warnings.length, 1, value);
      assert.deepEqual(table.upstreams.s.check?.expectStatuses, DEFAULT_ACTIVE_CHECK.expectStatuses);
    } else {
      assert.deepEqual(warnings, [], value);
      assert.deepEqual(table.upstreams.s.check?.expectStatuses, expect, value);
    }
  }
});

test('check tuning without any check is a warning; a default check applies to every service', () => {
  const none = build({ s: [inst('s', 1, ['rise=3'])] });
  assert.equal(none.table.upstreams.s.check, undefined);
  assert.equal(none.warnings.length, 1);
  const withDefault = build({ s: [inst('s', 1, ['rise=3'])] }, { ...DEFAULT_TABLE_DEFAULTS, check: DEFAULT_ACTIVE_CHECK });
  assert.equal(withDefault.table.upstreams.s.check?.rise, 3);
  assert.deepEqual(withDefault.warnings, []);
});

test('check_interval / check_timeout beyond a Node timer are ignored with a warning (the timer would fire after 1 ms)', () => {
  const { table, warnings } = build({ api: [inst('api', 1, ['check=http:/health', 'check_interval=999h', 'check_timeout=999h'])] });
  const check = table.upstreams.api.check!;
  assert.equal(check.intervalMs, DEFAULT_ACTIVE_CHECK.intervalMs);
  assert.equal(check.timeoutMs, DEFAULT_ACTIVE_CHECK.timeoutMs);
  assert.equal(warnings.filter((w) => /timer/.test(w)).length, 2, warnings.join('\n'));
});

test('instance weight from service Meta "weight" (registrator SERVICE_WEIGHT); a weight= tag wins; a bad Meta weight is a warning', () => {
  const { table, warnings } = build({
    web: [
      inst('web', 1, [], { meta: { weight: '3' } }),
      inst('web', 2, ['weight=5'], { meta: { weight: '3' } }),
      inst('web', 3, [], { meta: { weight: 'heavy' } }),
      inst('web', 4),
    ],
  });
  assert.deepEqual(table.upstreams.web.servers.map((s) => s.weight), [3, 5, 1, 1]);
  assert.ok(warnings.some((w) => w.includes('web-3') && w.includes('Meta weight')), warnings.join('\n'));
});
