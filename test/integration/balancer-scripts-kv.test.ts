// Request scripts in Consul KV (--scripts-kv) through the real primary and worker, against the
// Consul double or a real agent (CONSUL_HTTP_ADDR): a script an operator puts in KV runs; a broken
// one is a warning naming its key and line while the others keep running; an admin upload writes
// its KV key and wins over a KV script of the same name; an admin DELETE removes the key and the
// script everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { scriptVersion } from '../../balancer/src/scripts/script-source.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { until } from '../support/poll.js';

const headerScript = (value: string) => `export function onResponse(res) {\n  return { headers: { 'x-kv-script': '${value}' } };\n}\n`;

async function consulCall(consul: ConsulTarget, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}${path}`, { method: method as 'PUT', headers, body, signal: AbortSignal.timeout(5000) });
  return { status: res.statusCode, text: await res.body.text() };
}

test('scripts in Consul KV: loaded from KV, a bad one a warning, admin uploads write KV and win, DELETE removes the key', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const service = scope.name('web');
  const prefix = scope.kv('scripts/');
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
  const backend = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('ok')); });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    const reg = await consulCall(consul, 'PUT', '/v1/agent/service/register', JSON.stringify({ ID: scope.id('web-1'), Name: service, Address: '127.0.0.1', Port: (backend.address() as AddressInfo).port }));
    assert.equal(reg.status, 200, reg.text);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--consul-wait', '2s', '--log-level', 'warn', '--services', service, '--scripts-kv', '--scripts-kv-prefix', prefix]), logger);
    const proxyPort = primary.proxy.port;
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    const header = async (): Promise<string | undefined> => {
      const res = await request(`http://127.0.0.1:${proxyPort}/`, { headers: { host: service }, signal: AbortSignal.timeout(3000) });
      await res.body.text();
      assert.equal(res.statusCode, 200);
      return res.headers['x-kv-script'] as string | undefined;
    };
    const listed = async () => (await (await request(`${admin}/scripts`, { signal: AbortSignal.timeout(3000) })).body.json()) as
      { scripts: { name: string; origin: string; version: string; services: string[] }[]; kvShadowed?: { name: string; version: string }[] };
    await until('the service in the table', () => primary!.holder.current().upstreams[service] !== undefined);
    assert.equal(await header(), undefined);

    // an operator's `consul kv put <prefix>op @op.js`: the bare module, bound to every service
    assert.equal((await consulCall(consul, 'PUT', `/v1/kv/${prefix}op`, headerScript('kv1'))).text.trim(), 'true');
    await until('the KV script live in the worker', async () => (await header()) === 'kv1');
    const view = (await listed()).scripts.find((s) => s.name === 'op');
    assert.equal(view?.origin, 'kv');
    assert.deepEqual(view?.services, ['*']);

    // a broken script in KV: a warning naming its key and line; the good one keeps running
    assert.equal((await consulCall(consul, 'PUT', `/v1/kv/${prefix}broken`, 'export function onRequest(req) {\n  return ]\n}\n')).text.trim(), 'true');
    await until('the warning for the broken script', () => lines.some((l) => l.includes('request script warning') && l.includes(`${prefix}broken`) && l.includes('at line 2')));
    assert.equal(await header(), 'kv1');
    assert.deepEqual((await listed()).scripts.map((s) => s.name), ['op']);

    // an admin upload of the same name: written to KV as a JSON document, and it wins
    const put = await request(`${admin}/scripts/op?services=${service}`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: headerScript('admin') });
    assert.equal(put.statusCode, 200, await put.body.text());
    const stored = await consulCall(consul, 'GET', `/v1/kv/${prefix}op?raw`);
    assert.deepEqual(JSON.parse(stored.text), { source: headerScript('admin'), services: [service], timeoutMs: 50, maxFailures: 5 });
    assert.equal(await header(), 'admin');
    // the operator changes the KV value under it: seen (shadowed), not run
    assert.equal((await consulCall(consul, 'PUT', `/v1/kv/${prefix}op`, headerScript('kv2'))).text.trim(), 'true');
    await until('the new KV version seen as shadowed', async () => (await listed()).kvShadowed?.some((s) => s.version === scriptVersion(headerScript('kv2'))) === true);
    for (let i = 0; i < 3; i++) assert.equal(await header(), 'admin', 'the admin upload wins');

    // DELETE through the admin API: the key is gone and so is the script (no KV version comes back)
    const del = await request(`${admin}/scripts/op`, { method: 'DELETE' });
    assert.equal(del.statusCode, 200, await del.body.text());
    assert.equal((await consulCall(consul, 'GET', `/v1/kv/${prefix}op`)).status, 404);
    assert.equal(await header(), undefined);
    // the watch's next answer (the broken key deleted too) must not bring "op" back
    assert.equal((await consulCall(consul, 'DELETE', `/v1/kv/${prefix}broken`)).status, 200);
    await until('the watch saw the prefix without op and broken', () => lines.some((l) => l.includes('"msg":"consul kv scripts"') && l.includes('"scripts":[]')));
    assert.deepEqual((await listed()).scripts, []);
    assert.equal(await header(), undefined);
  } finally {
    await primary?.stop();
    await scope.clean(consul);
    backend.closeAllConnections();
    backend.close();
    await consul.close();
  }
});
