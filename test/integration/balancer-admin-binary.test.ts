// The real program without Consul: upstreams only from the admin API (with a bearer token), served
// by 2 workers; SIGTERM lets an in-flight request finish before the program exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { balancerBin } from '../support/repo-root.js';

test('--no-consul: admin API with token feeds 2 workers; SIGTERM drains in-flight requests', { timeout: 60_000 }, async () => {
  let slowSeen = 0;
  const backend = http.createServer((req, res) => {
    req.resume();
    if (req.url === '/slow') {
      slowSeen++;
      setTimeout(() => res.end('slow done'), 1500);
      return;
    }
    res.end('fast');
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const backendPort = (backend.address() as AddressInfo).port;
  const child = spawn(process.execPath, [balancerBin(), '--no-consul', '--workers', '2', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--admin-token', 'tok', '--drain-timeout', '10s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const started = Date.now();
    while (!/"proxyPort":\d+,"adminPort":\d+/.test(out)) {
      if (Date.now() - started > 20_000 || child.exitCode !== null) assert.fail(`did not start:\n${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const m = /"proxyPort":(\d+),"adminPort":(\d+)/.exec(out)!;
    const proxy = `http://127.0.0.1:${m[1]}`;
    const admin = `http://127.0.0.1:${m[2]}`;
    const auth = { authorization: 'Bearer tok' };

    let res = await request(`${admin}/upstream/svc`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `server 127.0.0.1:${backendPort};` });
    assert.equal(res.statusCode, 401);
    await res.body.text();
    res = await request(`${admin}/upstream/svc`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ servers: [{ host: '127.0.0.1', port: backendPort }] }) });
    assert.equal(res.statusCode, 200, await res.body.text());
    // the POST answers once every worker serves the change: fresh connections land on both workers
    for (let i = 0; i < 10; i++) {
      const r = await request(`${proxy}/`, { headers: { host: 'svc' }, reset: true });
      assert.equal(await r.body.text(), 'fast');
    }
    res = await request(`${admin}/status`, { headers: auth });
    const status = (await res.body.json()) as { workers: unknown[]; upstreams: { name: string }[] };
    assert.equal(status.workers.length, 2);
    assert.deepEqual(status.upstreams.map((u) => u.name), ['svc']);
    res = await request(`${admin}/metrics`, { headers: { ...auth, accept: 'application/json' } });
    const metrics = (await res.body.json()) as { generation: number; workersAlive: number; publishes: number };
    assert.equal(metrics.generation, 1);
    assert.equal(metrics.workersAlive, 2);
    assert.ok(metrics.publishes >= 1);

    const slow = request(`${proxy}/slow`, { headers: { host: 'svc' } }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    while (slowSeen === 0) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGTERM');
    assert.deepEqual(await slow, { status: 200, body: 'slow done' });
    assert.equal(await exited, 0, out.slice(-2000));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    backend.closeAllConnections();
    backend.close();
  }
});
