// Bridge behaviour against in-memory fakes of Docker and the registry: register/deregister by container
// state, -deregister on-success, outage recovery, drift detection, one container's work never concurrent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type Docker from 'dockerode';
import { pino } from 'pino';
import { Bridge, type BridgeOptions } from '../../registrator/src/bridge.js';
import type { ServiceRecord } from '../../registrator/src/mapping/types.js';
import { fingerprintOf, type RegisteredService } from '../../registrator/src/reconcile.js';
import { RegistryError, type Registry } from '../../registrator/src/registry/registry.js';

interface FakeContainer {
  /** inspect calls that fail (engine busy) before one succeeds */
  failInspects?: number;
  running: boolean;
  exitCode: number;
  env: string[];
}

function inspectInfo(id: string, c: FakeContainer) {
  return {
    Id: id,
    Name: `/${id}`,
    Config: { Image: 'web', Env: c.env, Labels: {}, ExposedPorts: { '80/tcp': {} }, Hostname: id },
    NetworkSettings: { Ports: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '32000' }] }, Networks: { bridge: { IPAddress: '172.17.0.2' } } },
    HostConfig: { NetworkMode: 'default' },
    State: { Running: c.running, Paused: false, ExitCode: c.exitCode },
  };
}

function fakeDocker(containers: Map<string, FakeContainer>, probe: { inFlight: Map<string, number>; maxPerContainer: number }) {
  return {
    getContainer: (id: string) => ({
      inspect: async () => {
        probe.inFlight.set(id, (probe.inFlight.get(id) ?? 0) + 1);
        probe.maxPerContainer = Math.max(probe.maxPerContainer, probe.inFlight.get(id)!);
        await new Promise((r) => setTimeout(r, 5));
        probe.inFlight.set(id, probe.inFlight.get(id)! - 1);
        const c = containers.get(id);
        if (!c) throw Object.assign(new Error('no such container'), { statusCode: 404 });
        if (c.failInspects) {
          c.failInspects -= 1;
          throw Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' });
        }
        return inspectInfo(id, c);
      },
    }),
    listContainers: async () => [...containers.entries()].filter(([, c]) => c.running).map(([Id]) => ({ Id })),
  } as unknown as Docker;
}

class FakeRegistry implements Registry {
  readonly services = new Map<string, ServiceRecord>();
  down = false;
  calls: string[] = [];
  private guard(what: string) {
    this.calls.push(what);
    if (this.down) throw new RegistryError('ERR_REGISTRY_UNAVAILABLE', `${what}: ECONNREFUSED`);
  }
  async ping() { this.guard('ping'); }
  async register(r: ServiceRecord) { this.guard(`register ${r.id}`); this.services.set(r.id, r); }
  async deregister(id: string) { this.guard(`deregister ${id}`); this.services.delete(id); }
  async listOurs(): Promise<RegisteredService[]> {
    this.guard('list');
    return [...this.services.values()].map((r) => ({ id: r.id, name: r.name, containerId: r.containerId, fingerprint: fingerprintOf(r) }));
  }
  async updateTtlCheck() { this.guard('ttl'); }
  async setMaintenance(id: string) { this.guard(`maintenance ${id}`); }
  close() {}
}

function setup(over: Partial<BridgeOptions> = {}) {
  const containers = new Map<string, FakeContainer>();
  const probe = { inFlight: new Map<string, number>(), maxPerContainer: 0 };
  const registry = new FakeRegistry();
  const bridge = new Bridge({
    docker: fakeDocker(containers, probe),
    registry,
    logger: pino({ level: 'silent' }),
    mapping: { hostname: 'h', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'h' },
    deregister: 'always',
    cleanup: false,
    resyncSeconds: 0,
    random: () => 0,
    ...over,
  });
  return { containers, probe, registry, bridge };
}

const web = (running = true, exitCode = 0): FakeContainer => ({ running, exitCode, env: ['SERVICE_NAME=web'] });

test('start registers, stop deregisters, with the service ID from host, container name and port', async () => {
  const { containers, registry, bridge } = setup();
  containers.set('c1', web());
  await bridge.syncContainer('c1', 'docker-start');
  assert.deepEqual([...registry.services.keys()], ['h:c1:80']);
  containers.set('c1', web(false));
  await bridge.syncContainer('c1', 'docker-die');
  assert.equal(registry.services.size, 0);
  await bridge.stop();
});

test('-deregister on-success keeps a failed container registered until it is removed', async () => {
  const { containers, registry, bridge } = setup({ deregister: 'on-success' });
  containers.set('c1', web());
  await bridge.syncContainer('c1', 'docker-start');
  containers.set('c1', web(false, 1));
  await bridge.syncContainer('c1', 'docker-die');
  assert.equal(registry.services.size, 1);
  containers.delete('c1');
  await bridge.syncContainer('c1', 'docker-destroy');
  assert.equal(registry.services.size, 0);
  await bridge.stop();
});

test('one container is never synced concurrently, whatever the burst of events', async () => {
  const { containers, probe, bridge } = setup();
  containers.set('c1', web());
  containers.set('c2', web());
  for (let i = 0; i < 20; i++) {
    bridge.onEvent({ containerId: 'c1', action: i % 2 ? 'start' : 'die' });
    bridge.onEvent({ containerId: 'c2', action: 'start' });
  }
  await bridge.syncContainer('c1', 'test');
  assert.equal(probe.maxPerContainer, 1);
  await bridge.stop();
});

test('registry outage: work fails, the registry is probed, and everything is re-registered when it answers', async () => {
  const { containers, registry, bridge } = setup();
  containers.set('c1', web());
  await bridge.requestResync('startup');
  registry.down = true;
  containers.set('c2', web());
  containers.delete('c1');
  await assert.rejects(bridge.syncContainer('c2', 'docker-start'));
  registry.services.clear(); // the agent came back without its state
  registry.down = false;
  const deadline = Date.now() + 3000;
  while (!registry.services.has('h:c2:80') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual([...registry.services.keys()], ['h:c2:80']);
  await bridge.stop();
});

test('drift: a registry that lost our services is noticed by the list comparison and repaired', async () => {
  const { containers, registry, bridge } = setup();
  containers.set('c1', web());
  await bridge.requestResync('startup');
  registry.services.clear();
  await bridge.checkDrift();
  assert.deepEqual([...registry.services.keys()], ['h:c1:80']);
  const calls = registry.calls.length;
  await bridge.checkDrift(); // nothing differs: one list call, no writes
  assert.deepEqual(registry.calls.slice(calls), ['list']);
  await bridge.stop();
});

test('a die event whose inspect fails (engine busy) is retried: the dead container is deregistered', async () => {
  const { containers, registry, bridge } = setup();
  containers.set('c1', web());
  await bridge.syncContainer('c1', 'docker-start');
  assert.deepEqual([...registry.services.keys()], ['h:c1:80']);
  containers.set('c1', { ...web(false), failInspects: 2 });
  bridge.onEvent({ containerId: 'c1', action: 'die' });
  const deadline = Date.now() + 5000;
  while (registry.services.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(registry.services.size, 0, 'deregistered after the inspect failures');
  await bridge.stop();
});

test('TTL refresh passes never overlap, however slow the registry answers', async () => {
  const { containers, registry, bridge } = setup({ mapping: { hostname: 'h', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'h', ttl: 2, ttlRefresh: 1 } });
  containers.set('c1', web());
  containers.set('c2', web());
  await bridge.requestResync('startup');
  let inFlight = 0;
  let maxInFlight = 0;
  let calls = 0;
  registry.updateTtlCheck = async () => {
    calls++;
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await new Promise((r) => setTimeout(r, 50));
    inFlight--;
  };
  const refresh = () => (bridge as unknown as { refreshTtlChecks(): Promise<void> }).refreshTtlChecks();
  await Promise.all([refresh(), refresh(), refresh()]);
  assert.equal(calls, 2, 'one pass: one refresh per service');
  assert.equal(maxInFlight, 1);
  await refresh();
  assert.equal(calls, 4, 'the next pass runs once the previous one ended');
  await bridge.stop();
});
