// The dump file's text is made from cached pieces (one per upstream and per instance list), and is
// exactly what JSON.stringify(contents, null, 1) writes; after a change to one service only that
// service's pieces are serialized again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DUMP_FORMAT, DumpSerializer, validateDump } from '../../balancer/src/persistence/dump-file.js';
import { buildRouteTable } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogInstance, CatalogSnapshot, UpstreamSpec } from '../../balancer/src/routing/types.js';
import { deepFreeze } from '../../balancer/src/routing/table-version.js';
import { hostileString, mulberry32, type Rng } from '../support/fuzz.js';

const AT = new Date('2026-12-01T20:00:00.000Z');
const now = () => AT;
const reference = (contents: object): string => JSON.stringify({ format: DUMP_FORMAT, savedAt: AT.toISOString(), ...contents }, null, 1) + '\n';

const inst = (service: string, k: number, tags: string[] = []): CatalogInstance => ({
  serviceId: `${service}-${k}`, service, node: `n${k}`, address: '127.0.0.1', port: 20_000 + k, tags, meta: { zone: 'a' }, status: 'passing',
});

function randomContents(rng: Rng): { table: ReturnType<typeof buildRouteTable>['table']; adminUpstreams: Record<string, UpstreamSpec>; snapshot: CatalogSnapshot } {
  const services: Record<string, CatalogInstance[]> = {};
  const n = Math.floor(rng() * 6);
  for (let i = 0; i < n; i++) {
    // names and tags with quotes, backslashes, newlines and non-ASCII: escaped the same way
    const name = i === 0 ? 'we"b\n\u00e9' : `s${i}-${hostileString(rng, 2).replace(/[^\x20-\x7e]/g, '') || 'x'}`;
    services[name] = Array.from({ length: Math.floor(rng() * 3) }, (_, k) => inst(name, k, [hostileString(rng, 3), 'urlprefix-/p' + i]));
  }
  const snapshot = { services };
  const { table } = buildRouteTable({ snapshot, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS });
  const adminUpstreams: Record<string, UpstreamSpec> = rng() < 0.5 ? {} : { adm: { name: 'adm', algorithm: 'wrr', servers: [], retry: DEFAULT_TABLE_DEFAULTS.retry, origin: 'admin' } };
  return { table, adminUpstreams, snapshot };
}

test('dump text: equals JSON.stringify(contents, null, 1) for 300 random tables, snapshots, empty parts and escapes', () => {
  const rng = mulberry32(21);
  const s = new DumpSerializer();
  for (let i = 0; i < 300; i++) {
    const c = randomContents(rng);
    const variants: object[] = [c, { ...c, snapshot: undefined }, { ...c, adminPolicies: { web: { panicThresholdPercent: 10 } } }, { ...c, table: { ...c.table, upstreams: {} }, snapshot: { services: {} } }];
    for (const v of variants) {
      const text = s.serialize(v as Parameters<DumpSerializer['serialize']>[0], now).toString();
      assert.equal(text, reference(v), `case ${i}`);
      assert.equal(validateDump(JSON.parse(text)), undefined);
    }
  }
});

test('dump text: after a change to one service of 2,000, only its upstream and instance list are serialized again', () => {
  const services: Record<string, readonly CatalogInstance[]> = {};
  for (let i = 0; i < 2000; i++) services[`svc${i}`] = deepFreeze([inst(`svc${i}`, 0), inst(`svc${i}`, 1)]);
  const s = new DumpSerializer();
  const built = buildRouteTable({ snapshot: { services }, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS }).table;
  const first = { table: built, adminUpstreams: {}, snapshot: { services } };
  assert.equal(s.serialize(first, now).toString(), reference(first));
  assert.equal(s.piecesMade, 4000);
  // svc7 gets a third instance: a new instance list and a new upstream, everything else shared
  const list = deepFreeze([...services.svc7, inst('svc7', 2)]);
  const nextServices = { ...services, svc7: list };
  const nextUpstream = deepFreeze({ ...built.upstreams.svc7, servers: [...built.upstreams.svc7.servers, { ...built.upstreams.svc7.servers[0], id: '127.0.0.1:20002', port: 20_002 }] });
  const next = { table: { ...built, upstreams: { ...built.upstreams, svc7: nextUpstream } }, adminUpstreams: {}, snapshot: { services: nextServices } };
  assert.equal(s.serialize(next, now).toString(), reference(next));
  assert.equal(s.piecesMade, 4002);
  // a list that is not frozen may change in place: never taken from the cache
  const loose = { ...next, snapshot: { services: { ...nextServices, svc9: [inst('svc9', 0)] } } };
  s.serialize(loose, now);
  (loose.snapshot.services.svc9 as CatalogInstance[]).push(inst('svc9', 5));
  assert.equal(s.serialize(loose, now).toString(), reference(loose));
});
