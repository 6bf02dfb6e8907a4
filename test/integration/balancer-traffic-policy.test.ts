// Traffic policy end to end: the real primary and worker, the Consul double (or a real agent).
// Canary by header from tags, sticky cookie from tags, a KV policy followed live, the admin policy
// winning over KV until deleted, and a refused admin body. Canary servers marked in an admin
// upstream (dyups `canary`, JSON "canary": true) with an admin canary policy, without Consul.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const RUN = `pol${process.pid}`;
const SERVICE = `${RUN}-web`;
const KV_KEY = `balancer/policy/${SERVICE}`;

async function consulCall(consul: ConsulTarget, method: string, path: string, body?: string): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}${path}`, { method: method as 'PUT', headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `${method} ${path}: ${text}`);
}
const register = (c: ConsulTarget, id: string, port: number, tags: string[]) =>
  consulCall(c, 'PUT', '/v1/agent/service/register', JSON.stringify({ ID: id, Name: SERVICE, Address: '127.0.0.1', Port: port, Tags: tags }));

interface Answer { status: number; body: string; setCookie: string[] }
async function get(port: number, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: SERVICE, ...headers }, signal: AbortSignal.timeout(3000) });
  const sc = res.headers['set-cookie'];
  return { status: res.statusCode, body: await res.body.text(), setCookie: sc === undefined ? [] : Array.isArray(sc) ? sc : [sc] };
}

async function bodies(port: number, n: number, headers: Record<string, string> = {}): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add((await get(port, headers)).body);
  return seen;
}

test('canary, sticky cookie, KV and admin policies through the real balancer', async () => {
  const consul = await consulForTest();
  const s1 = await startNamedBackend('s1');
  const s2 = await startNamedBackend('s2');
  const c1 = await startNamedBackend('c1');
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, `${RUN}-s1`, s1.port, ['canary_header=X-Canary', 'sticky=cookie:sid', 'sticky_ttl=10m']);
    await register(consul, `${RUN}-s2`, s2.port, []);
    await register(consul, `${RUN}-c1`, c1.port, ['canary']);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--consul-wait', '2s', '--log-level', 'warn', '--sticky-secret', 'e2e']), logger);
    const port = primary.proxy.port;
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    await until('all three instances in the table', async () => (primary!.holder.current().upstreams[SERVICE]?.servers.length ?? 0) === 3, 8000);

    // tags: weight 0, header forcing, sticky cookie
    assert.deepEqual([...await bodies(port, 6, { 'x-canary': 'always' })], ['c1']);
    assert.deepEqual([...await bodies(port, 10)].sort(), ['s1', 's2']);
    const first = await get(port);
    const sid = first.setCookie.find((c) => c.startsWith('sid='));
    assert.ok(sid, `sticky cookie set: ${first.setCookie.join(' | ')}`);
    assert.match(sid, /; Max-Age=600; HttpOnly/);
    const cookie = sid.split(';')[0];
    for (let i = 0; i < 8; i++) {
      const again = await get(port, { cookie });
      assert.equal(again.body, first.body, 'sticky');
      assert.deepEqual(again.setCookie, [], 'no new cookie while the server holds');
    }
    // the cookie never crosses into the canary group: forced canary re-picks and re-sets
    const crossed = await get(port, { cookie, 'x-canary': 'always' });
    assert.equal(crossed.body, 'c1');
    assert.ok(crossed.setCookie.some((c) => c.startsWith('sid=') && !c.startsWith(cookie)));

    // Consul KV policy, followed with blocking queries: everything to the canary
    await consulCall(consul, 'PUT', `/v1/kv/${KV_KEY}`, JSON.stringify({ canary: { weight: 100 } }));
    await until('KV policy live', async () => (await bodies(port, 4)).has('c1') && (await bodies(port, 4)).size === 1, 8000);
    const kvView = (await (await request(`${admin}/policy/${SERVICE}`)).body.json()) as { source: string; canaryServers: string[] };
    assert.equal(kvView.source, 'kv');
    assert.deepEqual(kvView.canaryServers, [`127.0.0.1:${c1.port}`]);

    // the admin API wins over KV until deleted
    const bad = await request(`${admin}/policy/${SERVICE}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ canary: { weight: 250 } }) });
    assert.equal(bad.statusCode, 400);
    assert.match(((await bad.body.json()) as { message: string }).message, /weight/);
    const put = await request(`${admin}/policy/${SERVICE}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ canary: { weight: 0 }, panicThreshold: 0 }) });
    assert.equal(put.statusCode, 200, await put.body.text());
    assert.ok(!(await bodies(port, 8)).has('c1'), 'admin weight 0 wins over KV weight 100');
    const del = await request(`${admin}/policy/${SERVICE}`, { method: 'DELETE' });
    assert.equal(del.statusCode, 200, await del.body.text());
    assert.deepEqual([...await bodies(port, 4)], ['c1'], 'KV applies again after the admin policy is deleted');
    assert.equal((await request(`${admin}/policy/${SERVICE}`, { method: 'DELETE' })).statusCode, 404);

    // KV key removed: back to the tags (weight 0)
    await consulCall(consul, 'DELETE', `/v1/kv/${KV_KEY}`);
    await until('tags policy again', async () => !(await bodies(port, 6)).has('c1'), 8000);
  } finally {
    await primary?.stop();
    await consulCall(consul, 'DELETE', `/v1/kv/${KV_KEY}`).catch(() => undefined);
    await cleanConsul(consul, RUN).catch(() => undefined);
    for (const b of [s1, s2, c1]) { b.server.closeAllConnections(); b.server.close(); }
    await consul.close();
  }
});

test('admin upstreams mark canary servers (dyups text and JSON) and an admin canary policy splits them', async () => {
  const s1 = await startNamedBackend('s1');
  const c1 = await startNamedBackend('c1');
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    primary = await startPrimary(balancerConfig(['--no-consul', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1', '--log-level', 'warn']), logger);
    const port = primary.proxy.port;
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    const post = await request(`${admin}/upstream/${SERVICE}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `server 127.0.0.1:${s1.port}; server 127.0.0.1:${c1.port} canary;` });
    assert.equal(post.statusCode, 200, await post.body.text());
    const detail = await (await request(`${admin}/upstream/${SERVICE}`)).body.text();
    assert.match(detail, new RegExp(`server 127\\.0\\.0\\.1:${c1.port} .* canary=1`));
    // no canary policy yet: the marker alone moves nothing (as the canary tag), both serve
    assert.deepEqual([...await bodies(port, 10)].sort(), ['c1', 's1']);
    const policy = await request(`${admin}/policy/${SERVICE}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ canary: { header: 'X-Canary' } }) });
    assert.equal(policy.statusCode, 200, await policy.body.text());
    assert.deepEqual([...await bodies(port, 8)], ['s1'], 'weight 0: stable only');
    assert.deepEqual([...await bodies(port, 6, { 'x-canary': 'always' })], ['c1']);
    const view = (await (await request(`${admin}/policy/${SERVICE}`)).body.json()) as { canaryServers: string[] };
    assert.deepEqual(view.canaryServers, [`127.0.0.1:${c1.port}`]);

    // the JSON form: the canary moves to the other server
    const json = await request(`${admin}/upstream/${SERVICE}`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ servers: [{ host: '127.0.0.1', port: s1.port, canary: true }, { host: '127.0.0.1', port: c1.port }] }) });
    assert.equal(json.statusCode, 200, await json.body.text());
    assert.deepEqual([...await bodies(port, 6, { 'x-canary': 'always' })], ['s1']);
    assert.deepEqual([...await bodies(port, 6)], ['c1']);
  } finally {
    await primary?.stop();
    for (const b of [s1, c1]) { b.server.closeAllConnections(); b.server.close(); }
  }
});
