// The dump file: writes debounced (at most one per interval, the latest wins, flush at shutdown), and
// an unusable file (corrupt, newer format, a field that fails validation) kept aside, never lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DumpFileError, DumpWriter, loadDump, quarantineDump, validateDump, writeDump } from '../../balancer/src/persistence/dump-file.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

const logger = pino({ level: 'silent' });
const tableWith = (port: number) => tableFromUpstreams({ api: adminUpstream('api', [{ host: '127.0.0.1', port }], DEFAULT_TABLE_DEFAULTS) }, []);

test('dump writer: 50 saves in a burst make at most 2 writes; the file holds the last; flush writes at once', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dump-writer-'));
  try {
    const file = path.join(dir, 'dump.json');
    const w = new DumpWriter(file, logger, 1000);
    for (let i = 1; i <= 50; i++) w.save({ table: tableWith(1000 + i), adminUpstreams: {} });
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(w.stats().writes <= 1, `${w.stats().writes} writes within the first interval`);
    await w.flush();
    assert.ok(w.stats().writes <= 2, `${w.stats().writes} writes for 50 saves`);
    const back = await loadDump(file);
    assert.equal(back?.table.upstreams.api.servers[0].port, 1050);
    w.save({ table: tableWith(2000), adminUpstreams: {} });
    await w.flush(); // shutdown: written now, not after the debounce
    assert.equal((await loadDump(file))?.table.upstreams.api.servers[0].port, 2000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unusable dump is refused with a reason and kept aside as <file>.corrupt-<time>', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dump-corrupt-'));
  try {
    const file = path.join(dir, 'dump.json');
    for (const [content, why] of [
      ['{"format":1,"table":', /not valid JSON/],
      [JSON.stringify({ format: 9, table: { upstreams: {}, routes: [] }, adminUpstreams: {} }), /newer version/],
    ] as const) {
      await writeFile(file, content);
      const err = await loadDump(file).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof DumpFileError && err.unusable, String(err));
      assert.match((err as Error).message, why);
      const aside = await quarantineDump(file, () => new Date('2026-12-01T14:00:00.000Z'));
      assert.match(path.basename(aside), /^dump\.json\.corrupt-2026-12-01T14-00-00-000Z$/);
      assert.equal(await readFile(aside, 'utf8'), content, 'kept byte for byte');
      assert.ok(!(await readdir(dir)).includes('dump.json'));
      await rm(aside);
    }
    // fields the workers read: check, hashKey, retry are validated
    await writeDump(file, { table: tableWith(9), adminUpstreams: {} });
    const good = JSON.parse(await readFile(file, 'utf8'));
    const api = good.table.upstreams.api;
    for (const bad of [
      { ...api, check: { type: 'http', path: '/health check', intervalMs: 1000, timeoutMs: 100, rise: 1, fall: 1, expectStatuses: [] } },
      { ...api, check: { type: 'http', path: '/h', intervalMs: -1, timeoutMs: 100, rise: 1, fall: 1, expectStatuses: [] } },
      { ...api, hashKey: { source: 'header' } },
      { ...api, hashKey: { source: 'moon' } },
      { ...api, retry: { ...api.retry, tries: 0 } },
      { ...api, retry: { ...api.retry, onStatuses: ['x'] } },
      { ...api, servers: [{ ...api.servers[0], host: 'evil/x' }] },
      { ...api, servers: [{ ...api.servers[0], port: 1.5 }] },
    ]) {
      assert.match(validateDump({ ...good, table: { ...good.table, upstreams: { api: bad } } }) ?? 'accepted', /upstream api/, JSON.stringify(bad).slice(0, 200));
    }
    assert.match(validateDump({ ...good, snapshot: { services: { web: [{ serviceId: 'x', address: 123 }] } } }) ?? 'accepted', /snapshot/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
