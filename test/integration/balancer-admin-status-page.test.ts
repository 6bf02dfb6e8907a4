// GET /status through app.inject(): paged by upstream name, ?upstream= filter, ?view=summary with
// totals, 400 with a reason for a bad parameter, and the workers asked only for the page's upstreams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildAdminApp } from '../../balancer/src/admin/app.js';
import { TableHolder } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogSnapshot } from '../../balancer/src/routing/types.js';
import type { StatusAnswer, StatusQuery, UpstreamStatus } from '../../balancer/src/worker/runtime.js';

const logger = pino({ level: 'silent' });
const NAMES = Array.from({ length: 250 }, (_, i) => `svc${String(i).padStart(3, '0')}`);

const snapshot: CatalogSnapshot = {
  services: Object.fromEntries(NAMES.map((name, i) => [name, [1, 2].map((k) => (
    { serviceId: `${name}-${k}`, service: name, node: 'n1', address: '127.0.0.1', port: 10_000 + i * 2 + k, tags: [], meta: {}, status: 'passing' as const }
  ))])),
};

function statusOf(holder: TableHolder, name: string, worker: number): UpstreamStatus {
  const u = holder.current().upstreams[name];
  return {
    name, algorithm: u.algorithm,
    servers: u.servers.map((s, k) => ({
      id: s.id, host: s.host, port: s.port, weight: s.weight, backup: s.backup,
      // svc001's second server is ejected in worker 2 only
      status: name === 'svc001' && k === 1 && worker === 2 ? 'ejected' as const : 'ok' as const,
      failCount: 0, lastModified: 0, inflight: 1, active: null, pool: { connected: 0, pending: 0, running: 0 },
    })),
  };
}

function setup() {
  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialSnapshot: snapshot });
  const asked: StatusQuery[] = [];
  const answer = (q: StatusQuery, worker: number): StatusAnswer => ({
    ...(q.upstreams ? { upstreams: q.upstreams.filter((n) => n in holder.current().upstreams).map((n) => statusOf(holder, n, worker)) } : {}),
    ...(q.summary ? { summaries: NAMES.map((n) => ({ name: n, algorithm: 'roundrobin', servers: 2, inflight: 2, notOk: n === 'svc001' && worker === 2 ? [[holder.current().upstreams[n].servers[1].id, 'ejected'] as const] : [] })) } : {}),
  });
  const workers = {
    status: async () => { throw new Error('the whole status must not be asked for'); },
    statusQuery: async (q: StatusQuery) => {
      asked.push(q);
      return [1, 2].map((w) => ({ workerId: w, pid: 10 + w, generation: 1, answer: answer(q, w) }));
    },
  };
  return { app: buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger, workers }), asked };
}

test('GET /status pages upstreams by name; the workers are asked for that page only', async () => {
  const { app, asked } = setup();
  try {
    let res = await app.inject({ method: 'GET', url: '/status' });
    assert.equal(res.statusCode, 200);
    let s = res.json();
    assert.deepEqual([s.view, s.total, s.offset, s.limit, s.next], ['servers', 250, 0, 100, 100]);
    assert.equal(s.upstreams.length, 100);
    assert.equal(s.upstreams[0].name, 'svc000');
    assert.deepEqual(s.workers.map((w: { workerId: number }) => w.workerId), [1, 2]);
    assert.deepEqual(asked.at(-1), { upstreams: NAMES.slice(0, 100) });
    const ejected = s.upstreams[1].servers[1];
    assert.deepEqual([ejected.status, ejected.workers, ejected.inflight], ['ejected', ['ok', 'ejected'], 2], 'worst state wins, as before');

    res = await app.inject({ method: 'GET', url: '/status?offset=200' });
    s = res.json();
    assert.deepEqual([s.total, s.offset, s.next, s.upstreams.length, s.upstreams[49].name], [250, 200, undefined, 50, 'svc249']);

    res = await app.inject({ method: 'GET', url: '/status?upstream=svc007,nope&upstream=svc003' });
    s = res.json();
    assert.deepEqual(s.upstreams.map((u: { name: string }) => u.name), ['svc003', 'svc007']);
    assert.deepEqual([s.total, s.notFound], [2, ['nope']]);
    assert.deepEqual(asked.at(-1), { upstreams: ['svc003', 'svc007'] });
  } finally {
    await app.close();
  }
});

test('GET /status?view=summary: counts per upstream with the servers not ok, totals over the table', async () => {
  const { app, asked } = setup();
  try {
    const res = await app.inject({ method: 'GET', url: '/status?view=summary&limit=2' });
    assert.equal(res.statusCode, 200);
    const s = res.json();
    assert.deepEqual(asked.at(-1), { summary: true });
    assert.deepEqual([s.view, s.total, s.next], ['summary', 250, 2]);
    assert.deepEqual(s.totals, { upstreams: 250, servers: 500, ok: 499, err: 0, ejected: 1, down: 0, inflight: 1000 });
    assert.deepEqual(s.upstreams[1], { name: 'svc001', algorithm: 'roundrobin', servers: 2, ok: 1, err: 0, ejected: 1, down: 0, inflight: 4, notOk: [{ id: '127.0.0.1:10004', status: 'ejected' }] });
  } finally {
    await app.close();
  }
});

test('GET /status with a bad parameter: 400 and the reason, the workers not asked', async () => {
  const { app, asked } = setup();
  try {
    for (const [q, reason] of [['limit=0', /limit must be between 1 and 1000/], ['view=everything', /view must be/], ['page=2', /unknown query parameter "page"/]] as const) {
      const res = await app.inject({ method: 'GET', url: `/status?${q}` });
      assert.equal(res.statusCode, 400, q);
      assert.equal(res.json().error, 'ERR_BAD_QUERY');
      assert.match(res.json().message, reason);
    }
    assert.equal(asked.length, 0);
  } finally {
    await app.close();
  }
});
