// One instance out and another in at ONE raft index (a /v1/txn with two Service ops, as Consul applies
// it: state/txn.go, every op at one index), so the catalog's instance counts never change: the new
// instance serves and the old one is gone, in dynamic mode, in reload mode and in what --render writes.
// The discovery side that used to miss this is issue 17 item 12 (the summary sees only counts). Through
// the HTTP API only (catalog register on a node of the test's own, /v1/txn), so it runs unchanged
// against a real agent with CONSUL_HTTP_ADDR. The time from the txn's answer to the switch is printed:
// the issue asks for 1 s; the assertion is a liveness bound (the machine is shared; no timed assertion).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnBalancer, type BalancerProcess } from '../support/balancer-process.js';
import { request } from 'undici';
import { consulPut, consulRequest } from '../support/consul-http.js';
import { consulForTest, testScope, type ConsulTarget, type TestScope } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { getByHost } from '../support/host-get.js';
import { startNamedBackend } from '../support/http-backend.js';
import { untilRetryingErrors } from '../support/poll.js';

/** liveness bound of the switch (the figure asked for is 1 s; see the diagnostic) */
const SWITCH_DEADLINE_MS = 15_000;

interface World {
  consul: ConsulTarget;
  scope: TestScope;
  web: string;
  node: string;
  oldId: string;
  newId: string;
  oldPort: number;
  newPort: number;
  close(): Promise<void>;
}

/** A node of the test's own with one passing instance of `web` on the "old" backend. */
async function startWorld(): Promise<World> {
  const consul = await consulForTest();
  const scope = testScope();
  const oldB = await startNamedBackend('old');
  const newB = await startNamedBackend('new');
  const web = scope.name('web');
  const node = scope.name('node');
  const oldId = scope.id('web-old');
  await consulPut(consul, '/v1/catalog/register', {
    Node: node, Address: '127.0.0.1', Service: { ID: oldId, Service: web, Address: '127.0.0.1', Port: oldB.port },
    Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' },
  });
  return {
    consul, scope, web, node, oldId, newId: scope.id('web-new'), oldPort: oldB.port, newPort: newB.port,
    async close() {
      await consulRequest(consul, 'PUT', '/v1/catalog/deregister', { Node: node }).catch(() => undefined);
      await scope.clean(consul);
      await consul.close();
      for (const b of [oldB, newB]) {
        b.server.closeAllConnections();
        await new Promise((r) => b.server.close(r));
      }
    },
  };
}

/** The /v1/txn: old out, new in, one raft index; resolves when Consul has answered it. */
async function swapInOneIndex(w: World): Promise<number> {
  const res = await request(`${w.consul.url}/v1/txn`, {
    method: 'PUT', signal: AbortSignal.timeout(5000),
    body: JSON.stringify([
      { Service: { Verb: 'delete', Node: w.node, Service: { ID: w.oldId } } },
      { Service: { Verb: 'set', Node: w.node, Service: { ID: w.newId, Service: w.web, Address: '127.0.0.1', Port: w.newPort } } },
    ]),
  });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  return Date.now();
}

/** Until `ok` holds; the milliseconds it took from `since`. */
async function msUntil(what: string, since: number, ok: () => Promise<boolean>): Promise<number> {
  await untilRetryingErrors(what, ok, SWITCH_DEADLINE_MS, 10);
  return Date.now() - since;
}

/** 8 requests, each on a connection of its own: every one answered by `name` */
async function allServedBy(port: number, host: string, name: string): Promise<boolean> {
  for (let i = 0; i < 8; i++) {
    const r = await getByHost(port, host, '/', 5000);
    if (r.status !== 200 || r.body !== name) return false;
  }
  return true;
}

async function stopBalancer(b: BalancerProcess | undefined): Promise<void> {
  if (b) await b.stop(10_000);
}

test('dynamic mode: one instance out and another in at one index, the new one serves and the old one is gone', { timeout: 120_000 }, async (t) => {
  const w = await startWorld();
  let balancer: BalancerProcess | undefined;
  try {
    const port = await freePort();
    balancer = spawnBalancer(['--consul', w.consul.addr, '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--workers', '2', '--consul-resync', '1h', '--log-level', 'warn']);
    await untilRetryingErrors('the old instance serving', () => allServedBy(port, w.web, 'old'), 60_000);
    const at = await swapInOneIndex(w);
    const ms = await msUntil('only the new instance serving', at, () => allServedBy(port, w.web, 'new'));
    t.diagnostic(`dynamic mode (2 workers): txn answered -> 8 of 8 requests on the new instance in ${ms} ms`);
  } finally {
    await stopBalancer(balancer);
    await w.close();
  }
});

test('reload mode: one instance out and another in at one index, the new generation serves only the new one', { timeout: 120_000 }, async (t) => {
  const w = await startWorld();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'count-preserving-reload-'));
  let balancer: BalancerProcess | undefined;
  try {
    const port = await freePort();
    const configOut = path.join(dir, 'balancer.conf');
    balancer = spawnBalancer(['--mode', 'reload', '--consul', w.consul.addr, '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--workers', '1',
      '--config-out', configOut, '--drain-timeout', '2s', '--consul-resync', '1h', '--log-level', 'info'], { BALANCER_MODE: undefined });
    await untilRetryingErrors('the old instance serving', () => allServedBy(port, w.web, 'old'), 60_000);
    // the steady state: the next generation is forked ahead of time (a change right after start waits for it)
    await balancer.waitForLog((l) => l.msg === 'standby generation ready', 30_000);
    const at = await swapInOneIndex(w);
    const ms = await msUntil('only the new instance serving', at, () => allServedBy(port, w.web, 'new'));
    const conf = readFileSync(configOut, 'utf8');
    assert.match(conf, new RegExp(`:${w.newPort}\\b`));
    assert.doesNotMatch(conf, new RegExp(`:${w.oldPort}\\b`));
    // how much of it was starting the new worker generation (a process start on a shared machine)
    // where the time went (reload-mode.ts and supervisor.ts log the phases)
    const reload = balancer.logs.find((l) => l.msg === 'reloaded: new generation serving, old one draining');
    const p = (reload?.phases ?? {}) as Record<string, unknown>;
    const line = `reload mode: txn answered -> 8 of 8 requests on the new instance in ${ms} ms; phases: Consul answer -> rendered+validated+written ${String(reload?.renderMs)} ms, ` +
      `parse ${String(reload?.parseMs)} ms, new generation ${String(reload?.durationMs)} ms (standby ${String(p.standby)}: fork -> hello ${String(p.forkMs)} ms, init -> listening ${String(p.initToReadyMs)} ms), ` +
      `answer -> new generation serving ${String(reload?.sinceChangeMs)} ms`;
    t.diagnostic(line);
    console.error(`# ${line}`);
  } finally {
    await stopBalancer(balancer);
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--render: one instance out and another in at one index, the rendered file names only the new one', { timeout: 120_000 }, async (t) => {
  const w = await startWorld();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'count-preserving-render-'));
  let balancer: BalancerProcess | undefined;
  try {
    const tpl = path.join(dir, 'upstreams.hbs');
    const out = path.join(dir, 'upstreams.txt');
    writeFileSync(tpl, `{{#each (service "${w.web}")}}server {{Address}}:{{Port}};\n{{/each}}`);
    balancer = spawnBalancer(['--consul', w.consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--render', `${tpl}:${out}`, '--consul-resync', '1h', '--log-level', 'warn']);
    const rendered = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
    await untilRetryingErrors('the first render', async () => rendered() === `server 127.0.0.1:${w.oldPort};\n`, 60_000);
    const at = await swapInOneIndex(w);
    const ms = await msUntil('the render naming only the new instance', at, async () => rendered() === `server 127.0.0.1:${w.newPort};\n`);
    t.diagnostic(`--render: txn answered -> file names only the new instance in ${ms} ms`);
  } finally {
    await stopBalancer(balancer);
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
