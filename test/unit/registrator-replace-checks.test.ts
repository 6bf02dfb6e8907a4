// Re-registration replaces the service's checks (?replace-existing-checks=true): a changed container that
// drops or renumbers a check (service:<id> -> service:<id>:1) leaves no old check on the agent, where a
// leftover TTL check would expire and hold the instance critical for good. The agent keeps old checks
// without the flag (agent.go addServiceInternal), as the double does; Docker is an in-memory fake.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Bridge } from '../../registrator/src/bridge.js';
import { ConsulRegistry } from '../../registrator/src/registry/consul-backend.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { FakeDocker } from '../support/registrator-fakes.js';
import { agentChecks } from '../support/registrator-process.js';

const runTag = `rc${process.pid}x${Date.now().toString(36)}`;

describe('re-registration replaces checks', () => {
  let consul: ConsulTarget;
  const bridges: Bridge[] = [];

  before(async () => {
    consul = await consulForTest();
  });

  after(async () => {
    await Promise.all(bridges.map((b) => b.stop(1000)));
    await cleanConsul(consul, `${runTag}-`).catch(() => undefined);
    await consul.close();
  });

  test('one check, then two (renumbered), then none: the agent holds exactly the current ones each time', async () => {
    const hostname = `${runTag}-h`;
    const docker = new FakeDocker();
    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`, 'SERVICE_CHECK_TTL=30s'] });
    const registry = new ConsulRegistry({ host: consul.host, port: consul.port, secure: false, instanceMarker: hostname, callTimeoutMs: 3000 });
    const bridge = new Bridge({
      docker: docker.asDocker(), registry, logger: pino({ level: 'silent' }),
      mapping: { hostname, internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: hostname },
      deregister: 'always', cleanup: false, resyncSeconds: 0, driftCheckSeconds: 0,
    });
    bridges.push(bridge);
    const id = `${hostname}:c0:80`;
    const checksOf = async () => Object.values(await agentChecks(consul.url)).filter((c) => c.ServiceID === id).map((c) => c.CheckID).sort();

    await bridge.requestResync('startup');
    assert.deepEqual(await checksOf(), [`service:${id}`]);

    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`, 'SERVICE_CHECK_TTL=30s', 'SERVICE_CHECK_1_TTL=40s'] });
    await bridge.syncContainer('c0', 'docker-update');
    assert.deepEqual(await checksOf(), [`service:${id}:1`, `service:${id}:2`], 'the single check service:<id> is gone');

    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`, 'SERVICE_CHECK_TTL=30s'] });
    await bridge.syncContainer('c0', 'docker-update');
    assert.deepEqual(await checksOf(), [`service:${id}`], 'back to one: both numbered checks are gone');

    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`] });
    await bridge.syncContainer('c0', 'docker-update');
    assert.deepEqual(await checksOf(), [], 'no check asked for, none left');
  });
});
