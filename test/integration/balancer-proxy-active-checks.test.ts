// Active health checks: HTTP (expected statuses) and TCP probes take a server out after `fall`
// failures and bring it back after `rise` successes; traffic follows.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { ActiveCheckSpec } from '../../balancer/src/routing/types.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond() && Date.now() < deadline) await sleep(10);
  return cond();
}

const HTTP_CHECK: ActiveCheckSpec = { type: 'http', path: '/health', intervalMs: 30, timeoutMs: 300, rise: 2, fall: 2, expectStatuses: [200] };

for (const engine of ENGINES) describe(`balancer proxy: active health checks [${engine}]`, () => {
  let backends: Backend[] = [];
  let proxy: RunningProxy | undefined;

  afterEach(async () => {
    await proxy?.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('HTTP check: a server answering an unexpected status goes down, then comes back up', async () => {
    backends = await startBackends(2);
    const [b0, b1] = backends;
    const p = await startProxy(engineOptions(engine));
    proxy = p;
    p.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', backends.map((b) => b.spec()), { check: HTTP_CHECK }) }, []));
    const b0Status = (): string | undefined => p.runtime.status()[0].servers.find((s) => s.id === b0.spec().id)?.status;
    b0.healthStatus = 500;
    assert.ok(await waitFor(() => b0Status() === 'ejected', 2_000), 'b0 down after fall failures');
    const server = p.runtime.status()[0].servers.find((s) => s.id === b0.spec().id);
    assert.equal(server?.activeCheck?.up, false);
    assert.match(String(server?.lastError), /status 500/);
    const before = b0.requests;
    for (let i = 0; i < 10; i++) assert.equal((await p.fetch('web')).text, 'b1');
    assert.equal(b0.requests, before, 'no traffic to a server that is down');
    b0.healthStatus = 200;
    assert.ok(await waitFor(() => b0Status() === 'ok', 2_000), 'b0 up after rise successes');
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await p.fetch('web')).text);
    assert.deepEqual([...seen].sort(), ['b0', 'b1']);
    void b1;
  });

  it('TCP check: a killed server goes down; checks stop with the table entry', async () => {
    backends = await startBackends(2);
    const [b0, b1] = backends;
    const p = await startProxy(engineOptions(engine));
    proxy = p;
    const tcp: ActiveCheckSpec = { ...HTTP_CHECK, type: 'tcp' };
    p.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', backends.map((b) => b.spec({ maxFails: 0 })), { check: tcp }) }, []));
    await b0.kill();
    const b0Status = (): string | undefined => p.runtime.status()[0].servers.find((s) => s.id === b0.spec().id)?.status;
    assert.ok(await waitFor(() => b0Status() === 'ejected', 2_000), 'b0 down after its port closed');
    for (let i = 0; i < 5; i++) assert.equal((await p.fetch('web')).text, 'b1');
    const probing = b1.accepted;
    await sleep(100);
    assert.ok(b1.accepted > probing, 'TCP probes open connections while the check is on');
    // a table without the check: no more probes reach b1
    p.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [b1.spec()]) }, []));
    const acceptedNow = b1.accepted;
    // a window of 10 probe intervals; a probe begun before the swap may still land (one connection at
    // most: a checker probes a server one at a time), one more means checking went on
    await sleep(300);
    assert.ok(b1.accepted <= acceptedNow + 1, `no new probe connections after the one under way (${b1.accepted - acceptedNow} came)`);
    assert.equal(p.runtime.status()[0].servers[0].activeCheck, undefined);
  });
});
