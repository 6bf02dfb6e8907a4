// A record the agent fails (5xx, 429, 403) is that record's failure, not an outage: the container is
// retried with backoff, the failure counted and logged once per state change, the other containers are
// untouched and no full resync loop starts. The real Consul backend through a fault-injecting proxy in
// front of the double (or a real agent with CONSUL_HTTP_ADDR); Docker is an in-memory fake.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Bridge } from '../../registrator/src/bridge.js';
import { ConsulRegistry } from '../../registrator/src/registry/consul-backend.js';
import { RegistryError } from '../../registrator/src/registry/registry.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { startFaultProxy, type FaultProxy } from '../support/consul-fault-proxy.js';
import { FakeDocker, until } from '../support/registrator-fakes.js';
import { agentServices } from '../support/registrator-process.js';

const runTag = `rf${process.pid}x${Date.now().toString(36)}`;

function logCapture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: 'debug' }, stream) };
}

describe('registry failures of one record', () => {
  let consul: ConsulTarget;
  let proxy: FaultProxy;
  const bridges: Bridge[] = [];

  before(async () => {
    consul = await consulForTest();
    proxy = await startFaultProxy(consul);
  });

  after(async () => {
    await Promise.all(bridges.map((b) => b.stop(1000)));
    await cleanConsul(consul, `${runTag}-`).catch(() => undefined);
    await proxy.close();
    await consul.close();
  });

  function setup(hint: string, containers: number, over: Partial<ConstructorParameters<typeof Bridge>[0]> = {}) {
    const hostname = `${runTag}-${hint}`;
    const docker = new FakeDocker();
    for (let i = 0; i < containers; i++) docker.containers.set(`c${i}`, { running: true, env: [`SERVICE_NAME=${hostname}-web`] });
    const registry = new ConsulRegistry({ host: proxy.host, port: proxy.port, secure: false, instanceMarker: hostname, callTimeoutMs: 3000 });
    const logs = logCapture();
    const bridge = new Bridge({
      docker: docker.asDocker(), registry, logger: logs.logger,
      mapping: { hostname, internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: hostname },
      deregister: 'always', cleanup: false, resyncSeconds: 0, driftCheckSeconds: 0,
      recordRetry: { baseMs: 100, maxMs: 400 },
      ...over,
    });
    bridges.push(bridge);
    return { hostname, docker, registry, bridge, logs };
  }

  const ours = async (hostname: string) => Object.keys(await agentServices(consul.url)).filter((id) => id.startsWith(`${hostname}:`));

  test('the backend tells a record failure (5xx, 429, 403) from a rejection (4xx)', async () => {
    const registry = new ConsulRegistry({ host: proxy.host, port: proxy.port, secure: false, instanceMarker: 'x', callTimeoutMs: 2000 });
    const record = { id: `${runTag}-cls:svc:80`, name: `${runTag}-cls`, address: '127.0.0.1', port: 1, tags: [], meta: {}, checks: [], containerId: 'c', containerName: 'c', exposedPort: '80', protocol: 'tcp' as const };
    try {
      for (const [status, code, overBudget] of [[500, 'ERR_REGISTRY_RECORD_FAILED', false], [503, 'ERR_REGISTRY_RECORD_FAILED', false], [429, 'ERR_REGISTRY_RECORD_FAILED', true], [403, 'ERR_REGISTRY_RECORD_FAILED', false], [400, 'ERR_REGISTRY_REJECTED', false]] as const) {
        proxy.rules = [{ match: (r) => r.path.startsWith('/v1/agent/service/register'), status }];
        await assert.rejects(registry.register(record, AbortSignal.timeout(3000)), (err: unknown) => {
          assert.ok(err instanceof RegistryError);
          assert.equal(err.code, code, `${status}: ${err.message}`);
          assert.equal(err.status, status);
          assert.equal(err.overBudget, overBudget);
          return true;
        });
      }
    } finally {
      proxy.rules = [];
      registry.close();
    }
  });

  test('50 containers, one record answered 500: one resync, the record retried with backoff, logged once, registered when the agent accepts it', async () => {
    const { hostname, docker, bridge, logs } = setup('one500', 50);
    const badId = `${hostname}:c7:80`;
    proxy.rules = [{ match: (r) => r.path.startsWith('/v1/agent/service/register') && r.body.includes(`"${badId}"`), status: 500 }];
    await bridge.requestResync('startup');
    assert.equal((await ours(hostname)).length, 49);
    // Let the retry schedule run for a while: 100, 200, 400, 400 ... ms, never a full resync.
    const failuresAt = bridge.stats.recordFailures;
    await until('three retries of the failing record', () => bridge.stats.recordFailures >= failuresAt + 3, 5000);
    assert.equal(bridge.stats.resyncs, 1, 'no resync loop');
    assert.ok(docker.lists <= 1, `container lists: ${docker.lists}`);
    assert.ok(docker.inspects <= 50 + bridge.stats.recordFailures, `inspects: ${docker.inspects}`);
    assert.equal(bridge.stats.failingContainers, 1);
    const failedLines = logs.lines.filter((l) => l.event === 'record-failed');
    assert.equal(failedLines.length, 1, 'logged once while the failure stays the same');
    assert.equal(logs.lines.filter((l) => l.msg === 'registry unreachable; will re-register everything when it answers').length, 0, 'not taken for an outage');

    proxy.rules = [];
    await until('the failing record registered by its retry', () => bridge.stats.failingContainers === 0, 5000);
    assert.equal((await ours(hostname)).length, 50);
    assert.equal(bridge.stats.resyncs, 1);
    assert.equal(logs.lines.filter((l) => l.event === 'record-recovered').length, 1);
  });

  for (const status of [429, 403]) {
    test(`a ${status} is not permanent: the record is retried until the agent takes it`, async () => {
      const { hostname, bridge } = setup(`s${status}`, 3);
      const badId = `${hostname}:c1:80`;
      proxy.rules = [{ match: (r) => r.path.startsWith('/v1/agent/service/register') && r.body.includes(`"${badId}"`), status, close: status === 429 }];
      await bridge.requestResync('startup');
      await until('a retry', () => bridge.stats.recordFailures >= 2, 5000);
      assert.equal((await ours(hostname)).length, 2);
      proxy.rules = [];
      await until('registered after the agent relented', () => bridge.stats.failingContainers === 0, 5000);
      assert.deepEqual((await ours(hostname)).sort(), [`${hostname}:c0:80`, `${hostname}:c1:80`, `${hostname}:c2:80`]);
    });
  }

  test('the drift check sees a desired record missing because the agent failed it, and retries its container', async () => {
    // Retries far apart: only the drift check can bring the record in within the test.
    const { hostname, bridge } = setup('drift', 2, { recordRetry: { baseMs: 600_000, maxMs: 600_000 } });
    const badId = `${hostname}:c1:80`;
    proxy.rules = [{ match: (r) => r.path.startsWith('/v1/agent/service/register') && r.body.includes(`"${badId}"`), status: 403 }];
    await bridge.requestResync('startup');
    assert.deepEqual(await ours(hostname), [`${hostname}:c0:80`]);
    proxy.rules = [];
    await bridge.checkDrift();
    await until('the drift check registered the missing record', () => bridge.stats.failingContainers === 0, 5000);
    assert.deepEqual((await ours(hostname)).sort(), [`${hostname}:c0:80`, badId]);
    assert.equal(bridge.stats.resyncs, 1, 'a container sync, not a full resync');
  });
});
