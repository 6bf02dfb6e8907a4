// The renderer shares discovery: --render templates and reload mode read hundreds of services through
// one watch set on the connection budget, not one blocking query per template dependency. Against
// the double (which enforces http_max_conns_per_client as Consul does) the agent never sees more than
// --consul-max-conns connections from us, every service renders, and a change re-renders. The
// control shows the per-dependency watcher (consul-template's way) would pass the budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { fetchDependency } from '../../balancer/src/render/consul-fetch.js';
import { startRenderJobs } from '../../balancer/src/render/render-jobs.js';
import { startRenderer } from '../../balancer/src/render/renderer.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulForTest, testScope, type ConsulTarget, type TestScope } from '../support/consul.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }, pino.destination({ fd: 2, sync: true }));
const BUDGET = 8;
/** the test's own registration client: at most this many connections, closed before measuring */
const TEST_CONNS = 4;

function consulCall(target: ConsulTarget, agent: http.Agent | false, method: string, path: string, body?: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request({ host: target.host, port: target.port, method, path, agent, signal: AbortSignal.timeout(10_000) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Registers `count` services of `instances` each (IDs and names of the scope), TEST_CONNS at a time. */
async function registerMany(consul: ConsulTarget, scope: TestScope, count: number, instances: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => scope.name(`s${i}`));
  const agent = new http.Agent({ keepAlive: true, maxSockets: TEST_CONNS });
  try {
    const regs = names.flatMap((name, i) => Array.from({ length: instances }, (_, k) => ({
      ID: `${name}-${k}`, Name: name, Address: '127.0.0.1', Port: 20_000 + i * 10 + k, Tags: k === 0 ? ['v2'] : [],
    })));
    let next = 0;
    await Promise.all(Array.from({ length: TEST_CONNS }, async () => {
      while (next < regs.length) {
        const r = regs[next++];
        assert.equal(await consulCall(consul, agent, 'PUT', '/v1/agent/service/register', r), 200);
      }
    }));
  } finally {
    agent.destroy();
  }
  return names;
}

/** every open connection of the registration client is gone (the double counts them per client) */
async function quiet(consul: ConsulTarget): Promise<void> {
  if (!consul.double) return;
  const double = consul.double;
  await until('registration connections closed', () => double.stats().open === 0, 5000);
  double.resetStats();
}

const serviceLines = (scope: TestScope) => `{{#each (services)}}{{#if (hasPrefix Name "${scope.tag}-")}}{{Name}}:{{#each (sortBy (service Name) "Port")}} {{Port}}{{/each}}
{{/if}}{{/each}}`;

test('--render: 320 services x 2 in two templates, budget 8: every service rendered, a change re-renders, the agent never sees more than 8', { timeout: 60_000 }, async (t) => {
  const consul = await consulForTest();
  const scope = testScope();
  const dir = await mkdtemp(join(os.tmpdir(), 'render-shared-'));
  const ac = new AbortController();
  let handle: Awaited<ReturnType<typeof startRenderJobs>> | undefined;
  t.after(async () => {
    ac.abort();
    await handle?.stop();
    await scope.clean(consul);
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  });
  const names = await registerMany(consul, scope, 320, 2);
  await quiet(consul);
  const tplA = join(dir, 'a.hbs');
  const tplB = join(dir, 'b.hbs');
  await writeFile(tplA, `${serviceLines(scope)}mode={{keyOrDefault "${scope.kv('cfg/mode')}" "none"}}\n`);
  // a second template with its own service queries, a tag filter among them
  await writeFile(tplB, `v2={{#each (service "v2.${names[3]}")}}{{Port}}{{/each}}\nlast={{#each (service "${names[319]}")}} {{Port}}{{/each}}\n`);
  const outA = join(dir, 'a.out');
  const outB = join(dir, 'b.out');
  const started = Date.now();
  handle = await startRenderJobs({
    consul: { baseUrl: consul.url, waitMs: 5000, maxConns: BUDGET },
    renders: [{ template: tplA, output: outA }, { template: tplB, output: outB }],
    logger,
    signal: ac.signal,
  });
  await handle.firstComplete;
  t.diagnostic(`first complete render of 320 services ${Date.now() - started} ms after start`);
  const a = await readFile(outA, 'utf8');
  for (let i = 0; i < names.length; i++) assert.ok(a.includes(`${names[i]}: ${20_000 + i * 10} ${20_000 + i * 10 + 1}\n`), `service ${i} rendered`);
  assert.ok(a.endsWith('mode=none\n'));
  assert.equal(await readFile(outB, 'utf8'), `v2=${20_030}\nlast= ${20_000 + 3190} ${20_000 + 3191}\n`);
  assert.ok(handle.watching().length >= 322, `dependencies watched: ${handle.watching().length}`);

  // a change re-renders: a new instance, and a KV value
  assert.equal(await consulCall(consul, false, 'PUT', '/v1/agent/service/register', { ID: `${names[100]}-new`, Name: names[100], Address: '127.0.0.1', Port: 29_999 }), 200);
  await until('new instance rendered', async () => (await readFile(outA, 'utf8')).includes(`${names[100]}: 21000 21001 29999\n`), 10_000);
  assert.equal(await consulCall(consul, false, 'PUT', `/v1/kv/${scope.kv('cfg/mode')}`, 'fast'), 200);
  await until('kv rendered', async () => (await readFile(outA, 'utf8')).endsWith('mode=fast\n'), 10_000);
  assert.equal(await consulCall(consul, false, 'PUT', `/v1/agent/service/deregister/${names[319]}-1`), 200);
  await until('deregistration rendered', async () => (await readFile(outB, 'utf8')).endsWith(`last= ${20_000 + 3190}\n`), 10_000);

  if (consul.double) {
    const s = consul.double.stats();
    t.diagnostic(`agent: peak ${s.peakPerClient} connections, ${s.requests} requests, ${s.rejected} refused; catalog ${JSON.stringify(handle.catalogStats()?.budget)}`);
    // the renderer's 8, plus the one connection of each change this test made (agent: false, one at a time)
    assert.ok(s.peakPerClient <= BUDGET + 1, `agent saw ${s.peakPerClient} connections at once`);
    assert.equal(s.rejected, 0);
  } else {
    t.diagnostic('real agent: connection figures not observable, budget assertion not made');
  }
});

test('control: the per-dependency watcher (one blocking query per service) passes the budget with 320 services', { timeout: 30_000 }, async (t) => {
  // its own double: the figure read here is the double's own count
  const consul = await consulForTest({ ownDouble: true });
  const double = consul.double!;
  const scope = testScope();
  const ac = new AbortController();
  t.after(async () => {
    ac.abort();
    await scope.clean(consul);
    await consul.close();
  });
  await registerMany(consul, scope, 320, 1);
  await quiet(consul);
  const r = await startRenderer({
    jobs: [{ source: serviceLines(scope), outputPath: join(os.tmpdir(), `render-control-${process.pid}-${scope.tag}.out`) }],
    endpoint: { baseUrl: consul.url },
    logger,
    signal: ac.signal,
    watch: { fetch: fetchDependency, blockingWaitMs: 5000 },
  });
  await until('more connections than the budget', () => double.stats().peakPerClient > BUDGET * 4, 20_000);
  t.diagnostic(`per-dependency watcher: peak ${double.stats().peakPerClient} connections, ${double.stats().rejected} refused`);
  ac.abort();
  await r.stop();
});

test('reload mode: 300 services x 2, budget 8: every service in the served table, a change starts a generation with it, the agent never sees more than 8', { timeout: 60_000 }, async (t) => {
  const consul = await consulForTest();
  const scope = testScope();
  const dir = await mkdtemp(join(os.tmpdir(), 'reload-shared-'));
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  t.after(async () => {
    await primary?.stop();
    await scope.clean(consul);
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  });
  const names = await registerMany(consul, scope, 300, 2);
  await quiet(consul);
  const started = Date.now();
  primary = await startPrimary(balancerConfig(['--mode', 'reload', '--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--workers', '1', '--consul-wait', '5s', '--consul-max-conns', String(BUDGET), '--config-out', join(dir, 'balancer.conf'), '--log-level', 'warn']), logger);
  const holder = primary.holder;
  const mine = () => Object.keys(holder.current().upstreams).filter((n) => n.startsWith(`${scope.tag}-`));
  await until('every service in the served table', () => mine().length === names.length, 20_000);
  t.diagnostic(`all 300 services served ${Date.now() - started} ms after start`);
  for (const name of names) assert.equal(holder.current().upstreams[name].servers.length, 2, name);

  assert.equal(await consulCall(consul, false, 'PUT', '/v1/agent/service/register', { ID: `${names[42]}-new`, Name: names[42], Address: '127.0.0.1', Port: 29_998 }), 200);
  await until('new generation serves the new instance', () => holder.current().upstreams[names[42]]?.servers.length === 3, 15_000);
  assert.ok(primary.supervisor.metrics().generation >= 2, 'a new generation started');

  if (consul.double) {
    const s = consul.double.stats();
    t.diagnostic(`agent: peak ${s.peakPerClient} connections, ${s.requests} requests, ${s.rejected} refused`);
    assert.ok(s.peakPerClient <= BUDGET + 1, `agent saw ${s.peakPerClient} connections at once`);
    assert.equal(s.rejected, 0);
  } else {
    t.diagnostic('real agent: connection figures not observable, budget assertion not made');
  }
});
