// Admin API through app.inject(): every endpoint, dyups text and JSON bodies, bad bodies -> 400 with
// nothing changed, token auth, admin upstreams beside Consul ones, API changes persisted in the dump.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildAdminApp } from '../../balancer/src/admin/app.js';
import { DumpWriter, loadDump } from '../../balancer/src/persistence/dump-file.js';
import { TableHolder } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogSnapshot } from '../../balancer/src/routing/types.js';
import type { UpstreamStatus } from '../../balancer/src/worker/runtime.js';

const logger = pino({ level: 'silent' });
const snapshot: CatalogSnapshot = {
  services: {
    web: [
      { serviceId: 'web-1', service: 'web', node: 'n1', address: '127.0.0.1', port: 9001, tags: [], meta: {}, status: 'passing' },
      { serviceId: 'web-2', service: 'web', node: 'n1', address: '127.0.0.1', port: 9002, tags: ['weight=3'], meta: {}, status: 'passing' },
    ],
  },
};

function fakeStatus(port: number, status: 'ok' | 'ejected'): UpstreamStatus {
  return {
    name: 'web', algorithm: 'roundrobin',
    servers: [{ id: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, backup: false, status, failCount: status === 'ok' ? 0 : 2,
      lastModified: 1, inflight: 1, active: null, pool: { connected: 1, pending: 0, running: 1 } }],
  };
}

function setup(token?: string) {
  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialSnapshot: snapshot });
  const workers = {
    status: async () => [
      { workerId: 1, pid: 11, generation: 1, upstreams: [fakeStatus(9001, 'ok')] },
      { workerId: 2, pid: 12, generation: 1, upstreams: [fakeStatus(9001, 'ejected')] },
    ],
  };
  const app = buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger, workers, token, metrics: () => ({ generation: 1, workersAlive: 2 }) });
  return { holder, app };
}

test('GET /list, /detail, /upstream/:name in dyups text and JSON', async () => {
  const { app } = setup();
  let res = await app.inject({ method: 'GET', url: '/list' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.body, 'web\n');
  assert.match(res.headers['content-type'] as string, /text\/plain/);
  res = await app.inject({ method: 'GET', url: '/list', headers: { accept: 'application/json' } });
  assert.deepEqual(res.json(), { upstreams: ['web'] });

  res = await app.inject({ method: 'GET', url: '/detail' });
  assert.equal(res.body, 'web\nserver 127.0.0.1:9001 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n' +
    'server 127.0.0.1:9002 weight=3 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0\n');
  res = await app.inject({ method: 'GET', url: '/detail?format=json' });
  assert.equal(res.json().upstreams[0].servers[1].weight, 3);

  res = await app.inject({ method: 'GET', url: '/upstream/web' });
  assert.equal(res.statusCode, 200);
  assert.match(res.body, /^server 127\.0\.0\.1:9001 weight=1/);
  res = await app.inject({ method: 'GET', url: '/upstream/web', headers: { accept: 'application/json' } });
  assert.equal(res.json().origin, 'consul');
  assert.equal(res.json().servers.length, 2);

  res = await app.inject({ method: 'GET', url: '/upstream/nope' });
  assert.equal(res.statusCode, 404);
  assert.equal(res.json().error, 'ERR_UNKNOWN_UPSTREAM');
  res = await app.inject({ method: 'GET', url: '/upstream/bad%20name' });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().error, 'ERR_VALIDATION');
  await app.close();
});

test('POST dyups text (text/plain and curl -d form encoding) and JSON; admin wins over Consul; DELETE restores Consul', async () => {
  const { app, holder } = setup();
  let res = await app.inject({ method: 'POST', url: '/upstream/api', headers: { 'content-type': 'text/plain' }, payload: 'server 127.0.0.1:8089 weight=2;server 127.0.0.1:8090 backup;' });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.body, 'success');
  assert.deepEqual(holder.current().upstreams.api.servers.map((s) => [s.id, s.weight, s.backup]), [['127.0.0.1:8089', 2, false], ['127.0.0.1:8090', 1, true]]);
  assert.equal(holder.current().upstreams.api.origin, 'admin');

  res = await app.inject({ method: 'POST', url: '/upstream/form', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'server 127.0.0.1:7000;' });
  assert.equal(res.statusCode, 200, res.body);
  assert.ok(holder.current().upstreams.form);

  // same name as a Consul service: the admin definition replaces it
  res = await app.inject({ method: 'POST', url: '/upstream/web?lb=chash&hash=header:X-User', headers: { accept: 'application/json' },
    payload: { servers: [{ host: '127.0.0.1', port: 9500, weight: 5, max_fails: 3, fail_timeout: 20, down: false, backup: false }] } });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.json().ok, true);
  const web = holder.current().upstreams.web;
  assert.equal(web.origin, 'admin');
  assert.equal(web.algorithm, 'chash');
  assert.deepEqual(web.hashKey, { source: 'header', name: 'x-user' });
  assert.deepEqual(web.servers.map((s) => [s.id, s.weight, s.maxFails, s.failTimeoutMs]), [['127.0.0.1:9500', 5, 3, 20000]]);

  res = await app.inject({ method: 'DELETE', url: '/upstream/web' });
  assert.equal(res.statusCode, 200);
  assert.equal(holder.current().upstreams.web.origin, 'consul');
  assert.equal(holder.current().upstreams.web.servers.length, 2);
  // a Consul upstream cannot be deleted; an unknown one is 404
  res = await app.inject({ method: 'DELETE', url: '/upstream/web' });
  assert.equal(res.statusCode, 409);
  assert.equal(res.json().error, 'ERR_NOT_ADMIN_UPSTREAM');
  res = await app.inject({ method: 'DELETE', url: '/upstream/ghost' });
  assert.equal(res.statusCode, 404);
  await app.close();
});

test('malformed bodies -> 400 with a reason, and the table does not change', async () => {
  const { app, holder } = setup();
  const before = holder.current().version;
  const cases: { payload: string | object; type: string; want: RegExp }[] = [
    { payload: 'server 127.0.0.1:99999;', type: 'text/plain', want: /port/ },
    { payload: 'upstream x;', type: 'text/plain', want: /server/ },
    { payload: 'server 127.0.0.1:80 weight=0;', type: 'text/plain', want: /weight/ },
    { payload: 'server 127.0.0.1:80 colour=blue;', type: 'text/plain', want: /colour/ },
    { payload: '   ', type: 'text/plain', want: /no server/ },
    { payload: '{"servers": [', type: 'application/json', want: /JSON/ },
    { payload: { servers: 'x' }, type: 'application/json', want: /servers/ },
    { payload: { nothing: [] }, type: 'application/json', want: /servers/ },
    { payload: { servers: [{ host: '127.0.0.1' }] }, type: 'application/json', want: /port/ },
    { payload: { servers: [{ host: '127.0.0.1', port: 80, weight: -1 }] }, type: 'application/json', want: /weight/ },
    { payload: { servers: [{ host: '127.0.0.1', port: 80, down: 'yes' }] }, type: 'application/json', want: /down/ },
    { payload: { servers: [{ host: 'a', port: 1 }], lb: 'random' }, type: 'application/json', want: /./ },
    { payload: { servers: [{ host: 'a', port: 1 }], hash: 'bogus' }, type: 'application/json', want: /hash/ },
  ];
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/upstream/api', headers: { 'content-type': c.type },
      payload: typeof c.payload === 'string' ? c.payload : JSON.stringify(c.payload) });
    assert.equal(res.statusCode, 400, `${JSON.stringify(c.payload)} -> ${res.statusCode} ${res.body}`);
    const body = res.json();
    assert.equal(typeof body.error, 'string');
    assert.match(body.message, c.want, JSON.stringify(c.payload));
  }
  assert.equal(holder.current().version, before);
  assert.equal(holder.current().upstreams.api, undefined);
  await app.close();
});

test('GET /status merges workers (worst state wins), /healthz, /table, /metrics', async () => {
  const { app } = setup();
  let res = await app.inject({ method: 'GET', url: '/status' });
  assert.equal(res.statusCode, 200);
  const s = res.json();
  assert.equal(s.workers.length, 2);
  const server = s.upstreams[0].servers[0];
  assert.equal(server.status, 'ejected');
  assert.deepEqual(server.workers, ['ok', 'ejected']);
  assert.equal(server.failCount, 2);
  assert.equal(server.inflight, 2);

  res = await app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.json().status, 'ok');
  assert.equal(res.json().workersAlive, 2);

  res = await app.inject({ method: 'GET', url: '/table' });
  const t = res.json();
  assert.equal(typeof t.version, 'string');
  assert.ok(t.version.length > 0);
  assert.deepEqual(Object.keys(t.upstreams), ['web']);

  res = await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.json().generation, 1);
  assert.equal(res.json().table.upstreams, 1);
  res = await app.inject({ method: 'GET', url: '/nothing-here' });
  assert.equal(res.statusCode, 404);
  assert.equal(res.json().error, 'ERR_NOT_FOUND');
  await app.close();
});

test('bearer token: 401 without or with a wrong token, /healthz stays open', async () => {
  const { app } = setup('s3cret');
  let res = await app.inject({ method: 'GET', url: '/list' });
  assert.equal(res.statusCode, 401);
  assert.equal(res.json().error, 'ERR_UNAUTHORIZED');
  res = await app.inject({ method: 'GET', url: '/list', headers: { authorization: 'Bearer wrong' } });
  assert.equal(res.statusCode, 401);
  res = await app.inject({ method: 'POST', url: '/upstream/x', headers: { 'content-type': 'text/plain' }, payload: 'server 127.0.0.1:1;' });
  assert.equal(res.statusCode, 401);
  res = await app.inject({ method: 'GET', url: '/list', headers: { authorization: 'Bearer s3cret' } });
  assert.equal(res.statusCode, 200);
  res = await app.inject({ method: 'GET', url: '/healthz' });
  assert.equal(res.statusCode, 200);
  await app.close();
});

test('API changes persist in the dump file and come back on load', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'balancer-admin-dump-'));
  try {
    const file = path.join(dir, 'dump.json');
    const { app, holder } = setup();
    const writer = new DumpWriter(file, logger);
    holder.subscribe(() => writer.save({ table: holder.current(), adminUpstreams: holder.adminUpstreams(), snapshot: holder.currentSnapshot() }));
    const res = await app.inject({ method: 'POST', url: '/upstream/api', headers: { 'content-type': 'text/plain' }, payload: 'server 127.0.0.1:8089 weight=2;' });
    assert.equal(res.statusCode, 200);
    await writer.flush();
    const dump = await loadDump(file);
    assert.ok(dump);
    assert.equal(dump.table.version, holder.current().version);
    assert.deepEqual(Object.keys(dump.adminUpstreams), ['api']);
    assert.equal(dump.adminUpstreams.api.servers[0].weight, 2);
    // a restart rebuilds the same table from the dump
    const again = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialSnapshot: dump.snapshot, initialAdminUpstreams: dump.adminUpstreams });
    assert.equal(again.current().version, holder.current().version);
    await app.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('POST/DELETE whose change the workers did not confirm in time answer 202, not "success"', async () => {
  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialSnapshot: snapshot });
  const app = buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger, applied: async () => false });
  let res = await app.inject({ method: 'POST', url: '/upstream/api', payload: 'server 127.0.0.1:9100;', headers: { 'content-type': 'text/plain' } });
  assert.equal(res.statusCode, 202);
  assert.notEqual(res.body, 'success');
  assert.ok(holder.current().upstreams.api, 'the change is kept');
  res = await app.inject({ method: 'DELETE', url: '/upstream/api?format=json' });
  assert.equal(res.statusCode, 202);
  assert.equal(res.json().live, false);
  const confirmed = buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger, applied: async () => true });
  res = await confirmed.inject({ method: 'POST', url: '/upstream/api', payload: 'server 127.0.0.1:9100;', headers: { 'content-type': 'text/plain' } });
  assert.equal(res.statusCode, 200);
  assert.equal(res.body, 'success');
});
