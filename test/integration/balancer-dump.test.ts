// The dump file across restarts of the real program (node bin/balancer.js): the last good table and
// the admin upstreams are written on change; a restart with Consul unreachable serves from the dump
// (and follows Consul again once it is back); with --strong-dependency it refuses to start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { consulPut } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { untilRetryingErrors } from '../support/poll.js';
import { balancerBin } from '../support/repo-root.js';

const BIN = balancerBin();

interface Running {
  readonly child: ChildProcess;
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly output: () => string;
}

function startBalancer(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CONSUL_HTTP_ADDR: '' } });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`balancer did not start in time:\n${out.slice(-3000)}`));
    }, 20_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /"proxyPort":(\d+),"adminPort":(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, proxyPort: Number(m[1]), adminPort: Number(m[2]), output: () => out });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`balancer exited with ${code} before starting:\n${out.slice(-3000)}`));
    });
  });
}

function runToExit(args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CONSUL_HTTP_ADDR: '' } });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function stopBalancer(r: Running): Promise<number | null> {
  if (r.child.exitCode !== null) return r.child.exitCode;
  const exited = new Promise<number | null>((resolve) => r.child.once('exit', (code) => resolve(code)));
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 15_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

async function get(port: number, host: string): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host }, signal: AbortSignal.timeout(3000) });
  return { status: res.statusCode, body: await res.body.text() };
}

test('restart with Consul down serves from the dump; --strong-dependency refuses to start', { timeout: 90_000 }, async () => {
  const consul = await consulForTest();
  // IDs and names of this test only (a shared agent holds other tests' services too)
  const scope = testScope();
  const web = scope.name('web');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'balancer-dump-'));
  const dumpFile = path.join(dir, 'dump.json');
  const a = await startNamedBackend('a');
  const b = await startNamedBackend('b');
  const c = await startNamedBackend('c');
  const running: Running[] = [];
  const common = ['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1', '--dump-file', dumpFile, '--consul-wait', '2s'];
  try {
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('web-a'), Name: web, Address: '127.0.0.1', Port: a.port });
    const first = await startBalancer(common);
    running.push(first);
    assert.deepEqual(await get(first.proxyPort, web), { status: 200, body: 'a' });
    // an admin-API upstream must survive the restart too
    const post = await request(`http://127.0.0.1:${first.adminPort}/upstream/api`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `server 127.0.0.1:${b.port};` });
    assert.equal(post.statusCode, 200, await post.body.text());
    await untilRetryingErrors('api served', async () => ((await get(first.proxyPort, 'api')).body === 'b' ? true : undefined), 8000);
    await untilRetryingErrors('dump has api', async () => (JSON.parse(await readFile(dumpFile, 'utf8')).adminUpstreams.api ? true : undefined), 8000);
    assert.equal(await stopBalancer(first), 0, 'graceful stop exits 0');

    await consul.outage();
    const second = await startBalancer(common);
    running.push(second);
    assert.match(second.output(), /serving from the dump file/);
    assert.deepEqual(await get(second.proxyPort, web), { status: 200, body: 'a' });
    assert.deepEqual(await get(second.proxyPort, 'api'), { status: 200, body: 'b' });

    const refused = await runToExit([...common, '--strong-dependency', '--start-timeout', '1s'], 20_000);
    assert.equal(refused.code, 1, refused.output.slice(-2000));
    assert.match(refused.output, /unreachable.*--strong-dependency/);

    // Consul back: the dump-started balancer follows it again
    await consul.restore();
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('web-c'), Name: web, Address: '127.0.0.1', Port: c.port });
    await consulPut(consul, `/v1/agent/service/deregister/${scope.id('web-a')}`);
    await untilRetryingErrors('web moved to c', async () => ((await get(second.proxyPort, web)).body === 'c' ? true : undefined), 15_000);
    assert.deepEqual(await get(second.proxyPort, 'api'), { status: 200, body: 'b' });
    assert.equal(await stopBalancer(second), 0);
  } finally {
    for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    for (const s of [a, b, c]) {
      s.server.closeAllConnections();
      s.server.close();
    }
    await scope.clean(consul);
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  }
});
