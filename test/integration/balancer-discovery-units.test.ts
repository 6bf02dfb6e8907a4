// Pure pieces behind discovery and the primary: health aggregation, entry mapping, backoff bounds,
// the table holder's swap rules, the status merge and the dump file's atomic write and validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { mergeWorkerStatus } from '../../balancer/src/admin/merge-status.js';
import { backoffDelay, sleep } from '../../common/backoff.js';
import { aggregateStatus, toInstances } from '../../balancer/src/discovery/health-entries.js';
import { DumpFileError, loadDump, validateDump, writeDump, writeFileAtomic } from '../../balancer/src/persistence/dump-file.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { TableHolder, type TableChange } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogSnapshot } from '../../balancer/src/routing/types.js';

const logger = pino({ level: 'silent' });

test('aggregateStatus: critical beats warning beats passing; maintenance and unknown count as critical', () => {
  const cases: [string[], string][] = [
    [[], 'passing'],
    [['passing', 'passing'], 'passing'],
    [['passing', 'warning'], 'warning'],
    [['warning', 'critical', 'passing'], 'critical'],
    [['maintenance'], 'critical'],
  ];
  for (const [statuses, want] of cases) assert.equal(aggregateStatus(statuses.map((Status) => ({ Status }))), want, statuses.join());
});

test('toInstances: service address falls back to node address, unusable entries skipped, sorted by ID', () => {
  const got = toInstances('web', [
    { Node: { Node: 'n2', Address: '10.0.0.2' }, Service: { ID: 'web-b', Service: 'web', Address: '', Port: 81, Tags: null, Meta: null }, Checks: [{ Status: 'warning' }] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'web-a', Service: 'web', Address: '10.1.1.1', Port: 80, Tags: ['weight=2'], Meta: { zone: 'z1' } }, Checks: [] },
    { Node: { Node: 'n3', Address: '10.0.0.3' }, Service: { ID: 'web-noport', Service: 'web', Port: 0 } },
    { Node: { Node: 'n4' }, Service: { ID: 'web-noaddr', Service: 'web', Port: 90 } },
  ]);
  assert.deepEqual(got, [
    // nodeAddress only where the service has an address of its own (templates read it as NodeAddress)
    { serviceId: 'web-a', service: 'web', node: 'n1', address: '10.1.1.1', port: 80, tags: ['weight=2'], meta: { zone: 'z1' }, status: 'passing', nodeAddress: '10.0.0.1' },
    { serviceId: 'web-b', service: 'web', node: 'n2', address: '10.0.0.2', port: 81, tags: [], meta: {}, status: 'warning' },
  ]);
  assert.deepEqual(toInstances('web', { not: 'an array' }), []);
});

test('backoffDelay: grows exponentially, jitter between half and all, capped', () => {
  const p = { baseMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(p, 0, () => 0), 50);
  assert.equal(backoffDelay(p, 0, () => 1), 100);
  assert.equal(backoffDelay(p, 2, () => 1), 400);
  assert.equal(backoffDelay(p, 10, () => 1), 1000);
  assert.equal(backoffDelay(p, 1000, () => 0.5), 750);
});

test('sleep resolves early on abort', async () => {
  const c = new AbortController();
  const t0 = Date.now();
  setTimeout(() => c.abort(), 10);
  await sleep(5000, c.signal);
  assert.ok(Date.now() - t0 < 1000);
});

const snap = (ports: number[]): CatalogSnapshot => ({
  services: { web: ports.map((port) => ({ serviceId: `web-${port}`, service: 'web', node: 'n', address: '127.0.0.1', port, tags: [], meta: {}, status: 'passing' as const })) },
});

test('TableHolder: swaps and notifies only when the version changes; admin wins; adopt; failed build keeps the table', () => {
  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialSnapshot: snap([1001]) });
  const changes: TableChange[] = [];
  holder.subscribe((c) => changes.push(c));
  const v1 = holder.current().version;
  assert.equal(holder.setSnapshot(snap([1001])), false);
  assert.equal(changes.length, 0);
  assert.equal(holder.setSnapshot(snap([1001, 1002])), true);
  assert.equal(changes.length, 1);
  assert.equal(changes[0].previous.version, v1);
  assert.equal(changes[0].cause, 'snapshot');
  assert.ok(changes[0].diff.length > 0, 'diff lines are reported');

  holder.setAdminUpstream(adminUpstream('web', [{ host: '127.0.0.1', port: 2000 }], DEFAULT_TABLE_DEFAULTS));
  assert.deepEqual(holder.current().upstreams.web.servers.map((s) => s.port), [2000]);
  // Consul changes under an admin upstream of the same name do not show
  assert.equal(holder.setSnapshot(snap([1003])), false);
  assert.equal(holder.deleteAdminUpstream('web'), true);
  assert.deepEqual(holder.current().upstreams.web.servers.map((s) => s.port), [1003]);
  assert.equal(holder.deleteAdminUpstream('web'), false);

  const external = tableFromUpstreams({ x: adminUpstream('x', [{ host: '127.0.0.1', port: 3 }], DEFAULT_TABLE_DEFAULTS) }, []);
  assert.equal(holder.adopt(external), true);
  assert.equal(holder.adopt(external), false);
  assert.equal(changes[changes.length - 1].cause, 'external');

  const broken = new TableHolder({
    defaults: DEFAULT_TABLE_DEFAULTS, logger, initialTable: external,
    build: () => { throw new Error('boom'); },
  });
  assert.equal(broken.setSnapshot(snap([1])), false);
  assert.equal(broken.current().version, external.version);
});

test('mergeWorkerStatus: counters add up, worst state wins, per-worker states kept', () => {
  const s = (status: 'ok' | 'err' | 'ejected' | 'down', failCount: number, lastModified: number, lastError?: string) => ({
    id: '127.0.0.1:1', host: '127.0.0.1', port: 1, weight: 1, backup: false, status, failCount, lastModified, inflight: 1, lastError, active: null,
    pool: { connected: 2, pending: 0, running: 1 },
  });
  const merged = mergeWorkerStatus([
    [{ name: 'web', algorithm: 'roundrobin', servers: [s('err', 1, 10, 'old')] }],
    [{ name: 'web', algorithm: 'roundrobin', servers: [s('ok', 0, 5)] }],
    [{ name: 'web', algorithm: 'roundrobin', servers: [s('ejected', 3, 20, 'new')] }],
  ]);
  assert.equal(merged.length, 1);
  const m = merged[0].servers[0];
  assert.equal(m.status, 'ejected');
  assert.deepEqual(m.workers, ['err', 'ok', 'ejected']);
  assert.equal(m.failCount, 4);
  assert.equal(m.inflight, 3);
  assert.equal(m.lastModified, 20);
  assert.equal(m.lastError, 'new');
  assert.deepEqual(m.pool, { connected: 6, pending: 0, running: 3 });
});

test('dump file: atomic write leaves no temp files, round-trips, refuses foreign or truncated files', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'balancer-dump-unit-'));
  try {
    const file = path.join(dir, 'dump.json');
    assert.equal(await loadDump(file), undefined, 'missing file is not an error');
    const table = tableFromUpstreams({ api: adminUpstream('api', [{ host: '127.0.0.1', port: 9 }], DEFAULT_TABLE_DEFAULTS) }, []);
    await writeDump(file, { table, adminUpstreams: { api: table.upstreams.api }, snapshot: snap([5]) });
    for (let i = 0; i < 20; i++) await writeFileAtomic(path.join(dir, 'other.json'), `{"n":${i}}`);
    assert.deepEqual((await readdir(dir)).sort(), ['dump.json', 'other.json']);
    assert.equal(await readFile(path.join(dir, 'other.json'), 'utf8'), '{"n":19}');
    const back = await loadDump(file);
    assert.equal(back?.table.version, table.version);
    assert.deepEqual(back?.snapshot, snap([5]));

    const full = await readFile(file, 'utf8');
    await writeFile(file, full.slice(0, full.length / 2));
    await assert.rejects(loadDump(file), (err: unknown) => err instanceof DumpFileError && err.code === 'ERR_DUMP_FILE');
    assert.match(validateDump({ format: 2 }) ?? '', /format/);
    assert.match(validateDump({ format: 1, table: { upstreams: {}, routes: [] } }) ?? '', /adminUpstreams/);
    assert.equal(validateDump({ format: 1, table: { upstreams: {}, routes: [] }, adminUpstreams: {} }), undefined);
    // a structurally valid file whose servers or upstream settings are not what the workers read
    const good = JSON.parse(full) as { table: { upstreams: Record<string, Record<string, unknown>> }; adminUpstreams: Record<string, unknown> };
    assert.equal(validateDump(good), undefined, 'our own dump is valid');
    const api = good.table.upstreams.api;
    const broken: Record<string, unknown>[] = [
      { ...api, servers: [{}] },
      { ...api, servers: [{ ...(api.servers as object[])[0], port: 'x' }] },
      { ...api, servers: [null] },
      { ...api, retry: undefined },
      { ...api, algorithm: 'random' },
    ];
    for (const u of broken) {
      const bad = { ...good, table: { ...good.table, upstreams: { api: u } } };
      assert.match(validateDump(bad) ?? 'accepted', /upstream api/, JSON.stringify(u).slice(0, 100));
      const badAdmin = { ...good, adminUpstreams: { api: u } };
      assert.match(validateDump(badAdmin) ?? 'accepted', /adminUpstreams: upstream api/);
    }
    assert.match(validateDump({ ...good, table: { ...good.table, routes: [{ host: 1 }] } }) ?? 'accepted', /route/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
