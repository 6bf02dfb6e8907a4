// A small connection budget with every KV watch on: --consul-max-conns 4 with the policy KV watch,
// the KV scripts watch (--scripts-kv), the KV certificate watch (--tls-kv-prefix) and a --render
// template reading a KV key and a service (its own catalog watcher). The catalog signals reserve
// first (2 slots), the policy watch takes the last slot the budget gives away (reads always keep
// one), and every other watch, the template's catalog signals too, polls in the read share.
// Measured at a counting TCP gate in front of the agent (so it holds against a real agent too): the balancer never has more than 4 connections open, a new instance still becomes
// routable, a KV policy change still applies, and the polling watches still follow their keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { ConsulBudget } from '../../balancer/src/discovery/consul-budget.js';
import { watchConsulCatalog, type CatalogWatcher } from '../../balancer/src/discovery/consul-catalog.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { startTcpGate } from '../support/tcp-gate.js';
import { makeTestCa } from '../support/tls-certs.js';

const BUDGET = 4;
/** a new instance / a KV change must show within this (blocking: ~instant; polling: ~2 s pauses) */
const FOLLOW_MS = 12_000;

async function consulCall(consul: ConsulTarget, method: string, path: string, body?: string): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}${path}`, { method: method as 'PUT', headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `${method} ${path}: ${text}`);
}

async function until(what: string, probe: () => Promise<boolean> | boolean, timeoutMs = FOLLOW_MS): Promise<number> {
  const start = Date.now();
  while (!(await probe())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - start;
}

test('--consul-max-conns 4 with every KV watch on: never more than 4 connections, instances and KV changes still followed', { timeout: 60_000 }, async (t) => {
  const consul = await consulForTest();
  const scope = testScope();
  const service = scope.name('web');
  const policyKey = `balancer/policy/${service}`;
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
  // the balancer's own way to the agent: counted here, whatever the agent is
  const gate = await startTcpGate({ host: consul.host, port: consul.port });
  const dir = await mkdtemp(join(os.tmpdir(), 'small-budget-'));
  const ca = await makeTestCa('small-budget');
  const backends = await Promise.all(['s1', 's2', 'c1'].map((name) => startNamedBackend(name)));
  const [s1, s2, c1] = backends;
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  t.after(async () => {
    await primary?.stop();
    await gate.close();
    await consulCall(consul, 'DELETE', `/v1/kv/${policyKey}`).catch(() => undefined);
    await scope.clean(consul);
    await consul.close();
    await ca.close();
    for (const b of backends) b.server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const register = (id: string, port: number, tags: string[] = []) =>
    consulCall(consul, 'PUT', '/v1/agent/service/register', JSON.stringify({ ID: scope.id(id), Name: service, Address: '127.0.0.1', Port: port, Tags: tags }));

  await register('s1', s1.port);
  await consulCall(consul, 'PUT', `/v1/kv/${scope.kv('conf/color')}`, 'red');
  const tpl = join(dir, 'color.tpl');
  const out = join(dir, 'color.out');
  // a KV key and a catalog dependency: the template's own catalog watcher finds no slot left either
  await writeFile(tpl, `color={{key "${scope.kv('conf/color')}"}}\n{{#each (service "${service}")}}server {{Address}}:{{Port}}\n{{/each}}`);
  // a long wait: a blocking query that took a read's socket would hold it this long
  primary = await startPrimary(balancerConfig(['--consul', gate.addr, '--consul-max-conns', String(BUDGET), '--consul-wait', '30s',
    '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1', '--log-level', 'warn', '--services', service,
    '--scripts-kv', '--scripts-kv-prefix', scope.kv('scripts/'),
    '--tls-listen', '127.0.0.1:0', '--tls-kv-prefix', scope.kv('certs/'),
    '--render', `${tpl}:${out}`]), logger);
  const port = primary.proxy.port;
  const p = primary;
  const get = async (): Promise<{ body: string; script: string | undefined }> => {
    const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: service }, signal: AbortSignal.timeout(3000) });
    const body = await res.body.text();
    return { body, script: res.headers['x-kv-script'] as string | undefined };
  };
  const bodies = async (n: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add((await get()).body);
    return seen;
  };
  await until('s1 routable', async () => (await get()).body === 's1');
  await until('the template rendered', () => readFile(out, 'utf8').then((s) => s.startsWith('color=red\n') && s.includes(`:${s1.port}\n`), () => false));
  const polling = lines.filter((l) => l.includes('polling')).map((l) => JSON.parse(l) as { watch?: string; msg: string });
  t.diagnostic(`watches polling: ${polling.map((l) => l.watch ?? l.msg).join(', ')}`);
  assert.ok(polling.some((l) => l.watch === 'scripts'), 'the scripts watch found no slot left and polls');
  assert.ok(polling.some((l) => l.msg.includes('certificate KV watch')), 'the certificate watch found no slot left and polls');
  assert.ok(polling.some((l) => l.msg.includes('change signal')), "the template's catalog watcher found no slot left and polls its signals");
  assert.ok(!polling.some((l) => l.watch === 'policy'), 'the policy watch holds the last slot the budget gives away');

  // a new instance: the service re-read has its socket even with every watch on
  await register('s2', s2.port);
  const newInstanceMs = await until('s2 gets traffic', async () => (await bodies(4)).has('s2'));
  // a KV policy (all traffic to the canary-tagged instance; s1 and s2 had it before) on the watch holding the last slot
  await register('c1', c1.port, ['canary']);
  await until('c1 in the table', () => (p.holder.current().upstreams[service]?.servers.length ?? 0) === 3);
  await consulCall(consul, 'PUT', `/v1/kv/${policyKey}`, JSON.stringify({ canary: { weight: 100 } }));
  const policyMs = await until('the KV policy sends everything to c1', async () => {
    const seen = await bodies(4);
    return seen.size === 1 && seen.has('c1');
  });
  // the polling watches: a KV script, a KV certificate, the template's key
  await consulCall(consul, 'PUT', `/v1/kv/${scope.kv('scripts/hdr')}`, "export function onResponse(res) {\n  return { headers: { 'x-kv-script': 'polled' } };\n}\n");
  const scriptMs = await until('the KV script runs', async () => (await get()).script === 'polled');
  const leaf = await ca.issue(['small.example.test']);
  await consulCall(consul, 'PUT', `/v1/kv/${scope.kv('certs/small.example.test/cert')}`, leaf.cert);
  await consulCall(consul, 'PUT', `/v1/kv/${scope.kv('certs/small.example.test/key')}`, leaf.key);
  const certMs = await until('the KV certificate loads', () => p.tls?.handle.store.entryFor('small.example.test') !== undefined);
  await consulCall(consul, 'PUT', `/v1/kv/${scope.kv('conf/color')}`, 'blue');
  const renderMs = await until('the template re-rendered (key and instances)', () => readFile(out, 'utf8').then((s) => s.startsWith('color=blue\n') && s.includes(`:${c1.port}\n`), () => false));

  const conns = gate.connections();
  t.diagnostic(`new instance ${newInstanceMs} ms, policy ${policyMs} ms, script ${scriptMs} ms, cert ${certMs} ms, render ${renderMs} ms; ` +
    `balancer -> agent: peak ${conns.peak} connections, ${conns.accepted} accepted`);
  assert.ok(conns.peak <= BUDGET, `the agent saw ${conns.peak} connections at once from the balancer (budget ${BUDGET})`);
  if (consul.double) assert.equal(consul.double.stats().rejected, 0, 'no 429 from the double');
});

/** An Agent that records every request target (path and query) it dispatches. */
class RecordingAgent extends Agent {
  readonly targets: string[] = [];
  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    this.targets.push(String(opts.path));
    return super.dispatch(opts, handler);
  }
}

for (const slotsLeft of [2, 0]) {
  test(`a catalog watcher with ${slotsLeft} budget slots left for its signals: ${slotsLeft === 2 ? 'blocking queries' : 'plain polls, no blocking query'}, and it follows a registration`, { timeout: 30_000 }, async (t) => {
    const consul = await consulForTest();
    const scope = testScope();
    const [a, b] = [scope.name('a'), scope.name('b')];
    const recorder = new RecordingAgent({ connections: BUDGET });
    const budget = new ConsulBudget({ maxConns: BUDGET, dispatcher: recorder });
    const controller = new AbortController();
    let watcher: CatalogWatcher | undefined;
    t.after(async () => {
      controller.abort();
      await watcher?.done;
      await recorder.close();
      await scope.clean(consul);
      await consul.close();
    });
    const reg = (name: string) => consulCall(consul, 'PUT', '/v1/agent/service/register', JSON.stringify({ ID: `${name}-1`, Name: name, Address: '127.0.0.1', Port: 10_001 }));
    await reg(a);
    // other watchers took what the budget gives away (it keeps one connection for the reads)
    assert.equal(budget.reserve(BUDGET - 1 - slotsLeft), BUDGET - 1 - slotsLeft);
    watcher = watchConsulCatalog({
      endpoint: { baseUrl: consul.url, token: process.env.CONSUL_HTTP_TOKEN }, budget, waitMs: 20_000, minQueryIntervalMs: 10, debounceMs: 2,
      services: [a, b], logger: pino({ level: 'silent' }), onSnapshot: () => undefined,
    }, controller.signal);
    const w = watcher;
    await w.ready;
    await reg(b);
    const followMs = await until(`${b} seen`, () => (w.current()?.services[b]?.length ?? 0) === 1);
    const signalTargets = recorder.targets.filter((p) => p.startsWith('/v1/catalog/services') || p.startsWith('/v1/health/state/any'));
    const blocking = signalTargets.filter((p) => /[?&]index=\d/.test(p));
    t.diagnostic(`${signalTargets.length} signal requests, ${blocking.length} blocking; ${b} followed in ${followMs} ms`);
    if (slotsLeft === 2) assert.ok(blocking.length >= 2, 'with slots the signals block (the recorder sees index=)');
    else assert.deepEqual(blocking, [], 'without a slot no signal holds a connection');
    assert.ok(budget.stats().peakInFlight <= BUDGET);
  });
}
