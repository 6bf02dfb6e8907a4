// Drain on stop: the `kill` event docker stop sends before `die` puts the container's services into
// maintenance; `die` deregisters. A flag turns it off; a signal that does not stop (HUP) drains nothing;
// a container that outlives its stop timeout leaves maintenance. The Consul side is checked against the
// double (or a real agent): maintenance is the critical check `_service_maintenance:<id>`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { Bridge, type BridgeOptions } from '../../registrator/src/bridge.js';
import { ConsulRegistry } from '../../registrator/src/registry/consul-backend.js';
import { cleanConsul, consulForTest } from '../support/consul.js';
import { FakeDocker, FakeRegistry, until } from '../support/registrator-fakes.js';
import { agentChecks } from '../support/registrator-process.js';

function setup(over: Partial<BridgeOptions> = {}) {
  const docker = new FakeDocker();
  const registry = new FakeRegistry();
  const bridge = new Bridge({
    docker: docker.asDocker(), registry, logger: pino({ level: 'silent' }),
    mapping: { hostname: 'h', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'h' },
    deregister: 'always', cleanup: false, resyncSeconds: 0, drainOnStop: true, random: () => 0,
    ...over,
  });
  return { docker, registry, bridge };
}

describe('drain on stop (bridge)', () => {
  test('kill (SIGTERM) puts the services into maintenance while the container runs; die deregisters', async () => {
    const { docker, registry, bridge } = setup();
    docker.containers.set('c1', { running: true, env: ['SERVICE_NAME=web'] });
    docker.containers.set('c2', { running: true, env: ['SERVICE_NAME=web'] });
    await bridge.requestResync('startup');
    bridge.onEvent({ containerId: 'c1', action: 'kill', signal: 15 });
    await until('maintenance', () => registry.maintenance.has('h:c1:80'));
    assert.match(registry.maintenance.get('h:c1:80')!, /stopping \(signal 15\)/);
    assert.ok(registry.services.has('h:c1:80'), 'still registered while it drains');
    assert.ok(!registry.maintenance.has('h:c2:80'), 'its neighbour is untouched');
    // A resync while it drains keeps it in maintenance and registers nothing again.
    const before = registry.calls.length;
    await bridge.requestResync('periodic');
    assert.deepEqual(registry.calls.slice(before).filter((c) => c.startsWith('register') || c.includes('false')), []);
    docker.containers.set('c1', { running: false, env: ['SERVICE_NAME=web'] });
    bridge.onEvent({ containerId: 'c1', action: 'die' });
    await until('deregistered on die', () => !registry.services.has('h:c1:80'));
    assert.equal(bridge.stats.drained, 1);
    await bridge.stop();
  });

  test('kill writes maintenance at once: not behind the container\'s inspect, every service of it together', async () => {
    const { docker, registry, bridge } = setup();
    docker.containers.set('c1', { running: true, env: ['SERVICE_NAME=web'], ports: ['80', '81', '82'] });
    await bridge.requestResync('startup');
    assert.equal(registry.services.size, 3);
    // the engine is slow to answer inspects (a busy machine): the drain must not wait for one
    let release!: () => void;
    docker.inspectGate = new Promise((r) => (release = r));
    registry.delayMs = 30;
    const inspectsBefore = docker.inspects;
    bridge.onEvent({ containerId: 'c1', action: 'kill', signal: 15, name: 'c1' });
    try {
      await until('all three in maintenance while the inspect hangs', () => registry.maintenance.size === 3, 5000);
      assert.equal(registry.maxInFlight, 3, 'the three maintenance writes went out together');
      assert.match(registry.maintenance.get('h:c1:80')!, /container c1 is stopping \(signal 15\)/);
    } finally {
      docker.inspectGate = undefined;
      release();
    }
    // the queued sync still runs (it inspects, holds the drain) and writes nothing again
    await until('the queued sync inspected', () => docker.inspects > inspectsBefore);
    await bridge.syncContainer('c1', 'test');
    assert.equal(registry.calls.filter((c) => c.startsWith('maintenance')).length, 3);
    assert.equal(bridge.stats.drained, 3);
    await bridge.stop();
  });

  test('kill while a sync of the container is running: maintenance at once, and once more after that sync', async () => {
    const { docker, registry, bridge } = setup();
    docker.containers.set('c1', { running: true, env: ['SERVICE_NAME=web'] });
    await bridge.requestResync('startup');
    let release!: () => void;
    docker.inspectGate = new Promise((r) => (release = r));
    const running = bridge.syncContainer('c1', 'docker-health_status');
    await until('that sync is in its inspect', () => docker.inspects >= 2);
    bridge.onEvent({ containerId: 'c1', action: 'kill', signal: 15 });
    try {
      await until('maintenance before the running sync ends', () => registry.maintenance.has('h:c1:80'), 5000);
    } finally {
      docker.inspectGate = undefined;
      release();
    }
    await running;
    // the running sync could have re-registered it (checks replaced): the queued one writes it again
    await until('written again by the queued sync', () => registry.calls.filter((c) => c === 'maintenance h:c1:80 true').length === 2);
    assert.equal(bridge.stats.drained, 1, 'one drain, counted and logged once');
    await bridge.stop();
  });

  test('-drain-on-stop=false: kill changes nothing, die deregisters', async () => {
    const { docker, registry, bridge } = setup({ drainOnStop: false });
    docker.containers.set('c1', { running: true, env: ['SERVICE_NAME=web'] });
    await bridge.requestResync('startup');
    bridge.onEvent({ containerId: 'c1', action: 'kill', signal: 15 });
    await bridge.syncContainer('c1', 'test');
    assert.equal(registry.maintenance.size, 0);
    assert.ok(!registry.calls.some((c) => c.startsWith('maintenance')));
    await bridge.stop();
  });

  test('a kill that does not stop (SIGHUP for a reload) drains nothing; the image stop signal counts', async () => {
    const { docker, registry, bridge } = setup();
    docker.containers.set('c1', { running: true, env: ['SERVICE_NAME=web'] });
    docker.containers.set('c2', { running: true, env: ['SERVICE_NAME=web'], stopSignal: 'SIGUSR1' });
    await bridge.requestResync('startup');
    bridge.onEvent({ containerId: 'c1', action: 'kill', signal: 1 });
    bridge.onEvent({ containerId: 'c2', action: 'kill', signal: 10 });
    await bridge.syncContainer('c1', 'test');
    await until('c2 drained by its own stop signal', () => registry.maintenance.has('h:c2:80'));
    assert.ok(!registry.maintenance.has('h:c1:80'));
    await bridge.stop();
  });

  test('a container that ignores its stop signal leaves maintenance after its stop timeout', async () => {
    let offset = 0;
    const { docker, registry, bridge } = setup({ now: () => Date.now() + offset });
    docker.containers.set('c1', { running: true, env: ['SERVICE_NAME=web'] });
    await bridge.requestResync('startup');
    bridge.onEvent({ containerId: 'c1', action: 'kill', signal: 15 });
    await until('maintenance', () => registry.maintenance.has('h:c1:80'));
    offset = 16_000; // past the default 10 s stop timeout and the 5 s margin
    await bridge.syncContainer('c1', 'periodic');
    assert.ok(!registry.maintenance.has('h:c1:80'), 'out of maintenance again');
    assert.ok(registry.services.has('h:c1:80'));
    await bridge.stop();
  });
});

describe('service maintenance in Consul', () => {
  test('enable adds the critical _service_maintenance check with the reason; disable removes it; unknown service 404', async () => {
    const consul = await consulForTest();
    const prefix = `cbtest-maint-${process.pid}-`;
    const registry = new ConsulRegistry({ host: consul.host, port: consul.port, secure: false, instanceMarker: `${prefix}h`, callTimeoutMs: 3000 });
    try {
      const record = { id: `${prefix}svc`, name: `${prefix}web`, address: '127.0.0.1', port: 8080, tags: [], meta: {}, checks: [{ kind: 'ttl' as const, ttl: '30s', initialStatus: 'passing' as const }], containerId: 'c', containerName: 'c', exposedPort: '80', protocol: 'tcp' as const };
      await registry.register(record, AbortSignal.timeout(3000));
      await registry.setMaintenance(record.id, true, 'draining: docker stop', AbortSignal.timeout(3000));
      const checks = await agentChecks(consul.url);
      const m = checks[`_service_maintenance:${record.id}`];
      assert.ok(m, JSON.stringify(Object.keys(checks)));
      assert.equal(m.Status, 'critical');
      assert.equal(m.Name, 'Service Maintenance Mode');
      assert.equal(m.Notes, 'draining: docker stop');
      assert.equal(m.ServiceID, record.id);
      assert.equal(m.Type, 'maintenance');
      const health = await (await fetch(`${consul.url}/v1/health/service/${record.name}?passing=1`)).json() as unknown[];
      assert.equal(health.length, 0, 'out of the passing set');
      await registry.setMaintenance(record.id, false, '', AbortSignal.timeout(3000));
      assert.equal((await agentChecks(consul.url))[`_service_maintenance:${record.id}`], undefined);
      const back = await (await fetch(`${consul.url}/v1/health/service/${record.name}?passing=1`)).json() as unknown[];
      assert.equal(back.length, 1);
      await assert.rejects(registry.setMaintenance(`${prefix}nope`, true, 'x', AbortSignal.timeout(3000)), (err: { status?: number }) => err.status === 404);
      const missing = await fetch(`${consul.url}/v1/agent/service/maintenance/${record.id}`, { method: 'PUT' });
      assert.equal(missing.status, 400);
      assert.match(await missing.text(), /Missing value for enable/);
    } finally {
      registry.close();
      await cleanConsul(consul, prefix).catch(() => undefined);
      await consul.close();
    }
  });
});
