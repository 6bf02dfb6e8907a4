// One agent budget for every registry call: never more than N in flight whatever runs at once (resync,
// events, TTL refresh); an agent over its limit (429, bare close) pauses everyone with backoff instead of
// a hot loop of retries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { Bridge } from '../../registrator/src/bridge.js';
import { AgentBudget, BudgetedRegistry } from '../../registrator/src/registry/agent-budget.js';
import { RegistryError } from '../../registrator/src/registry/registry.js';
import { FakeDocker, FakeRegistry } from '../support/registrator-fakes.js';

test('a resync of 300 containers, events and TTL refreshes together stay within the budget of 8 calls', async () => {
  const docker = new FakeDocker();
  for (let i = 0; i < 300; i++) docker.containers.set(`c${i}`, { running: true, env: ['SERVICE_NAME=web'] });
  const inner = new FakeRegistry();
  inner.delayMs = 2;
  const budget = new AgentBudget({ maxConcurrent: 8 });
  const bridge = new Bridge({
    docker: docker.asDocker(), registry: new BudgetedRegistry(inner, budget), logger: pino({ level: 'silent' }),
    mapping: { hostname: 'h', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'h', ttl: 10, ttlRefresh: 5 },
    deregister: 'always', cleanup: true, resyncSeconds: 0, resyncConcurrency: 32,
  });
  const resync = bridge.requestResync('startup');
  for (let i = 0; i < 50; i++) bridge.onEvent({ containerId: `c${i}`, action: 'start' });
  await resync;
  const refresh = (bridge as unknown as { refreshTtlChecks(): Promise<void> }).refreshTtlChecks();
  await Promise.all([refresh, bridge.requestResync('periodic')]);
  assert.equal(inner.services.size, 300);
  assert.ok(inner.maxInFlight <= 8, `max in flight ${inner.maxInFlight}`);
  assert.equal(budget.stats.maxInFlight, inner.maxInFlight);
  assert.ok(inner.maxInFlight >= 4, `the budget is used (${inner.maxInFlight})`);
  await bridge.stop();
});

test('over budget (429 / bare close): calls pause with growing backoff and give up after a bounded number of tries', async () => {
  const budget = new AgentBudget({ maxConcurrent: 4, backoff: { baseMs: 20, maxMs: 200 }, random: () => 1 });
  let attempts = 0;
  const started = Date.now();
  const calls = Array.from({ length: 4 }, () => budget.run(AbortSignal.timeout(10_000), async () => {
    attempts += 1;
    throw new RegistryError('ERR_REGISTRY_RECORD_FAILED', '429', { status: 429, overBudget: true });
  }));
  const results = await Promise.allSettled(calls);
  const elapsed = Date.now() - started;
  assert.ok(results.every((r) => r.status === 'rejected'));
  assert.equal(attempts, 4 * 5, 'five tries per call, no more');
  // Each over-budget answer pushes the shared pause out: 20, 40, 80, 160, 200... ms, so the storm is paced.
  assert.ok(elapsed >= 600, `elapsed ${elapsed} ms`);
  assert.equal(budget.stats.overBudget, 20);
});

test('over budget then accepted: the call succeeds after the pause and the backoff resets', async () => {
  const budget = new AgentBudget({ maxConcurrent: 2, backoff: { baseMs: 10, maxMs: 100 }, random: () => 1 });
  let n = 0;
  const result = await budget.run(AbortSignal.timeout(5000), async () => {
    n += 1;
    if (n < 3) throw new RegistryError('ERR_REGISTRY_UNAVAILABLE', 'socket hang up', { overBudget: true });
    return 'ok';
  });
  assert.equal(result, 'ok');
  assert.equal(n, 3);
  // A failure that is not over-budget is passed straight through, untried again.
  let m = 0;
  await assert.rejects(budget.run(AbortSignal.timeout(5000), async () => {
    m += 1;
    throw new RegistryError('ERR_REGISTRY_REJECTED', '400', { status: 400 });
  }));
  assert.equal(m, 1);
});

test('an aborted waiter leaves the queue and the budget stays whole', async () => {
  const budget = new AgentBudget({ maxConcurrent: 1 });
  let release!: () => void;
  const holder = budget.run(AbortSignal.timeout(5000), () => new Promise<void>((r) => (release = r)));
  const abort = new AbortController();
  const waiter = budget.run(abort.signal, async () => 'never');
  abort.abort();
  await assert.rejects(waiter, (err: unknown) => err instanceof RegistryError && err.code === 'ERR_REGISTRY_ABORTED');
  release();
  await holder;
  assert.equal(budget.stats.inFlight, 0);
  assert.equal(await budget.run(AbortSignal.timeout(1000), async () => 'next'), 'next');
});

test('an urgent call (a drain\'s maintenance write) takes the next free slot before calls already waiting', async () => {
  const budget = new AgentBudget({ maxConcurrent: 1 });
  const order: string[] = [];
  let release!: () => void;
  let started!: () => void;
  const running = new Promise<void>((r) => (started = r));
  const holder = budget.run(AbortSignal.timeout(5000), () => new Promise<void>((r) => {
    release = r;
    started();
  }));
  await running;
  const calls = ['a', 'b', 'c'].map((name) => budget.run(AbortSignal.timeout(5000), async () => { order.push(name); }));
  const urgent = budget.run(AbortSignal.timeout(5000), async () => { order.push('urgent'); }, { urgent: true });
  release();
  await Promise.all([holder, ...calls, urgent]);
  assert.deepEqual(order, ['urgent', 'a', 'b', 'c']);
});

test('BudgetedRegistry: entering maintenance is urgent, leaving it is not', async () => {
  const inner = new FakeRegistry();
  const budget = new AgentBudget({ maxConcurrent: 1 });
  const registry = new BudgetedRegistry(inner, budget);
  inner.services.set('s1', { id: 's1' } as never);
  inner.delayMs = 20;
  const signal = AbortSignal.timeout(5000);
  const first = registry.ping(signal);
  const waiting = [registry.ping(signal), registry.setMaintenance('s1', false, '', signal), registry.setMaintenance('s1', true, 'drain', signal)];
  await Promise.all([first, ...waiting]);
  assert.deepEqual(inner.calls, ['ping', 'maintenance s1 true', 'ping', 'maintenance s1 false']);
});
