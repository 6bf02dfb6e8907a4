// The Consul double answers like a single-node Consul agent: shapes, filters, indexes, blocking, timers.
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { requestKind, startConsulDouble, type ConsulDouble } from '../support/consul-double/index.js';

interface Reply {
  status: number;
  index: number;
  headers: Headers;
  text: string;
  json: any;
}

async function api(base: string, method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Reply> {
  const res = await fetch(base + path, {
    method,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, index: Number(res.headers.get('x-consul-index')), headers: res.headers, text, json };
}

const register = (d: ConsulDouble, body: unknown) => api(d.url, 'PUT', '/v1/agent/service/register', body);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('consul double: agent registration', () => {
  let d: ConsulDouble;
  before(async () => (d = await startConsulDouble({ nodeName: 'n1' })));
  after(() => d.close());

  it('names checks like Consul: service:<id> for one check, service:<id>:<n> for several', async () => {
    assert.equal((await register(d, { ID: 'one', Name: 'web', Port: 80, Check: { TTL: '10s' } })).status, 200);
    assert.equal(
      (await register(d, { ID: 'two', Name: 'web', Port: 81, Checks: [{ TTL: '10s', Status: 'passing' }, { HTTP: 'http://127.0.0.1:1/h', Interval: '10s' }] })).status,
      200,
    );
    assert.equal((await register(d, { ID: 'three', Name: 'web', Checks: [{ TTL: '5s', CheckID: 'mine', Name: 'custom' }] })).status, 200);
    const checks = (await api(d.url, 'GET', '/v1/agent/checks')).json;
    assert.deepEqual(Object.keys(checks).sort(), ['mine', 'service:one', 'service:two:1', 'service:two:2']);
    assert.equal(checks['service:one'].Status, 'critical');
    assert.equal(checks['service:one'].Name, "Service 'web' check");
    assert.equal(checks['service:two:1'].Status, 'passing');
    assert.equal(checks['service:two:2'].Type, 'http');
    assert.equal(checks.mine.Name, 'custom');
    assert.equal(checks.mine.ServiceID, 'three');
  });

  it('lists agent services with the agent casing and removes checks on deregister', async () => {
    await register(d, { ID: 'api-1', Name: 'api', Tags: ['v1'], Address: '10.1.2.3', Port: 9000, Meta: { team: 'x' }, Check: { TTL: '30s' } });
    const svc = (await api(d.url, 'GET', '/v1/agent/services')).json['api-1'];
    assert.deepEqual(svc, {
      ID: 'api-1', Service: 'api', Tags: ['v1'], Meta: { team: 'x' }, Port: 9000, Address: '10.1.2.3',
      Weights: { Passing: 1, Warning: 1 }, EnableTagOverride: false, Datacenter: 'dc1',
    });
    assert.equal((await api(d.url, 'PUT', '/v1/agent/service/deregister/api-1')).status, 200);
    assert.equal((await api(d.url, 'GET', '/v1/agent/services')).json['api-1'], undefined);
    assert.equal((await api(d.url, 'GET', '/v1/agent/checks')).json['service:api-1'], undefined);
    const again = await api(d.url, 'PUT', '/v1/agent/service/deregister/api-1');
    assert.equal(again.status, 404);
  });

  it('rejects invalid registrations with 400 and a text body', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ Port: 1 }, /Missing service name/],
      [{ Name: 'x', Check: { HTTP: 'http://a/' } }, /Interval must be > 0/],
      [{ Name: 'x', Check: { TTL: '1s', Status: 'bogus' } }, /Status for checks must/],
      [{ Name: 'x', Check: { TTL: 'ten' } }, /invalid duration/],
      [{ Name: 'x', Port: 'eighty' }, /Request decode failed/],
      [{ Name: 'x', Address: '0.0.0.0' }, /Invalid service address/],
      [{ Name: 'x', Meta: { 'consul-x': 'y' } }, /Invalid Service Meta/],
    ];
    for (const [body, message] of cases) {
      const r = await register(d, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.text, message);
    }
    assert.equal((await api(d.url, 'PUT', '/v1/agent/service/register', '{not json')).status, 400);
    assert.equal((await api(d.url, 'GET', '/v1/agent/service/register')).status, 405);
  });

  it('re-registering an ID replaces the service; snake_case and lower-case fields are accepted', async () => {
    await register(d, { id: 'r1', name: 'red', tags: ['a'], port: 1, check: { ttl: '10s', deregister_critical_service_after: '90m' } });
    await register(d, { ID: 'r1', Name: 'red', Tags: ['b'], Port: 2 });
    const svc = (await api(d.url, 'GET', '/v1/agent/services')).json.r1;
    assert.deepEqual([svc.Tags, svc.Port], [['b'], 2]);
    await register(d, { ID: 'r1', Name: 'red', Port: 2 }).then(() => api(d.url, 'PUT', '/v1/agent/service/register?replace-existing-checks', { ID: 'r1', Name: 'red', Port: 2 }));
    assert.equal((await api(d.url, 'GET', '/v1/agent/checks')).json['service:r1'], undefined);
  });

  it('answers status/leader, agent/self and catalog/nodes', async () => {
    assert.equal((await api(d.url, 'GET', '/v1/status/leader')).json, '127.0.0.1:8300');
    const self = (await api(d.url, 'GET', '/v1/agent/self')).json;
    assert.deepEqual([self.Config.NodeName, self.Config.Datacenter, self.Member.Addr], ['n1', 'dc1', '127.0.0.1']);
    const nodes = await api(d.url, 'GET', '/v1/catalog/nodes');
    assert.equal(nodes.json[0].Node, 'n1');
    assert.ok(nodes.index >= 1);
  });
});

describe('consul double: catalog and health', () => {
  let d: ConsulDouble;
  before(async () => {
    d = await startConsulDouble({ nodeName: 'n1', nodeAddress: '10.0.0.9' });
    await register(d, { ID: 'web-a', Name: 'web', Tags: ['blue', 'x'], Address: '10.0.0.1', Port: 8080, Meta: { v: '1' }, Check: { TTL: '60s', Status: 'passing' } });
    await register(d, { ID: 'web-b', Name: 'web', Tags: ['green'], Address: '10.0.0.2', Port: 8080, Check: { TTL: '60s' } });
  });
  after(() => d.close());

  it('catalog/services maps names to the union of tags (in Go map order: compared as sets)', async () => {
    const r = await api(d.url, 'GET', '/v1/catalog/services');
    assert.deepEqual(Object.keys(r.json), ['consul', 'web']);
    assert.deepEqual(r.json.consul, []);
    assert.deepEqual([...r.json.web].sort(), ['blue', 'green', 'x']);
    assert.ok(r.index >= 1);
    assert.equal(r.headers.get('x-consul-knownleader'), 'true');
    assert.equal(r.headers.get('x-consul-lastcontact'), '0');
  });

  it('catalog/service uses Consul field names and filters by tag', async () => {
    const all = (await api(d.url, 'GET', '/v1/catalog/service/web')).json;
    assert.equal(all.length, 2);
    const a = all[0];
    for (const f of ['ID', 'Node', 'Address', 'Datacenter', 'TaggedAddresses', 'NodeMeta', 'ServiceID', 'ServiceName', 'ServiceTags', 'ServiceAddress', 'ServicePort', 'ServiceMeta', 'ServiceWeights', 'ServiceEnableTagOverride', 'CreateIndex', 'ModifyIndex']) {
      assert.ok(f in a, f);
    }
    assert.deepEqual([a.Node, a.Address, a.Datacenter, a.ServiceID, a.ServiceAddress, a.ServicePort, a.ServiceMeta], ['n1', '10.0.0.9', 'dc1', 'web-a', '10.0.0.1', 8080, { v: '1' }]);
    const green = (await api(d.url, 'GET', '/v1/catalog/service/web?tag=green')).json;
    assert.deepEqual(green.map((s: any) => s.ServiceID), ['web-b']);
    assert.deepEqual((await api(d.url, 'GET', '/v1/catalog/service/web?tag=blue&tag=x')).json.length, 1);
    assert.deepEqual((await api(d.url, 'GET', '/v1/catalog/service/nope')).json, []);
  });

  it('health/service returns {Node, Service, Checks} with passing and tag filters', async () => {
    const all = (await api(d.url, 'GET', '/v1/health/service/web')).json;
    assert.equal(all.length, 2);
    assert.deepEqual(Object.keys(all[0]).sort(), ['Checks', 'Node', 'Service']);
    assert.equal(all[0].Service.ID, 'web-a');
    assert.equal(all[0].Node.Node, 'n1');
    const ids = all[1].Checks.map((c: any) => c.CheckID);
    assert.ok(ids.includes('service:web-b'));
    const passing = (await api(d.url, 'GET', '/v1/health/service/web?passing')).json;
    assert.deepEqual(passing.map((e: any) => e.Service.ID), ['web-a']);
    assert.equal((await api(d.url, 'GET', '/v1/health/service/web?passing=false')).json.length, 2);
    assert.deepEqual((await api(d.url, 'GET', '/v1/health/service/web?tag=green')).json.map((e: any) => e.Service.ID), ['web-b']);
    const critical = (await api(d.url, 'GET', '/v1/health/state/critical')).json;
    assert.deepEqual(critical.map((c: any) => c.CheckID), ['service:web-b']);
  });
});

describe('consul double: check timers', () => {
  it('a TTL check goes critical when not refreshed, passes again on check/pass with its note', async () => {
    const d = await startConsulDouble();
    try {
      await register(d, { ID: 't1', Name: 'ttl', Check: { TTL: '700ms', Status: 'passing' } });
      assert.equal((await api(d.url, 'PUT', '/v1/agent/check/pass/service:t1?note=fine')).status, 200);
      let c = (await api(d.url, 'GET', '/v1/agent/checks')).json['service:t1'];
      assert.deepEqual([c.Status, c.Output], ['passing', 'fine']);
      await sleep(1000);
      c = (await api(d.url, 'GET', '/v1/agent/checks')).json['service:t1'];
      assert.equal(c.Status, 'critical');
      assert.match(c.Output, /TTL expired/);
      await api(d.url, 'PUT', '/v1/agent/check/warn/service:t1');
      assert.equal((await api(d.url, 'GET', '/v1/agent/checks')).json['service:t1'].Status, 'warning');
      await api(d.url, 'PUT', '/v1/agent/check/update/service:t1', { Status: 'passing', Output: 'ok' });
      assert.equal((await api(d.url, 'GET', '/v1/agent/checks')).json['service:t1'].Status, 'passing');
      assert.equal((await api(d.url, 'PUT', '/v1/agent/check/pass/nope')).status, 404);
      assert.equal((await api(d.url, 'PUT', '/v1/agent/check/update/service:t1', { Status: 'bad' })).status, 400);
    } finally {
      await d.close();
    }
  });

  it('DeregisterCriticalServiceAfter reaps a service whose check stays critical', async () => {
    // fast reaper and no 1-minute floor, asked for explicitly: this test is about the reaping itself
    const d = await startConsulDouble({ reapIntervalMs: 50, deregisterCriticalMinMs: 0 });
    try {
      const t0 = Date.now();
      await register(d, { ID: 'doomed', Name: 'd', Check: { TTL: '10s', DeregisterCriticalServiceAfter: '200ms' } });
      await register(d, { ID: 'kept', Name: 'd', Check: { TTL: '10s', Status: 'passing', DeregisterCriticalServiceAfter: '200ms' } });
      let ids: string[] = [];
      for (let i = 0; i < 60; i++) {
        ids = Object.keys((await api(d.url, 'GET', '/v1/agent/services')).json);
        if (ids.length === 1) break;
        await sleep(50);
      }
      assert.deepEqual(ids, ['kept']);
      assert.ok(Date.now() - t0 >= 200, 'not reaped before DeregisterCriticalServiceAfter');
    } finally {
      await d.close();
    }
  });

  it('runs HTTP (2xx passing, 429 warning, else critical) and TCP checks when runChecks is on', async () => {
    let code = 200;
    const target = http.createServer((_req, res) => {
      res.statusCode = code;
      res.end('body');
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const port = (target.address() as { port: number }).port;
    const d = await startConsulDouble({ runChecks: true });
    const status = async (id: string) => (await api(d.url, 'GET', '/v1/agent/checks')).json[id]?.Status;
    const until = async (id: string, want: string) => {
      for (let i = 0; i < 100 && (await status(id)) !== want; i++) await sleep(25);
      assert.equal(await status(id), want, id);
    };
    try {
      await register(d, {
        ID: 'h', Name: 'h',
        Checks: [
          { HTTP: `http://127.0.0.1:${port}/health`, Interval: '50ms', Timeout: '1s' },
          { TCP: `127.0.0.1:${port}`, Interval: '50ms' },
          { TCP: '127.0.0.1:1', Interval: '50ms', Status: 'passing' },
        ],
      });
      await until('service:h:1', 'passing');
      await until('service:h:2', 'passing');
      await until('service:h:3', 'critical');
      code = 429;
      await until('service:h:1', 'warning');
      code = 503;
      await until('service:h:1', 'critical');
      assert.match((await api(d.url, 'GET', '/v1/agent/checks')).json['service:h:1'].Output, /503/);
    } finally {
      await d.close();
      await new Promise((r) => target.close(r));
    }
  });
});

describe('consul double: KV', () => {
  let d: ConsulDouble;
  before(async () => (d = await startConsulDouble()));
  after(() => d.close());

  it('stores values base64 in JSON, raw on ?raw, flags, 404 with an index when missing', async () => {
    assert.equal((await api(d.url, 'PUT', '/v1/kv/app/a?flags=42', 'hello')).json, true);
    const r = await api(d.url, 'GET', '/v1/kv/app/a');
    assert.equal(r.json[0].Key, 'app/a');
    assert.equal(Buffer.from(r.json[0].Value, 'base64').toString(), 'hello');
    assert.equal(r.json[0].Flags, 42);
    assert.equal(r.index, r.json[0].ModifyIndex);
    assert.equal((await api(d.url, 'GET', '/v1/kv/app/a?raw')).text, 'hello');
    const missing = await api(d.url, 'GET', '/v1/kv/app/none');
    assert.equal(missing.status, 404);
    assert.ok(missing.index >= 1);
  });

  it('lists with recurse and keys (with separator), deletes recursively', async () => {
    await api(d.url, 'PUT', '/v1/kv/tree/x/1', 'a');
    await api(d.url, 'PUT', '/v1/kv/tree/x/2', 'b');
    await api(d.url, 'PUT', '/v1/kv/tree/y', '');
    assert.deepEqual((await api(d.url, 'GET', '/v1/kv/tree/?recurse')).json.map((e: any) => e.Key), ['tree/x/1', 'tree/x/2', 'tree/y']);
    assert.equal((await api(d.url, 'GET', '/v1/kv/tree/y')).json[0].Value, null);
    assert.deepEqual((await api(d.url, 'GET', '/v1/kv/tree/?keys')).json, ['tree/x/1', 'tree/x/2', 'tree/y']);
    assert.deepEqual((await api(d.url, 'GET', '/v1/kv/tree/?keys&separator=/')).json, ['tree/x/', 'tree/y']);
    assert.equal((await api(d.url, 'DELETE', '/v1/kv/tree/x?recurse')).json, true);
    assert.deepEqual((await api(d.url, 'GET', '/v1/kv/tree/?keys')).json, ['tree/y']);
    assert.equal((await api(d.url, 'GET', '/v1/kv/nothing/?recurse')).status, 404);
  });

  it('honours cas on put and delete', async () => {
    assert.equal((await api(d.url, 'PUT', '/v1/kv/lock?cas=0', 'first')).json, true);
    assert.equal((await api(d.url, 'PUT', '/v1/kv/lock?cas=0', 'second')).json, false);
    const idx = (await api(d.url, 'GET', '/v1/kv/lock')).json[0].ModifyIndex;
    assert.equal((await api(d.url, 'PUT', `/v1/kv/lock?cas=${idx + 100}`, 'x')).json, false);
    assert.equal((await api(d.url, 'PUT', `/v1/kv/lock?cas=${idx}`, 'third')).json, true);
    assert.equal((await api(d.url, 'GET', '/v1/kv/lock?raw')).text, 'third');
    assert.equal((await api(d.url, 'DELETE', `/v1/kv/lock?cas=${idx}`)).json, false);
    const idx2 = (await api(d.url, 'GET', '/v1/kv/lock')).json[0].ModifyIndex;
    assert.equal((await api(d.url, 'DELETE', `/v1/kv/lock?cas=${idx2}`)).json, true);
    assert.equal((await api(d.url, 'GET', '/v1/kv/lock')).status, 404);
  });
});

describe('consul double: blocking queries', () => {
  let d: ConsulDouble;
  before(async () => {
    d = await startConsulDouble();
    await register(d, { ID: 'w1', Name: 'web', Port: 1, Check: { TTL: '60s', Status: 'passing' } });
  });
  after(() => d.close());

  it('returns at once when the index is behind, and when a change arrives', async () => {
    const first = await api(d.url, 'GET', '/v1/health/service/web');
    const t0 = Date.now();
    const behind = await api(d.url, 'GET', `/v1/health/service/web?index=${first.index - 1}&wait=5s`);
    assert.ok(Date.now() - t0 < 1500);
    assert.equal(behind.index, first.index);
    const pending = api(d.url, 'GET', `/v1/health/service/web?index=${first.index}&wait=5s`);
    await sleep(100);
    await register(d, { ID: 'w2', Name: 'web', Port: 2 });
    const changed = await pending;
    assert.ok(changed.index > first.index);
    assert.equal(changed.json.length, 2);
    assert.ok(Date.now() - t0 < 2000);
  });

  it('times out after wait (plus at most wait/16) when nothing changes', async () => {
    const first = await api(d.url, 'GET', '/v1/catalog/service/web');
    const t0 = Date.now();
    const r = await api(d.url, 'GET', `/v1/catalog/service/web?index=${first.index}&wait=300ms`);
    const took = Date.now() - t0;
    assert.ok(took >= 290 && took < 300 + 300 / 16 + 1000, `took ${took}`);
    assert.equal(r.index, first.index);
    assert.equal((await api(d.url, 'GET', '/v1/catalog/services?wait=ten')).status, 400);
  });

  it('does not move on unrelated writes nor on check updates that keep the status', async () => {
    const health = await api(d.url, 'GET', '/v1/health/service/web');
    const catalog = await api(d.url, 'GET', '/v1/catalog/service/web');
    // (an empty prefix answers with the whole KV table's index, as Consul does, so give it an entry)
    await api(d.url, 'PUT', '/v1/kv/cfg/a', 'x');
    const kv = await api(d.url, 'GET', '/v1/kv/cfg/?recurse');
    const waits = [
      api(d.url, 'GET', `/v1/health/service/web?index=${health.index}&wait=400ms`),
      api(d.url, 'GET', `/v1/catalog/service/web?index=${catalog.index}&wait=400ms`),
      api(d.url, 'GET', `/v1/kv/cfg/?recurse&index=${kv.index}&wait=400ms`),
    ];
    const t0 = Date.now();
    await register(d, { ID: 'other', Name: 'other', Port: 3, Check: { TTL: '60s' } });
    await api(d.url, 'PUT', '/v1/kv/elsewhere/k', 'v');
    await api(d.url, 'PUT', '/v1/agent/check/pass/service:w1');
    await api(d.url, 'PUT', '/v1/agent/check/pass/service:w1');
    const [h, c, k] = await Promise.all(waits);
    assert.ok(Date.now() - t0 >= 380, 'queries waited for their timeout');
    assert.equal(h.index, health.index);
    assert.equal(c.index, catalog.index);
    assert.equal(k.index, kv.index);
    // a status change moves the service's index, which catalog and health answers share
    // (catalog.go ensureCheckTxn -> catalogUpdateServiceIndexes)
    await api(d.url, 'PUT', '/v1/agent/check/fail/service:w1');
    const failed = (await api(d.url, 'GET', '/v1/health/service/web')).index;
    assert.ok(failed > health.index);
    assert.equal((await api(d.url, 'GET', '/v1/catalog/service/web')).index, failed);
    const catalogAfterFail = failed;
    // deregistering moves the catalog index (tombstone)
    await api(d.url, 'PUT', '/v1/agent/service/deregister/w2');
    assert.ok((await api(d.url, 'GET', '/v1/catalog/service/web')).index > catalogAfterFail);
  });

  it('an identical re-registration (a resync) moves no index; a changed one does', async () => {
    const body = { ID: 'same', Name: 'resync', Tags: ['a'], Port: 5, Meta: { k: 'v' }, Check: { TTL: '60s', Status: 'passing' } };
    await register(d, body);
    const health = await api(d.url, 'GET', '/v1/health/service/resync');
    await register(d, { ...body, Meta: { k: 'v' } });
    assert.equal((await api(d.url, 'GET', '/v1/health/service/resync')).index, health.index);
    assert.equal((await api(d.url, 'GET', '/v1/agent/checks')).json['service:same'].Status, 'passing');
    await register(d, { ...body, Tags: ['b'] });
    const after = await api(d.url, 'GET', '/v1/health/service/resync');
    assert.ok(after.index > health.index);
    assert.deepEqual(after.json[0].Checks.find((c: any) => c.CheckID === 'service:same').ServiceTags, ['b']);
  });

  it('KV blocking query wakes on a write to its key', async () => {
    await api(d.url, 'PUT', '/v1/kv/watch/me', '1');
    const first = await api(d.url, 'GET', '/v1/kv/watch/me');
    const pending = api(d.url, 'GET', `/v1/kv/watch/me?index=${first.index}&wait=5s`);
    await sleep(50);
    await api(d.url, 'PUT', '/v1/kv/watch/me', '2');
    const r = await pending;
    assert.ok(r.index > first.index);
    assert.equal(Buffer.from(r.json[0].Value, 'base64').toString(), '2');
  });
});

describe('consul double: stop, start, latency', () => {
  it('stop() fails in-flight blocking queries and refuses connections; start() serves the same state on the same port', async () => {
    const d = await startConsulDouble();
    try {
      await register(d, { ID: 's1', Name: 's', Port: 1 });
      const first = await api(d.url, 'GET', '/v1/catalog/service/s');
      const inflight = api(d.url, 'GET', `/v1/catalog/service/s?index=${first.index}&wait=5s`).then(
        () => 'answered',
        () => 'failed',
      );
      await sleep(50);
      await d.stop();
      assert.equal(await inflight, 'failed');
      await assert.rejects(api(d.url, 'GET', '/v1/catalog/services'));
      await d.start();
      const again = await api(d.url, 'GET', '/v1/catalog/service/s');
      assert.equal(again.json[0].ServiceID, 's1');
      assert.equal(again.index, first.index);
    } finally {
      await d.close();
    }
  });

  it('setLatency delays every answer', async () => {
    const d = await startConsulDouble();
    try {
      d.setLatency(150);
      const t0 = Date.now();
      await api(d.url, 'GET', '/v1/status/leader');
      assert.ok(Date.now() - t0 >= 140);
    } finally {
      await d.close();
    }
  });
});

describe('consul double: http_max_conns_per_client', () => {
  /** Opens a raw connection and sends one GET; resolves with the first bytes the double sends back. */
  function rawGet(d: ConsulDouble, path: string): { socket: import('node:net').Socket; reply: Promise<string> } {
    const socket = netConnect({ host: d.host, port: d.port });
    socket.on('error', () => undefined);
    const reply = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('close', () => resolve(text));
    });
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    return { socket, reply };
  }

  it('beyond the limit answers a raw 429 and closes, like Consul 1.9+; under it connections are served', async () => {
    const d = await startConsulDouble({ httpMaxConnsPerClient: 3 });
    const held: import('node:net').Socket[] = [];
    try {
      const index = d.state.indexForCatalogServices();
      // three blocking queries hold the three allowed connections
      for (let i = 0; i < 3; i++) held.push(rawGet(d, `/v1/catalog/services?index=${index}&wait=10s`).socket);
      const deadline = Date.now() + 5000;
      while (d.stats().open < 3 && Date.now() < deadline) await sleep(10);
      assert.equal(d.stats().open, 3);
      const over = rawGet(d, '/v1/catalog/services');
      assert.equal(await over.reply, 'HTTP/1.1 429 Too Many Requests\r\n\r\n');
      assert.equal(d.stats().rejected, 1);
      assert.equal(d.stats().peakPerClient, 3);
      held.pop()!.destroy();
      while (d.stats().open > 2 && Date.now() < deadline) await sleep(10);
      const ok = rawGet(d, '/v1/status/leader');
      const text = await Promise.race([ok.reply, new Promise<string>((r) => ok.socket.once('data', (c: Buffer) => r(c.toString('latin1'))))]);
      assert.match(text, /^HTTP\/1\.1 200 OK/);
      ok.socket.destroy();
    } finally {
      for (const s of held) s.destroy();
      await d.close();
    }
  });

  it('defaults to 200 and can be changed at run time', async () => {
    const d = await startConsulDouble();
    try {
      const sockets = Array.from({ length: 200 }, () => netConnect({ host: d.host, port: d.port }).on('error', () => undefined));
      const deadline = Date.now() + 5000;
      while (d.stats().open < 200 && Date.now() < deadline) await sleep(10);
      assert.equal(d.stats().open, 200);
      assert.equal(d.stats().rejected, 0);
      // undici reads the raw answer as a 429 response ended by the close
      assert.equal((await api(d.url, 'GET', '/v1/catalog/services')).status, 429);
      assert.equal(d.stats().rejected, 1);
      d.setMaxConnsPerClient(0); // 0 = unlimited
      assert.equal((await api(d.url, 'GET', '/v1/catalog/services')).status, 200);
      for (const s of sockets) s.destroy();
    } finally {
      await d.close();
    }
  });
});

describe('consul double: maintenance mode and Connect sidecars', () => {
  it('service and node maintenance add critical _service_maintenance/_node_maintenance checks, removed when disabled', async () => {
    const d = await startConsulDouble();
    try {
      await register(d, { ID: 'm1', Name: 'm', Port: 1, Check: { TTL: '30s', Status: 'passing' } });
      const before = await api(d.url, 'GET', '/v1/health/service/m');
      assert.equal((await api(d.url, 'PUT', '/v1/agent/service/maintenance/m1?enable=true&reason=deploy')).status, 200);
      const on = await api(d.url, 'GET', '/v1/health/service/m');
      assert.ok(on.index > before.index);
      const maint = on.json[0].Checks.find((c: { CheckID: string }) => c.CheckID === '_service_maintenance:m1');
      assert.equal(maint.Status, 'critical');
      assert.equal(maint.Notes, 'deploy');
      await api(d.url, 'PUT', '/v1/agent/service/maintenance/m1?enable=false');
      const off = await api(d.url, 'GET', '/v1/health/service/m');
      assert.ok(off.index > on.index);
      assert.equal(off.json[0].Checks.some((c: { CheckID: string }) => c.CheckID.startsWith('_service')), false);
      await api(d.url, 'PUT', '/v1/agent/maintenance?enable=true');
      const node = await api(d.url, 'GET', '/v1/health/service/m');
      assert.equal(node.json[0].Checks.find((c: { CheckID: string }) => c.CheckID === '_node_maintenance').Status, 'critical');
      assert.equal((await api(d.url, 'PUT', '/v1/agent/service/maintenance/nope?enable=true')).status, 404);
    } finally {
      await d.close();
    }
  });

  it('keeps a registration Kind (connect-proxy) in health and catalog answers', async () => {
    const d = await startConsulDouble();
    try {
      await register(d, { ID: 'p1', Name: 'web-sidecar-proxy', Kind: 'connect-proxy', Port: 21000 });
      const h = await api(d.url, 'GET', '/v1/health/service/web-sidecar-proxy');
      assert.equal(h.json[0].Service.Kind, 'connect-proxy');
      const c = await api(d.url, 'GET', '/v1/catalog/service/web-sidecar-proxy');
      assert.equal(c.json[0].ServiceKind, 'connect-proxy');
    } finally {
      await d.close();
    }
  });
});

describe('consul double: the UI service summary', () => {
  it('lists every service name with its instance and check counts, with the catalog index, blocking', async () => {
    const d = await startConsulDouble({ nodeName: 'n1' });
    try {
      await register(d, { ID: 'web-1', Name: 'web', Tags: ['b', 'a'], Port: 80, Check: { TTL: '10s' } });
      await register(d, { ID: 'web-2', Name: 'web', Tags: ['a'], Port: 81, Check: { TTL: '10s', Status: 'passing' } });
      await register(d, { ID: 'api-1', Name: 'api', Port: 90, Meta: { 'external-source': 'nomad' } });
      const first = await api(d.url, 'GET', '/v1/internal/ui/services');
      assert.equal(first.status, 200);
      assert.deepEqual(first.json.map((s: { Name: string }) => s.Name), ['api', 'consul', 'web']);
      const web = first.json[2];
      assert.deepEqual(
        { Tags: web.Tags, Nodes: web.Nodes, InstanceCount: web.InstanceCount, ChecksPassing: web.ChecksPassing, ChecksCritical: web.ChecksCritical, ExternalSources: web.ExternalSources },
        // serfHealth counted once for the node, each service check once
        { Tags: ['a', 'b'], Nodes: ['n1', 'n1'], InstanceCount: 2, ChecksPassing: 2, ChecksCritical: 1, ExternalSources: null },
      );
      assert.equal(first.json[0].Tags, null);
      assert.deepEqual(first.json[0].ExternalSources, ['nomad']);
      assert.ok(!('Kind' in web), 'Kind is omitted when empty');
      // a check write moves its index (checks are part of the summary)
      const pending = api(d.url, 'GET', `/v1/internal/ui/services?index=${first.index}&wait=5s`);
      await sleep(30);
      await api(d.url, 'PUT', '/v1/agent/check/pass/service:web-1');
      const next = await pending;
      assert.ok(next.index > first.index);
      assert.equal(next.json[2].ChecksCritical, 0);
      await api(d.url, 'PUT', '/v1/agent/service/deregister/web-2');
      const after = await api(d.url, 'GET', '/v1/internal/ui/services');
      assert.equal(after.json[2].InstanceCount, 1);
      assert.ok(after.index > next.index, 'a deregistration moves it too');
    } finally {
      await d.close();
    }
  });
});

describe('consul double: request stats by kind (benchmark figures, not Consul API)', () => {
  it('names each request blocking, read or write and its endpoint without the service or key name', () => {
    const cases: Array<[string, string, string]> = [
      ['GET', '/v1/health/service/web?index=12&wait=60s', 'blocking /v1/health/service'],
      ['GET', '/v1/health/service/web?passing&index=7', 'blocking /v1/health/service'],
      ['GET', '/v1/health/service/web', 'read /v1/health/service'],
      ['GET', '/v1/health/service/web?index=0', 'read /v1/health/service'],
      ['GET', '/v1/health/service/web?min-index=5', 'read /v1/health/service'],
      ['GET', '/v1/catalog/services?index=3', 'blocking /v1/catalog/services'],
      ['GET', '/v1/kv/balancer/policy/?recurse=&index=1049&wait=60s', 'blocking /v1/kv/balancer'],
      ['PUT', '/v1/agent/service/register', 'write /v1/agent/service'],
    ];
    for (const [method, url, want] of cases) assert.equal(requestKind(method, url), want, `${method} ${url}`);
  });

  it('counts each client\'s requests by kind until resetStats', async () => {
    const d = await startConsulDouble({ noise: false });
    try {
      await api(d.url, 'PUT', '/v1/agent/service/register', { ID: 'k1', Name: 'kinds', Port: 1 });
      const first = await api(d.url, 'GET', '/v1/health/service/kinds');
      await api(d.url, 'GET', `/v1/health/service/kinds?index=${first.index}&wait=10ms`);
      assert.deepEqual(d.stats().requestKindsByClient['127.0.0.1'], { 'write /v1/agent/service': 1, 'read /v1/health/service': 1, 'blocking /v1/health/service': 1 });
      d.resetStats();
      assert.deepEqual(d.stats().requestKindsByClient, {});
    } finally {
      await d.close();
    }
  });
});
