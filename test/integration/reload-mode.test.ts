// `balancer --mode reload` as a user runs it: the real program, the Consul double, loopback backends.
// The balancer renders templates/balancer.conf.hbs, serves it with a worker generation, and on a
// Consul change starts a new generation and drains the old one: a request in flight on the old
// generation completes, traffic reaches the new instance; with --h2c, an h2 client of the old generation
// gets GOAWAY while its stream finishes there, and a new h2 session's streams use the new generation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { consulRequest } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { getByHost } from '../support/host-get.js';
import { untilRetryingErrors } from '../support/poll.js';
import { h2connect, h2request } from '../support/http2-client.js';
import { repoRoot } from '../support/repo-root.js';

const fromTs = import.meta.url.endsWith('.ts');

interface Backend {
  readonly port: number;
  /** /slow requests received so far */
  slowStarted: number;
  close(): Promise<void>;
}

async function startBackend(name: string): Promise<Backend> {
  const b = { port: 0, slowStarted: 0, close: async () => undefined } as Backend;
  const srv = http.createServer((req, res) => {
    if (req.url === '/slow') {
      b.slowStarted++;
      setTimeout(() => res.end(`${name} slow`), 1500);
      return;
    }
    res.end(name);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return Object.assign(b, {
    port: (srv.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    }),
  });
}

test('balancer --mode reload follows Consul through new worker generations; in-flight requests on the old one complete', async (t) => {
  const consul = await consulForTest();
  const scope = testScope();
  const web = scope.name('web');
  const dir = await mkdtemp(join(os.tmpdir(), 'reload-mode-'));
  const backends = await Promise.all(['backend-1', 'backend-2', 'backend-3'].map(startBackend));
  let proc: ChildProcess | undefined;
  const logLines: Record<string, unknown>[] = [];
  t.after(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc!.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
    await Promise.all(backends.map((b) => b.close()));
    await scope.clean(consul);
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  });

  const register = (id: string, b: Backend) => consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id(id), Name: web, Address: '127.0.0.1', Port: b.port });
  await register('web-1', backends[0]);
  await register('web-2', backends[1]);

  const root = repoRoot();
  const port = await freePort();
  const adminPort = await freePort();
  const configOut = join(dir, 'balancer.conf');
  const entry = fromTs ? ['--import', 'tsx', join(root, 'balancer/src/main.ts')] : [join(root, 'bin/balancer.js')];
  let stderr = '';
  let exitedEarly!: Promise<string>;
  const startBalancer = () => {
    const child = spawn(process.execPath, [
      ...entry, '--mode', 'reload', '--consul', consul.addr, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`,
      '--workers', '1', '--config-out', configOut, '--drain-timeout', '10s', '--log-level', 'info', '--h2c',
    ], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BALANCER_MODE: undefined } });
    stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    let partial = '';
    child.stdout!.on('data', (c: Buffer) => {
      const lines = (partial + c.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        try {
          logLines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          /* not JSON */
        }
      }
    });
    exitedEarly = new Promise<string>((r) => child.once('exit', (code) => r(`balancer exited with ${code}: ${stderr.slice(-2000)}`)));
    return child;
  };
  proc = startBalancer();

  const served = async (n: number) => {
    const names = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await getByHost(port, web);
      assert.equal(r.status, 200, r.body);
      names.add(r.body);
    }
    return names;
  };
  await Promise.race([
    untilRetryingErrors('the first generation serving', async () => (await getByHost(port, web)).status === 200, 30_000),
    exitedEarly.then((why) => Promise.reject(new Error(why))),
  ]);
  assert.deepEqual([...(await served(10))].sort(), ['backend-1', 'backend-2']);
  assert.match(await readFile(configOut, 'utf8'), new RegExp(`server 127\\.0\\.0\\.1:${backends[1].port} `));
  const generationsBefore = logLines.filter((l) => l.msg === 'reloaded: new generation serving, old one draining').length;

  // A slow request in flight on the current generation, over HTTP/1.1 and as an h2c stream...
  const h2old = await h2connect(`http://127.0.0.1:${port}`);
  let h2goaway = false;
  h2old.on('goaway', () => { h2goaway = true; });
  const slow = getByHost(port, web, '/slow', 10_000);
  const h2slow = h2request(h2old, { ':path': '/slow', ':authority': web }, undefined, 10_000);
  await untilRetryingErrors('slow requests reached the backends', () => backends[0].slowStarted + backends[1].slowStarted > 1, 5000);
  // ...while a Consul change makes a new generation.
  const changedAt = Date.now();
  await register('web-3', backends[2]);
  await untilRetryingErrors('backend-3 answers', async () => (await served(4)).has('backend-3'), 15_000);
  const followMs = Date.now() - changedAt;
  const slowAnswer = await slow;
  assert.equal(slowAnswer.status, 200, 'the in-flight request on the old generation completed');
  assert.match(slowAnswer.body, /^backend-[12] slow$/);
  // the old generation's h2 client got GOAWAY, its stream finished there; new sessions reach the new generation
  const h2answer = await h2slow;
  assert.equal(h2answer.status, 200, 'the h2 stream in flight on the old generation completed');
  assert.match(h2answer.text, /^backend-[12] slow$/);
  assert.ok(h2goaway, 'the old generation sent GOAWAY to its h2 client');
  await untilRetryingErrors('the old h2 session closed after its stream', () => h2old.closed || h2old.destroyed, 10_000);
  const h2new = await h2connect(`http://127.0.0.1:${port}`);
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) seen.add((await h2request(h2new, { ':path': '/', ':authority': web })).text);
    assert.deepEqual([...seen].sort(), ['backend-1', 'backend-2', 'backend-3'], 'streams of a new h2 session use the new generation');
  } finally {
    h2new.close();
  }
  assert.deepEqual([...(await served(12))].sort(), ['backend-1', 'backend-2', 'backend-3']);
  await untilRetryingErrors('reload logged', () => logLines.filter((l) => l.msg === 'reloaded: new generation serving, old one draining').length > generationsBefore, 5000);

  // A deregistration is a reload too.
  await consulRequest(consul, 'PUT', `/v1/agent/service/deregister/${scope.id('web-1')}`);
  await untilRetryingErrors('backend-1 gone', async () => !(await served(8)).has('backend-1'), 15_000);
  assert.doesNotMatch(await readFile(configOut, 'utf8'), new RegExp(`:${backends[0].port} `));
  t.diagnostic(`Consul change -> traffic on the new instance in reload mode: ${followMs} ms`);

  // Restart with Consul unreachable: like nginx, the last rendered config serves at once.
  const exited = new Promise((r) => proc!.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
  await consul.outage();
  proc = startBalancer();
  await Promise.race([
    untilRetryingErrors('serving from the previous rendered config', async () => (await getByHost(port, web)).status === 200, 30_000),
    exitedEarly.then((why) => Promise.reject(new Error(why))),
  ]);
  assert.deepEqual([...(await served(8))].sort(), ['backend-2', 'backend-3']);
  assert.ok(logLines.some((l) => l.msg === 'first generation started from the previous rendered config'));
  await consul.restore();
});
