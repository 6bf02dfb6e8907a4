// A dump file the balancer cannot use, through the real program (node bin/balancer.js): a corrupt
// one (truncated JSON, a newer format, a field that fails validation) is moved aside as
// <file>.corrupt-<time>, byte for byte, never overwritten; the balancer starts from Consul, serves
// its services and writes a fresh, loadable dump in its place. A dump path that cannot be read at all
// (here: a directory) is left where it is, and the balancer still starts from Consul.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { loadDump } from '../../balancer/src/persistence/dump-file.js';
import { spawnBalancer, type BalancerProcess } from '../support/balancer-process.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';

async function consulPut(consul: ConsulTarget, p: string, body: unknown): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}${p}`, { method: 'PUT', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `PUT ${p}: ${text}`);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts the program and waits for its start line; the proxy port from it. */
async function start(consul: ConsulTarget, service: string, dumpFile: string): Promise<{ proc: BalancerProcess; proxyPort: number }> {
  const proc = spawnBalancer(['--consul', consul.addr, '--consul-wait', '2s', '--workers', '1', '--log-level', 'info',
    '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--services', service, '--dump-file', dumpFile], { CONSUL_HTTP_ADDR: '' });
  // a start that never comes must not leave the child behind: its pipes would keep this file's
  // process (and so the whole suite) alive after the test timed out
  const started = await proc.waitForLog((l) => l.msg === 'balancer started', 30_000, 'balancer started').catch(async (err: Error) => {
    await proc.stop();
    throw err;
  });
  return { proc, proxyPort: started.proxyPort as number };
}

async function answer(port: number, host: string): Promise<string | undefined> {
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host }, signal: AbortSignal.timeout(3000) });
  const body = await res.body.text();
  return res.statusCode === 200 ? body : undefined;
}

test('an unusable dump file is kept aside byte for byte, the balancer starts from Consul and writes a fresh dump', { timeout: 180_000 }, async (t) => {
  const consul = await consulForTest();
  const scope = testScope();
  const service = scope.name('web');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dump-quarantine-'));
  const backend = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('from-consul')); });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const running: BalancerProcess[] = [];
  t.after(async () => {
    for (const p of running) await p.stop();
    await scope.clean(consul);
    await consul.close();
    backend.close();
    await rm(dir, { recursive: true, force: true });
  });
  await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('web-1'), Name: service, Address: '127.0.0.1', Port: (backend.address() as AddressInfo).port });

  // a good dump of this service first, written by the program itself
  const good = path.join(dir, 'good.json');
  const first = await start(consul, service, good);
  running.push(first.proc);
  await until('the good dump holds the service', async () => ((await loadDump(good))?.table.upstreams[service] ? true : undefined));
  await first.proc.stop();
  const goodText = await readFile(good, 'utf8');
  const goodJson = JSON.parse(goodText) as { format: number; table: { upstreams: Record<string, { servers: { port: unknown }[] }> } };

  const invalidPort = structuredClone(goodJson);
  invalidPort.table.upstreams[service].servers[0].port = 'eighty';
  const cases: { name: string; text: string; reason: RegExp }[] = [
    { name: 'truncated JSON', text: goodText.slice(0, Math.floor(goodText.length / 2)), reason: /not valid JSON/ },
    { name: 'a newer format', text: JSON.stringify({ ...goodJson, format: goodJson.format + 1 }), reason: /newer version/ },
    { name: 'a field failing validation', text: JSON.stringify(invalidPort), reason: new RegExp(`upstream ${service}`) },
  ];
  for (const c of cases) {
    const caseDir = path.join(dir, c.name.replace(/\W+/g, '-'));
    await mkdir(caseDir);
    const file = path.join(caseDir, 'dump.json');
    await writeFile(file, c.text);
    const { proc, proxyPort } = await start(consul, service, file);
    running.push(proc);
    const line = await proc.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('dump file unusable'), 5_000, `${c.name}: the unusable-dump line`);
    assert.match(String(line.err), c.reason, `${c.name}: the reason is logged`);
    const kept = String(line.keptAs);
    assert.match(path.basename(kept), /^dump\.json\.corrupt-\d{4}-\d\d-\d\dT[\d-]+Z$/, `${c.name}: kept as <file>.corrupt-<time>`);
    assert.equal(await readFile(kept, 'utf8'), c.text, `${c.name}: the aside file is the unusable dump, unchanged`);
    assert.equal(await until(`${c.name}: the service routable from Consul`, () => answer(proxyPort, service)), 'from-consul');
    const fresh = await until(`${c.name}: a fresh dump in place`, async () => ((await loadDump(file))?.table.upstreams[service] ? true : undefined));
    assert.ok(fresh);
    assert.deepEqual((await readdir(caseDir)).filter((f) => f.includes('.corrupt-')), [path.basename(kept)], `${c.name}: one file aside`);
    await proc.stop();
  }

  // a path that cannot be read: nothing to keep aside, nothing moved; the balancer starts from Consul anyway
  const unreadable = path.join(dir, 'a-directory.json');
  await mkdir(unreadable);
  const { proc, proxyPort } = await start(consul, service, unreadable);
  running.push(proc);
  const ignored = await proc.waitForLog((l) => l.msg === 'dump file ignored', 5_000, 'the dump-ignored line');
  assert.match(String(ignored.err), /cannot read dump file/);
  assert.equal(await until('the service routable from Consul', () => answer(proxyPort, service)), 'from-consul');
  assert.ok((await stat(unreadable)).isDirectory(), 'the unreadable path is left where it is');
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.corrupt-')), [], 'nothing kept aside');
});
