// startReloadMode in-process with a recording supervisor and the Consul double: one start, then one
// reload per changed render (quiescence honoured), an unparsable render never reaches the supervisor
// and keeps the previous file, --services filters, --render jobs run the reload command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { consulRequest } from '../support/consul-http.js';
import { defaultBalancerTemplate, startReloadMode, type ReloadModeConfig } from '../../balancer/src/reload/reload-mode.js';
import type { RouteTable } from '../../balancer/src/routing/types.js';
import type { CycleReport } from '../../balancer/src/render/renderer.js';
import { consulForTest, testScope } from '../support/consul.js';
import { until } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }, pino.destination({ fd: 2, sync: true }));

class RecordingSupervisor {
  readonly calls: { op: 'start' | 'reload'; table: RouteTable; at: number }[] = [];
  failStart = false;
  async start(table: RouteTable) {
    if (this.failStart) throw Object.assign(new Error('cannot listen'), { code: 'ERR_WORKER_START' });
    this.calls.push({ op: 'start', table, at: Date.now() });
  }
  async reload(table: RouteTable) {
    this.calls.push({ op: 'reload', table, at: Date.now() });
  }
  ports(i: number, upstream: string): number[] {
    return (this.calls[i]?.table.upstreams[upstream]?.servers ?? []).map((s) => s.port).sort();
  }
}

async function setup(t: { after: (fn: () => Promise<void>) => void }) {
  const consul = await consulForTest();
  // names and IDs of this test only: a shared agent holds other tests' services too
  const scope = testScope();
  const web = scope.name('web');
  const dir = await mkdtemp(join(os.tmpdir(), 'reload-gen-'));
  const ac = new AbortController();
  t.after(async () => {
    ac.abort();
    await scope.clean(consul);
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  });
  const register = (id: string, port: number, tags: string[] = [], name = 'web') =>
    consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id(id), Name: scope.name(name), Address: '127.0.0.1', Port: port, Tags: tags });
  const config = (extra: Partial<ReloadModeConfig['reload']> = {}, more: Partial<ReloadModeConfig> = {}): ReloadModeConfig => ({
    consul: { baseUrl: consul.url, waitMs: 5000, minQueryIntervalMs: 0, debounceMs: 0 },
    reload: { configOut: join(dir, 'balancer.conf'), renders: [], ...extra },
    ...more,
  });
  return { consul, scope, web, dir, ac, register, config };
}

test('one start, then one reload per changed render; an unparsable render keeps the old file and generation', async (t) => {
  const { ac, register, config, dir, consul, scope, web } = await setup(t);
  // The balancer's own helpers check every Consul value they paste (a bad tag is dropped with a
  // warning), so no tag can make the stock template unparsable any more. A user's template may still
  // paste raw text: this one appends a KV value verbatim, and that is where the garbage comes from.
  const template = join(dir, 'balancer.conf.hbs');
  await writeFile(template, `${await readFile(defaultBalancerTemplate(), 'utf8')}\n{{keyOrDefault "${scope.kv('extra')}" ""}}\n`);
  await register('web-1', 9001);
  const sup = new RecordingSupervisor();
  const cycles: CycleReport[] = [];
  const handle = await startReloadMode({ config: config({ template }), supervisor: sup, logger, signal: ac.signal, onCycle: (c) => cycles.push(c) });
  await handle.ready;
  assert.equal(sup.calls.length, 1);
  assert.equal(sup.calls[0].op, 'start');
  assert.deepEqual(sup.ports(0, web), [9001]);
  assert.equal(handle.generations(), 1);

  await register('web-2', 9002);
  await until('reload with web-2', () => sup.calls.length === 2, 8000);
  assert.equal(sup.calls[1].op, 'reload');
  assert.deepEqual(sup.ports(1, web), [9001, 9002]);

  // lb=bogus is dropped with a warning: the instance still joins, with the default algorithm
  await register('web-3', 9003, ['lb=bogus']);
  await until('reload with web-3', () => sup.calls.length === 3, 8000);
  assert.deepEqual(sup.ports(2, web), [9001, 9002, 9003]);
  assert.equal(sup.calls[2].table.upstreams[web].algorithm, 'roundrobin');

  // garbage pasted by the template does not parse: no reload, the file keeps the last good config
  const good = await readFile(join(dir, 'balancer.conf'), 'utf8');
  const cyclesBefore = cycles.length;
  assert.equal(await consulRequest(consul, 'PUT', `/v1/kv/${scope.kv('extra')}`, 'upstream } {'), 200);
  // wait until the garbage render was actually judged (a fixed sleep passes on a slow machine even
  // if the invalid file were applied later)
  await until('the unparsable render refused', () =>
    cycles.slice(cyclesBefore).some((c) => c.jobs.some((j) => j.name === 'balancer.conf' && j.state === 'invalid')), 8000);
  assert.equal(sup.calls.length, 3);
  assert.equal(await readFile(join(dir, 'balancer.conf'), 'utf8'), good);
  assert.equal(await consulRequest(consul, 'DELETE', `/v1/kv/${scope.kv('extra')}`), 200);
  await register('web-3', 9003, ['lb=wrr']);
  await until('reload after the fix', () => sup.calls.length === 4, 8000);
  assert.equal(sup.calls[3].table.upstreams[web].algorithm, 'wrr');
  assert.equal(handle.generations(), 4);

  // A change that renders the same file reloads nothing (Meta is not in the template).
  await consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id('web-1'), Name: web, Address: '127.0.0.1', Port: 9001, Tags: [], Meta: { build: '2' } });
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(sup.calls.length, 4);
  await handle.stop();
});

test('wait min:max: a burst of changes becomes one new generation', async (t) => {
  const { ac, register, config, web } = await setup(t);
  await register('web-0', 9000);
  const sup = new RecordingSupervisor();
  const handle = await startReloadMode({ config: config({ wait: { minMs: 250, maxMs: 3000 } }), supervisor: sup, logger, signal: ac.signal });
  await handle.ready;
  for (let i = 1; i <= 4; i++) {
    await register(`web-${i}`, 9000 + i);
    await new Promise((r) => setTimeout(r, 50));
  }
  await until('one reload', () => sup.calls.length === 2, 8000);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(sup.calls.length, 2, 'exactly one reload for the burst');
  assert.deepEqual(sup.ports(1, web), [9000, 9001, 9002, 9003, 9004]);
  await handle.stop();
});

test('--services restricts the table; --render jobs run the reload command, the balancer config does not', async (t) => {
  const { ac, register, config, dir, scope, web } = await setup(t);
  const api = scope.name('api');
  await register('web-1', 9001, ['urlprefix-web.example.com/']);
  await register('api-1', 9101, [], 'api');
  const tpl = join(dir, 'list.hbs');
  await writeFile(tpl, '{{#each (services)}}{{Name}} {{/each}}');
  const marker = join(dir, 'reloads');
  const sup = new RecordingSupervisor();
  const handle = await startReloadMode({
    config: config({ renders: [{ template: tpl, output: join(dir, 'list.out') }], reloadCommand: `echo x >> ${marker}` }, { services: [web] }),
    supervisor: sup,
    logger,
    signal: ac.signal,
  });
  await handle.ready;
  assert.deepEqual(Object.keys(sup.calls[0].table.upstreams), [web]);
  assert.deepEqual(sup.calls[0].table.routes, [{ host: 'web.example.com', pathPrefix: '/', upstream: web }]);
  // every service of the agent is listed (a real agent may hold more than this test's two)
  await until('list rendered', async () => {
    const listed = (await readFile(join(dir, 'list.out'), 'utf8').catch(() => '')).split(' ');
    return listed.includes(api) && listed.includes(web) && listed.includes('consul');
  }, 8000);
  await until('reload command ran once', async () => (await readFile(marker, 'utf8').catch(() => '')) === 'x\n', 8000);
  await register('web-2', 9002, ['urlprefix-web.example.com/']); // changes the balancer config only
  await until('reload', () => sup.calls.length === 2, 8000);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await readFile(marker, 'utf8'), 'x\n', 'the balancer config change does not run --reload-command');
  await handle.stop();
});

test('a first generation that cannot start rejects ready', async (t) => {
  const { ac, register, config } = await setup(t);
  await register('web-1', 9001);
  const sup = new RecordingSupervisor();
  sup.failStart = true;
  const handle = await startReloadMode({ config: config(), supervisor: sup, logger, signal: ac.signal });
  await assert.rejects(handle.ready, /cannot listen/);
  await handle.stop();
});

test('no Consul: reload mode refuses with a clear code', async () => {
  const sup = new RecordingSupervisor();
  await assert.rejects(
    startReloadMode({ config: { reload: { renders: [] } }, supervisor: sup, logger, signal: new AbortController().signal }),
    (err: unknown) => (err as { code?: string }).code === 'ERR_RELOAD_NEEDS_CONSUL',
  );
});
