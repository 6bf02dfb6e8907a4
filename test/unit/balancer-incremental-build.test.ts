// Per-service incremental build: a change to one service rebuilds only that service, every other
// upstream is the same frozen object, the version equals a full build's; a bad instance is skipped
// with a warning naming it; a service whose entry cannot be built keeps its last good entry while the
// others move on (issue 12 item 3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouteTable, IncrementalTableBuilder, tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { parseHealthAnswer } from '../../balancer/src/discovery/health-entries.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogInstance, CatalogSnapshot } from '../../balancer/src/routing/types.js';

const inst = (service: string, port: number, extra: Partial<CatalogInstance> = {}): CatalogInstance => ({
  serviceId: `${service}-${port}`, service, node: 'n1', address: '127.0.0.1', port, tags: [], meta: {}, status: 'passing', ...extra,
});

test('one changed service out of 2,000: only it is rebuilt, the others are shared, the version is a full build\'s', () => {
  const services: Record<string, CatalogInstance[]> = {};
  for (let i = 0; i < 2000; i++) services[`s${i}`] = [inst(`s${i}`, 1000 + (i % 60000)), inst(`s${i}`, 2000 + (i % 60000))];
  const b = new IncrementalTableBuilder(DEFAULT_TABLE_DEFAULTS);
  const first = b.build({ services }, {});
  assert.equal(first.rebuilt.length, 2000);
  const next: CatalogSnapshot = { services: { ...services, s42: [...services.s42, inst('s42', 4242)] } };
  const t0 = performance.now();
  const r = b.build(next, {});
  const ms = performance.now() - t0;
  assert.deepEqual(r.rebuilt, ['s42']);
  assert.deepEqual(r.upserted, ['s42']);
  for (const name of ['s0', 's41', 's43', 's1999']) assert.equal(r.table.upstreams[name], first.table.upstreams[name], name);
  assert.notEqual(r.table.upstreams.s42, first.table.upstreams.s42);
  assert.ok(Object.isFrozen(r.table) && Object.isFrozen(r.table.upstreams) && Object.isFrozen(r.table.upstreams.s42.servers[0]));
  const full = buildRouteTable({ snapshot: next, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS }).table;
  assert.equal(r.table.version, full.version);
  assert.equal(tableFromUpstreams(full.upstreams, full.routes).version, full.version, 'every producer computes the same version');
  // an equal snapshot (new arrays, same content) rebuilds nothing and keeps the table object
  const same = b.build({ services: { ...next.services, s42: [...next.services.s42] } }, {});
  assert.deepEqual(same.rebuilt, []);
  assert.equal(same.table, r.table);
  // a budget that catches an O(catalog) rebuild on a loaded machine (a full build of 2,000 takes far longer)
  assert.ok(ms < 100, `one change took ${ms.toFixed(1)} ms`);
});

test('a malformed instance (Address: 123, Tags: [1], Port: 1.5) is skipped with a warning naming it; siblings kept', () => {
  const answer = [
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'ok-1', Service: 'web', Address: '10.0.0.1', Port: 80, Tags: [] }, Checks: [] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'bad-addr', Service: 'web', Address: 123, Port: 80 }, Checks: [] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'bad-tags', Service: 'web', Address: '10.0.0.2', Port: 80, Tags: [1] }, Checks: [] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'bad-port', Service: 'web', Address: '10.0.0.3', Port: 1.5 }, Checks: [] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'bad-host', Service: 'web', Address: 'evil/x', Port: 80 }, Checks: [] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { Kind: 'connect-proxy', ID: 'web-sidecar', Service: 'web', Port: 21000 }, Checks: [] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'maint', Service: 'web', Address: '10.0.0.9', Port: 80 }, Checks: [{ CheckID: '_service_maintenance:maint', Status: 'critical' }] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'v6', Service: 'web', Address: '[::1]', Port: 8080 }, Checks: [] },
  ];
  const parsed = parseHealthAnswer('web', answer);
  assert.deepEqual(parsed.instances.map((i) => i.serviceId), ['maint', 'ok-1', 'v6']);
  assert.equal(parsed.instances.find((i) => i.serviceId === 'maint')?.status, 'critical');
  assert.equal(parsed.instances.find((i) => i.serviceId === 'v6')?.address, '::1');
  for (const id of ['bad-addr', 'bad-tags', 'bad-port', 'bad-host']) {
    assert.ok(parsed.warnings.some((w) => w.includes(`"${id}"`)), `a warning names ${id}: ${parsed.warnings.join(' | ')}`);
  }
  assert.ok(!parsed.warnings.some((w) => w.includes('sidecar')), 'a Connect sidecar is skipped quietly');
  assert.deepEqual(parseHealthAnswer('web', { not: 'a list' }).usable, false);

  // the same bad values reaching the builder directly (another producer) are skipped there too
  const b = new IncrementalTableBuilder(DEFAULT_TABLE_DEFAULTS);
  const r = b.build({ services: {
    web: [inst('web', 80), { ...inst('web', 81), address: 123 as unknown as string }, { ...inst('web', 82), port: 1.5 }, { ...inst('web', 83), tags: [1 as unknown as string] }],
    api: [inst('api', 90)],
  } }, {});
  assert.deepEqual(r.table.upstreams.web.servers.map((s) => s.port), [80]);
  assert.equal(r.warnings.filter((w) => w.startsWith('service web instance')).length, 3);
  assert.deepEqual(r.table.upstreams.api.servers.map((s) => s.port), [90]);
});

test('a service whose entry cannot be built keeps its last good entry; the others move on; counted', () => {
  const b = new IncrementalTableBuilder(DEFAULT_TABLE_DEFAULTS);
  const good = b.build({ services: { web: [inst('web', 80)], api: [inst('api', 90)] } }, {});
  const r = b.build({ services: { web: 'garbage' as unknown as CatalogInstance[], api: [inst('api', 91)] } }, {});
  assert.deepEqual(r.failed, ['web']);
  assert.equal(r.table.upstreams.web, good.table.upstreams.web, 'web keeps its last good entry');
  assert.deepEqual(r.table.upstreams.api.servers.map((s) => s.port), [91], 'api moved on');
  assert.ok(r.newWarnings.some((w) => w.includes('service web') && w.includes('last good entry')));
  assert.equal(b.failures, 1);
});
