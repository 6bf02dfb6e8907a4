// The renderer driving a real (Debian) nginx, as consul-template would: nginx-upstreams.conf.hbs is
// rendered from the Consul double, nginx proxies by Host to every instance, a new instance is
// rendered, nginx is reloaded and traffic reaches it; a service with no instance gets a placeholder
// server marked down (nginx refuses an empty upstream) and answers 502.
// After a reload, nginx's master starts the new workers and only 100 ms later (ngx_msleep(100) in
// ngx_master_process_cycle) tells the old ones to stop accepting: in between, and for as long as a
// loaded machine delays the old worker, both generations take connections and the old one still
// proxies to the old upstream list. So "every instance is served" is asserted once nginx says (in its
// error log) that the old worker has exited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { consulRequest } from '../support/consul-http.js';
import { loadTemplateJob, startRenderer, type CycleReport } from '../../balancer/src/render/renderer.js';
import { consulForTest, testScope } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { getByHost } from '../support/host-get.js';
import { untilRetryingErrors } from '../support/poll.js';
import { repoRoot } from '../support/repo-root.js';

const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }, pino.destination({ fd: 2, sync: true }));

/** nginx's own account (error log, notice level) of its worker processes started and not yet reaped. */
async function liveWorkers(errorLog: string): Promise<string[]> {
  const text = await readFile(errorLog, 'utf8');
  const exited = new Set([...text.matchAll(/worker process (\d+) exited/g)].map((m) => m[1]));
  return [...text.matchAll(/start worker process (\d+)/g)].map((m) => m[1]).filter((pid) => !exited.has(pid));
}

async function startBackend(name: string): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    }),
  };
}

test('renderer + nginx: proxies by Host to every instance, follows a new instance after reload', { skip: NGINX || process.env.CI ? false : 'nginx not installed (.ci/run installs it; under CI its absence fails the test)' }, async (t) => {
  assert.ok(NGINX, 'nginx is not installed (Debian package nginx-light; .ci/run installs it)');
  const consul = await consulForTest();
  // IDs and names of this test only (a shared agent holds other tests' services too)
  const scope = testScope();
  const web = scope.name('web');
  const dir = await mkdtemp(join(os.tmpdir(), 'render-nginx-'));
  const ac = new AbortController();
  const backends = await Promise.all(['backend-1', 'backend-2', 'backend-3'].map(startBackend));
  let nginx: ChildProcess | undefined;
  t.after(async () => {
    ac.abort();
    if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
      const exited = new Promise((r) => nginx!.once('exit', r));
      nginx.kill('SIGTERM'); // fast shutdown: the master stops its workers
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (nginx.exitCode === null && nginx.signalCode === null) nginx.kill('SIGKILL');
    }
    await Promise.all(backends.map((b) => b.close()));
    await scope.clean(consul);
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  });

  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const upstreams = join(dir, 'upstreams.conf');
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) await mkdir(join(dir, sub));
  // As root, nginx would switch its workers to "nobody", who cannot enter the private temp dir.
  const user = process.getuid?.() === 0 ? 'user root root;\n' : '';
  await writeFile(conf, `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log info;
events { worker_connections 256; }
http {
  # which worker (generation) answered each request, and from which backend: said when the test fails
  log_format served '$pid $upstream_addr $status';
  access_log ${dir}/logs/access.log served;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${upstreams};
}
`);
  const nginxArgs = `-p ${dir}/ -c ${conf}`;

  await consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id('web-1'), Name: web, Address: '127.0.0.1', Port: backends[0].port });
  await consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id('web-2'), Name: web, Address: '127.0.0.1', Port: backends[1].port });
  const cycles: CycleReport[] = [];
  const job = await loadTemplateJob(join(repoRoot(), 'templates', 'nginx-upstreams.conf.hbs'), upstreams);
  const renderer = await startRenderer({
    jobs: [job],
    endpoint: { baseUrl: consul.url },
    logger,
    signal: ac.signal,
    env: { ...process.env, NGINX_LISTEN: `127.0.0.1:${port}` },
    // Reload only a running nginx (the first render happens before it starts); `-t` first, as
    // operators do, so a bad file is reported and the running config stays.
    reloadCommand: `test -s ${dir}/nginx.pid || exit 0; ${NGINX} -t -q ${nginxArgs} && ${NGINX} -s reload ${nginxArgs}`,
    wait: { minMs: 50, maxMs: 500 },
    watch: { blockingWaitMs: 5000 },
    onCycle: (c) => cycles.push(c),
  });
  await renderer.firstComplete;
  const rendered = await readFile(upstreams, 'utf8');
  assert.match(rendered, new RegExp(`server 127\\.0\\.0\\.1:${backends[0].port} `));
  assert.match(rendered, new RegExp(`server 127\\.0\\.0\\.1:${backends[1].port} `));

  const check = spawnSync(NGINX!, ['-t', '-p', `${dir}/`, '-c', conf], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(check.status, 0, `nginx -t: ${check.stderr}`);
  nginx = spawn(NGINX!, ['-p', `${dir}/`, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let nginxStderr = '';
  nginx.stderr!.on('data', (c: Buffer) => (nginxStderr += c.toString()));
  await untilRetryingErrors('nginx listening', async () => (await getByHost(port, web)).status === 200, 20_000).catch((err: Error) => {
    throw new Error(`${err.message}; nginx stderr: ${nginxStderr}`);
  });

  const seen = async (n: number) => {
    const names = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await getByHost(port, web);
      assert.equal(r.status, 200);
      names.add(r.body);
    }
    return names;
  };
  assert.deepEqual([...(await seen(12))].sort(), ['backend-1', 'backend-2']);
  const unknown = await getByHost(port, 'nope.example');
  assert.equal(unknown.status, 404, 'an unknown Host is not proxied');

  // A third instance: rendered, nginx reloaded, traffic reaches it.
  const errorLog = join(dir, 'logs', 'error.log');
  const accessLog = join(dir, 'logs', 'access.log');
  const oldWorkers = await liveWorkers(errorLog);
  assert.equal(oldWorkers.length, 1, `one nginx worker before the change: ${oldWorkers.join(',')}`);
  const registeredAt = Date.now();
  await consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id('web-3'), Name: web, Address: '127.0.0.1', Port: backends[2].port });
  await untilRetryingErrors('backend-3 answers through nginx', async () => (await seen(6)).has('backend-3'));
  const followMs = Date.now() - registeredAt;
  const reload = cycles.flatMap((c) => c.commands).find((c) => c.exitCode === 0 && c.durationMs >= 0);
  assert.ok(reload, `a successful reload command: ${JSON.stringify(cycles.flatMap((c) => c.commands))}`);
  assert.match(await readFile(upstreams, 'utf8'), new RegExp(`server 127\\.0\\.0\\.1:${backends[2].port} `));
  // Until the old worker is gone it may still take (some of) the next requests with the old list.
  await untilRetryingErrors('the old nginx worker exited, the new generation alone serves', async () => {
    const live = await liveWorkers(errorLog);
    return live.length === 1 && !oldWorkers.includes(live[0]);
  });
  const servedBefore = (await readFile(accessLog, 'utf8')).split('\n').length - 1;
  const names = [...(await seen(12))].sort();
  const every = ['backend-1', 'backend-2', 'backend-3'];
  const why = names.join() === every.join() ? undefined
    : `served (pid upstream status): ${(await readFile(accessLog, 'utf8')).split('\n').slice(servedBefore).join('; ')}; `
      + `workers not exited: ${(await liveWorkers(errorLog)).join(',')} (old ${oldWorkers.join(',')}); `
      + `cycles: ${JSON.stringify(cycles.map((c) => ({ seq: c.seq, jobs: c.jobs.map((j) => j.state), commands: c.commands.map((x) => x.exitCode) })))}; `
      + `rendered: ${await readFile(upstreams, 'utf8')}`;
  assert.deepEqual(names, every, why);

  // Every instance critical: nginx cannot have an empty upstream, the placeholder is down -> 502.
  for (const id of ['web-1', 'web-2', 'web-3']) await consulRequest(consul, 'PUT', `/v1/agent/service/register`, { ID: scope.id(id), Name: web, Address: '127.0.0.1', Port: backends[Number(id.slice(-1)) - 1].port, Check: { TTL: '30s', Status: 'critical' } });
  await untilRetryingErrors('placeholder rendered', async () => (await readFile(upstreams, 'utf8')).includes('server 127.0.0.1:9 down;'));
  await untilRetryingErrors('nginx answers 502 for a service without instances', async () => (await getByHost(port, web)).status === 502);
  t.diagnostic(`Consul change -> traffic on the new instance through nginx: ${followMs} ms`);
});
