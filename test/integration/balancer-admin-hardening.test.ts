// Admin API against hostile input (issue 12 items 2, 4, 5), through app.inject(): hosts that are not
// addresses -> 400 with a reason; browser-only requests (foreign Origin, Sec-Fetch-Site: cross-site,
// rebinding Host) -> 403 while curl-style requests keep working; prototype names are plain unknown
// upstreams; the number of upstreams and servers is bounded; 202 names the workers that did not ack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildAdminApp, type AdminDeps } from '../../balancer/src/admin/app.js';
import { TableHolder } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogSnapshot } from '../../balancer/src/routing/types.js';

const logger = pino({ level: 'silent' });
const snapshot: CatalogSnapshot = {
  services: {
    web: [{ serviceId: 'web-1', service: 'web', node: 'n1', address: '127.0.0.1', port: 9001, tags: [], meta: {}, status: 'passing' }],
  },
};

function setup(extra: Partial<AdminDeps> = {}) {
  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialSnapshot: snapshot });
  const app = buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger, ...extra });
  return { holder, app };
}

const text = { 'content-type': 'text/plain' };
const form = { 'content-type': 'application/x-www-form-urlencoded' };

test('servers whose host is not an address answer 400 with a reason, in both formats, and change nothing', async () => {
  const { app, holder } = setup();
  const before = holder.current().version;
  const cases: { payload: string | object; type: string; want: RegExp }[] = [
    { payload: 'server evil/x:80;', type: 'text/plain', want: /host "evil\/x" contains "\/"/ },
    { payload: 'server a b:80;', type: 'text/plain', want: /unknown parameter "b:80"/ },
    { payload: 'server 10.0.0.1#frag;', type: 'application/x-www-form-urlencoded', want: /contains "#"/ },
    { payload: 'server x?y=1:80;', type: 'text/plain', want: /contains "\?"/ },
    { payload: 'server 10.0.0.999:80;', type: 'text/plain', want: /numeric last label/ },
    { payload: { servers: [{ host: 'evil/x', port: 80 }] }, type: 'application/json', want: /contains "\/"/ },
    { payload: { servers: [{ host: 'a b', port: 80 }] }, type: 'application/json', want: /contains " "/ },
    { payload: { servers: [{ host: '10.0.0.1#frag', port: 80 }] }, type: 'application/json', want: /contains "#"/ },
    { payload: { servers: [{ host: '127.0.0.1', port: 1.5 }] }, type: 'application/json', want: /port 1.5 is not an integer/ },
  ];
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/upstream/api', headers: { 'content-type': c.type },
      payload: typeof c.payload === 'string' ? c.payload : JSON.stringify(c.payload) });
    assert.equal(res.statusCode, 400, `${JSON.stringify(c.payload)} -> ${res.statusCode} ${res.body}`);
    assert.equal(res.json().error, 'ERR_BAD_SERVER_LIST');
    assert.match(res.json().message, c.want, JSON.stringify(c.payload));
  }
  assert.equal(holder.current().version, before);
  assert.equal(Object.hasOwn(holder.current().upstreams, 'api'), false);
  await app.close();
});

test('names of Object.prototype members are unknown upstreams (404), never a 500 or 409', async () => {
  const { app } = setup();
  for (const name of ['toString', 'constructor', 'hasOwnProperty', 'valueOf', 'isPrototypeOf']) {
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await app.inject({ method, url: `/upstream/${name}` });
      assert.equal(res.statusCode, 404, `${method} /upstream/${name} -> ${res.statusCode} ${res.body}`);
      assert.equal(res.json().error, 'ERR_UNKNOWN_UPSTREAM', `${method} ${name}`);
    }
  }
  // "__proto__" is not a valid name at all (must start with a letter or digit)
  const proto = await app.inject({ method: 'DELETE', url: '/upstream/__proto__' });
  assert.equal(proto.statusCode, 400);
  assert.equal(proto.json().error, 'ERR_VALIDATION');
  // and such a name can be a real upstream, then deleted again
  let res = await app.inject({ method: 'POST', url: '/upstream/constructor', headers: text, payload: 'server 127.0.0.1:9100;' });
  assert.equal(res.statusCode, 200, res.body);
  res = await app.inject({ method: 'GET', url: '/upstream/constructor?format=json' });
  assert.equal(res.json().servers[0].port, 9100);
  res = await app.inject({ method: 'DELETE', url: '/upstream/constructor' });
  assert.equal(res.statusCode, 200);
  await app.close();
});

test('browser-only requests are refused; curl-style requests keep working', async () => {
  const { app, holder } = setup({ listenHost: '127.0.0.1', allowedHosts: ['balancer'] });
  const refused: { headers: Record<string, string>; want: RegExp }[] = [
    { headers: { ...text, origin: 'http://evil.example' }, want: /Origin "http:\/\/evil.example"/ },
    { headers: { ...form, origin: 'null' }, want: /Origin "null"/ },
    { headers: { ...form, origin: 'http://localhost:3000', host: 'localhost:8081' }, want: /Origin/ },
    { headers: { ...form, 'sec-fetch-site': 'cross-site' }, want: /Sec-Fetch-Site: cross-site/ },
    { headers: { ...text, host: 'evil.example:8081' }, want: /Host "evil.example:8081".*rebinding/ },
    { headers: { ...text, host: 'rebind.attacker.test' }, want: /Host/ },
    { headers: { ...text, host: 'balancer.evil.example' }, want: /Host/ },
  ];
  for (const c of refused) {
    const res = await app.inject({ method: 'POST', url: '/upstream/x', headers: c.headers, payload: 'server 127.0.0.1:9100;' });
    assert.equal(res.statusCode, 403, `${JSON.stringify(c.headers)} -> ${res.statusCode} ${res.body}`);
    assert.equal(res.json().error, 'ERR_BROWSER_REQUEST');
    assert.match(res.json().message, c.want);
  }
  for (const method of ['DELETE', 'GET'] as const) {
    const res = await app.inject({ method, url: '/upstream/web', headers: { origin: 'http://evil.example' } });
    assert.equal(res.statusCode, 403, `${method} with a foreign Origin`);
  }
  assert.equal(Object.hasOwn(holder.current().upstreams, 'x'), false, 'nothing changed');

  const accepted: Record<string, string>[] = [
    { ...form }, // curl -d 'server ...;' http://localhost:8081/...
    { ...form, host: '127.0.0.1:8081' },
    { ...form, host: '10.9.9.9:8081' }, // an IP literal (a published port on the host's address)
    { ...form, host: '[::1]:8081' },
    { ...text, host: 'balancer:8081' }, // allow-listed name
    { ...text, host: 'localhost:8081', origin: 'http://localhost:8081' }, // the admin's own page
    { ...text, host: 'localhost', origin: 'http://localhost' },
    { ...text, 'sec-fetch-site': 'same-origin', host: '127.0.0.1:8081', origin: 'http://127.0.0.1:8081' },
    { ...text, 'sec-fetch-site': 'none' },
  ];
  for (const headers of accepted) {
    const res = await app.inject({ method: 'POST', url: '/upstream/x', headers, payload: 'server 127.0.0.1:9100;' });
    assert.equal(res.statusCode, 200, `${JSON.stringify(headers)} -> ${res.statusCode} ${res.body}`);
  }
  // probes are never refused
  const res = await app.inject({ method: 'GET', url: '/healthz', headers: { host: 'whatever.example' } });
  assert.equal(res.statusCode, 200);
  await app.close();
});

test('a browser request is refused even when it carries the token; curl with the token works', async () => {
  const { app } = setup({ token: 's3cret' });
  let res = await app.inject({ method: 'POST', url: '/upstream/x', headers: { ...form, authorization: 'Bearer s3cret', origin: 'http://evil.example' }, payload: 'server 127.0.0.1:9100;' });
  assert.equal(res.statusCode, 403);
  res = await app.inject({ method: 'POST', url: '/upstream/x', headers: { ...form, authorization: 'Bearer s3cret' }, payload: 'server 127.0.0.1:9100;' });
  assert.equal(res.statusCode, 200, res.body);
  await app.close();
});

test('upstreams and servers are bounded: 413 for one upstream too many, 400 for too many servers', async () => {
  const { app, holder } = setup({ maxUpstreams: 2, maxServers: 3 });
  for (const name of ['a', 'b']) {
    const res = await app.inject({ method: 'POST', url: `/upstream/${name}`, headers: text, payload: 'server 127.0.0.1:9100;' });
    assert.equal(res.statusCode, 200);
  }
  let res = await app.inject({ method: 'POST', url: '/upstream/c', headers: text, payload: 'server 127.0.0.1:9100;' });
  assert.equal(res.statusCode, 413, res.body);
  assert.equal(res.json().error, 'ERR_TOO_MANY_UPSTREAMS');
  assert.match(res.json().message, /at most 2 \(--admin-max-upstreams\)/);
  // replacing an existing one is not a new upstream
  res = await app.inject({ method: 'POST', url: '/upstream/a', headers: text, payload: 'server 127.0.0.1:9101;' });
  assert.equal(res.statusCode, 200);
  const four = 'server 127.0.0.1:1;server 127.0.0.1:2;server 127.0.0.1:3;server 127.0.0.1:4;';
  res = await app.inject({ method: 'POST', url: '/upstream/a', headers: text, payload: four });
  assert.equal(res.statusCode, 400);
  assert.equal(res.json().error, 'ERR_TOO_MANY_SERVERS');
  res = await app.inject({ method: 'POST', url: '/upstream/a', headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ servers: [1, 2, 3, 4].map((port) => ({ host: '127.0.0.1', port })) }) });
  assert.equal(res.statusCode, 400);
  assert.match(res.json().message, /4 servers given; at most 3/);
  assert.equal(holder.current().upstreams.a.servers[0].port, 9101);
  // after a delete there is room again
  res = await app.inject({ method: 'DELETE', url: '/upstream/b' });
  assert.equal(res.statusCode, 200);
  res = await app.inject({ method: 'POST', url: '/upstream/c', headers: text, payload: 'server 127.0.0.1:9100;' });
  assert.equal(res.statusCode, 200);
  await app.close();
});

test('202 names the workers that did not acknowledge; 200 only when every live worker did', async () => {
  const notAcked = [{ workerId: 3, pid: 333 }];
  const { app } = setup({ applied: async () => ({ live: false, notAcked }) });
  let res = await app.inject({ method: 'POST', url: '/upstream/api?format=json', headers: text, payload: 'server 127.0.0.1:9100;' });
  assert.equal(res.statusCode, 202);
  assert.deepEqual(res.json().notAcked, notAcked);
  assert.equal(res.json().live, false);
  res = await app.inject({ method: 'POST', url: '/upstream/api', headers: text, payload: 'server 127.0.0.1:9101;' });
  assert.equal(res.statusCode, 202);
  assert.match(res.body, /not acknowledged by worker 3/);
  res = await app.inject({ method: 'DELETE', url: '/upstream/api?format=json' });
  assert.equal(res.statusCode, 202);
  assert.deepEqual(res.json().notAcked, notAcked);
  const ok = setup({ applied: async () => ({ live: true, notAcked: [] }) });
  res = await ok.app.inject({ method: 'POST', url: '/upstream/api', headers: text, payload: 'server 127.0.0.1:9100;' });
  assert.equal(res.statusCode, 200);
  assert.equal(res.body, 'success');
  await app.close();
  await ok.app.close();
});
