// The registrator program against the real Docker engine and the Consul double (or a real agent when
// CONSUL_HTTP_ADDR is set): registration fields, scaling, stop, -internal/-ip, -cleanup after a restart,
// a Consul outage, a broken Docker event stream and bad SERVICE_* values. Every wait is bounded polling.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { startDockerProxy } from '../support/docker-proxy.js';
import {
  cleanupRun, containerIp, createNetwork, docker, publishedPort, removeContainer, requireDocker, runContainer, runId, stopContainer, webImage,
} from '../support/docker.js';
import {
  agentChecks, servicesNamed, spawnRegistrator, waitFor, type AgentService, type RegistratorProcess,
} from '../support/registrator-process.js';

const WAIT_MS = 20_000;

// Each test has its own liveness bound (a hang names its test); the suite has none: on a busy CI machine
// the eleven together took more than the 180 s one suite-wide bound allowed, and the last was cancelled.
const TEST_BOUND = { timeout: 120_000 };

describe('registrator with Docker and Consul', () => {
  let consul: ConsulTarget;
  const running: RegistratorProcess[] = [];
  const hostPrefix = `h-${runId}`;

  function registrator(args: readonly string[]): RegistratorProcess {
    const p = spawnRegistrator([...args, `consul://${consul.addr}`]);
    running.push(p);
    return p;
  }

  /** Started and through its first resync, so later events are what the test observes. */
  async function readyRegistrator(args: readonly string[]): Promise<RegistratorProcess> {
    const p = registrator(args);
    await p.waitForLog((l) => l.event === 'resync', WAIT_MS, 'first resync');
    return p;
  }

  const serviceName = (hint: string) => `web-${runId}-${hint}`;

  /** Instances of name registered by the registrator with this -hostname (other tests' ones may linger). */
  async function instancesOf(name: string, hostname: string): Promise<AgentService[]> {
    return (await servicesNamed(consul.url, name)).filter((s) => s.ID.startsWith(`${hostname}:`));
  }

  async function waitForInstances(name: string, count: number, hostname: string, timeoutMs = WAIT_MS): Promise<AgentService[]> {
    return waitFor(`${count} instance(s) of ${name} from ${hostname}`, async () => {
      const list = await instancesOf(name, hostname);
      return list.length === count ? list : undefined;
    }, timeoutMs);
  }

  before(async () => {
    await requireDocker();
    await webImage();
    // runChecks: a real agent runs the HTTP checks it is given; the first test reads the URL from a run's output
    consul = await consulForTest({ runChecks: true });
  });

  after(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await cleanupRun();
    if (consul) {
      if (consul.real) await cleanConsul(consul, hostPrefix);
      await consul.close();
    }
  });

  test('a container with SERVICE_NAME and a published port is registered with ID, address, port, tags, Meta and check; scale to 3; stop one', TEST_BOUND, async () => {
    const hostname = `${hostPrefix}-basic`;
    const reg = await readyRegistrator(['-hostname', hostname]);
    const name = serviceName('basic');
    const env = { SERVICE_NAME: name, SERVICE_TAGS: 'blue,green\\,teal', SERVICE_VERSION: '1.2', SERVICE_CHECK_HTTP: '/', SERVICE_CHECK_INTERVAL: '5s' };
    const first = await runContainer({ publish: ['80'], env });
    const port = await publishedPort(first.id);

    const [svc] = await waitForInstances(name, 1, hostname);
    assert.equal(svc.ID, `${hostname}:${first.name}:80`);
    assert.equal(svc.Address, '127.0.0.1');
    assert.equal(svc.Port, port);
    assert.deepEqual(svc.Tags, ['blue', 'green,teal']);
    assert.equal(svc.Meta?.version, '1.2');
    assert.equal(svc.Meta?.['registrator-instance'], hostname);

    const checks = Object.values(await agentChecks(consul.url)).filter((c) => c.ServiceID === svc.ID);
    assert.equal(checks.length, 1, JSON.stringify(checks));
    assert.equal(checks[0].Type, 'http');
    // A real agent keeps no Definition for an agent-registered check (agent.go addServiceInternal: {}):
    // the URL it probes shows in the check's output once it has run ("HTTP GET <url>: 200 OK Output: ...").
    await waitFor('the HTTP check has run against the container', async () => {
      const c = Object.values(await agentChecks(consul.url)).find((x) => x.ServiceID === svc.ID);
      return typeof c?.Output === 'string' && c.Output.startsWith(`HTTP GET http://127.0.0.1:${port}/: `) ? c : undefined;
    }, WAIT_MS);

    const line = await reg.waitForLog((l) => l.event === 'register' && l.serviceId === svc.ID, WAIT_MS, 'register log line');
    assert.equal(line.reason, 'docker-start');

    // Scale to 3.
    const more = await Promise.all([runContainer({ publish: ['80'], env }), runContainer({ publish: ['80'], env })]);
    const three = await waitForInstances(name, 3, hostname);
    assert.deepEqual(three.map((s) => s.ID).sort(), [first, ...more].map((c) => `${hostname}:${c.name}:80`).sort());

    // Stop one: deregistered, the others stay.
    await stopContainer(more[0].id);
    const two = await waitForInstances(name, 2, hostname);
    assert.ok(!two.some((s) => s.ID.includes(more[0].name)));
    await reg.waitForLog((l) => l.event === 'deregister' && String(l.serviceId).includes(more[0].name), WAIT_MS, 'deregister log line');
    await reg.stop();
  });

  test('-internal registers the container IP and exposed port; -ip overrides the published address; per-container network/IP labels', TEST_BOUND, async () => {
    const internalHost = `${hostPrefix}-internal`;
    const ipHost = `${hostPrefix}-ip`;
    const regs = await Promise.all([
      readyRegistrator(['-hostname', internalHost, '-internal', '-explicit']),
      readyRegistrator(['-hostname', ipHost, '-ip', '10.11.12.13', '-explicit']),
    ]);
    const name = serviceName('variants');
    const c = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    const [ip, port] = await Promise.all([containerIp(c.id), publishedPort(c.id)]);
    const both = [...(await waitForInstances(name, 1, internalHost)), ...(await waitForInstances(name, 1, ipHost))];
    const internal = both.find((s) => s.ID.startsWith(`${internalHost}:`));
    const external = both.find((s) => s.ID.startsWith(`${ipHost}:`));
    assert.ok(internal && external, JSON.stringify(both));
    assert.equal(internal.Address, ip);
    assert.equal(internal.Port, 80);
    assert.equal(external.Address, '10.11.12.13');
    assert.equal(external.Port, port);

    // Per-container overrides: registrator.network picks the network for -internal, registrator.ip the address.
    const net = await createNetwork('alt');
    const overridden = serviceName('override');
    const onNet = await runContainer({ publish: ['80'], network: net, env: { SERVICE_NAME: overridden }, labels: { 'registrator.network': net } });
    const pinned = await runContainer({ publish: ['80'], env: { SERVICE_NAME: overridden }, labels: { 'registrator.ip': '10.20.30.40' } });
    const [netIp, pinnedPort] = await Promise.all([containerIp(onNet.id), publishedPort(pinned.id)]);
    const internalList = await waitForInstances(overridden, 2, internalHost);
    assert.equal(internalList.find((s) => s.ID.includes(onNet.name))?.Address, netIp);
    const ipList = await waitForInstances(overridden, 2, ipHost);
    const pinnedSvc = ipList.find((s) => s.ID.includes(pinned.name));
    assert.equal(pinnedSvc?.Address, '10.20.30.40');
    assert.equal(pinnedSvc?.Port, pinnedPort);
    await Promise.all(regs.map((r) => r.stop()));
  });

  test('restart with leftovers and -cleanup: services of removed containers go, live ones stay', TEST_BOUND, async () => {
    const hostname = `${hostPrefix}-cleanup`;
    const name = serviceName('cleanup');
    const first = await readyRegistrator(['-hostname', hostname, '-explicit']);
    const live = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    const doomed = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    await waitForInstances(name, 2, hostname);
    assert.equal(await first.stop(), 0, 'graceful exit on SIGTERM');
    // Shutdown deregisters nothing; the container disappears while no registrator watches.
    assert.equal((await instancesOf(name, hostname)).length, 2);
    await removeContainer(doomed.id);

    const second = await readyRegistrator(['-hostname', hostname, '-explicit', '-cleanup']);
    const [kept] = await waitForInstances(name, 1, hostname);
    assert.equal(kept.ID, `${hostname}:${live.name}:80`);
    await second.waitForLog((l) => l.event === 'deregister' && String(l.serviceId).includes(doomed.name), WAIT_MS, 'cleanup deregister line');
    await second.stop();
  });

  test('Consul unreachable for 10 s while containers start and stop: converges after it returns', TEST_BOUND, async () => {
    const hostname = `${hostPrefix}-outage`;
    const name = serviceName('outage');
    const reg = await readyRegistrator(['-hostname', hostname, '-explicit']);
    const before = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    await waitForInstances(name, 1, hostname);

    await consul.outage();
    const outageStarted = Date.now();
    const during = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    await stopContainer(before.id);
    await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - outageStarted))));
    await consul.restore();

    await waitFor('only the container started during the outage registered', async () => {
      const list = await instancesOf(name, hostname);
      return list.length === 1 && list[0].ID === `${hostname}:${during.name}:80` ? list : undefined;
    }, WAIT_MS);
    await reg.waitForLog((l) => l.event === 'registry-recovered', WAIT_MS, 'recovery log line');
    assert.equal(reg.child.exitCode, null, 'registrator kept running');
    await reg.stop();
  });

  test('Docker event stream broken mid-run: reconnects, resyncs and converges', TEST_BOUND, async () => {
    const hostname = `${hostPrefix}-docker`;
    const name = serviceName('dockercut');
    const proxy = await startDockerProxy();
    try {
      const reg = await readyRegistrator(['-hostname', hostname, '-explicit', '-docker-host', proxy.dockerHost]);
      const old = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
      await waitForInstances(name, 1, hostname);

      await proxy.outage();
      await stopContainer(old.id);
      const fresh = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
      await new Promise((r) => setTimeout(r, 2000));
      await proxy.restore();

      await waitFor('the state after the cut', async () => {
        const list = await instancesOf(name, hostname);
        return list.length === 1 && list[0].ID === `${hostname}:${fresh.name}:80` ? list : undefined;
      }, WAIT_MS);
      await reg.waitForLog((l) => l.event === 'resync' && l.reason === 'docker-reconnect', WAIT_MS, 'resync after reconnect');
      await reg.stop();
    } finally {
      await proxy.close();
    }
  });

  test('bad SERVICE_* values: a warning naming container and key, good services still registered', TEST_BOUND, async () => {
    const hostname = `${hostPrefix}-bad`;
    const good = serviceName('good');
    const alsoGood = serviceName('alsogood');
    const reg = await readyRegistrator(['-hostname', hostname, '-explicit']);
    const mixed = await runContainer({
      publish: ['80', '8080'],
      env: {
        PORTS: '80 8080',
        SERVICE_80_NAME: good,
        SERVICE_80_CHECK_HTTP: '/',
        SERVICE_80_CHECK_INTERVAL: 'banana',
        SERVICE_8080_NAME: alsoGood,
      },
    });
    const neighbour = await runContainer({ publish: ['80'], env: { SERVICE_NAME: good } });
    const warning = await reg.waitForLog((l) => l.event === 'mapping-warning' && l.containerName === mixed.name, WAIT_MS, 'mapping warning');
    assert.equal(warning.key, 'SERVICE_80_CHECK_INTERVAL');
    assert.equal(warning.level, 40);
    const goods = await waitForInstances(good, 2, hostname);
    assert.ok(goods.some((s) => s.ID === `${hostname}:${mixed.name}:80`));
    assert.ok(goods.some((s) => s.ID === `${hostname}:${neighbour.name}:80`));
    await waitForInstances(alsoGood, 1, hostname);
    // The bad check is skipped, the service itself is not.
    const checks = Object.values(await agentChecks(consul.url)).filter((c) => c.ServiceID === `${hostname}:${mixed.name}:80`);
    assert.equal(checks.length, 0);
    assert.equal(reg.child.exitCode, null);
    await reg.stop();
  });

  test('-ttl/-ttl-refresh: the TTL check is kept passing past its TTL by the registrator', TEST_BOUND, async () => {
    const hostname = `${hostPrefix}-ttl`;
    const name = serviceName('ttl');
    const reg = await readyRegistrator(['-hostname', hostname, '-explicit', '-ttl', '3', '-ttl-refresh', '1']);
    const c = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    const [svc] = await waitForInstances(name, 1, hostname);
    assert.equal(svc.ID, `${hostname}:${c.name}:80`);
    await new Promise((r) => setTimeout(r, 4500)); // longer than the TTL: only refreshes keep it passing
    const ttl = Object.values(await agentChecks(consul.url)).filter((ch) => ch.ServiceID === svc.ID && ch.Type === 'ttl');
    assert.equal(ttl.length, 1, JSON.stringify(ttl));
    assert.equal(ttl[0].Status, 'passing');
    // Without the registrator the TTL lapses: proof that the refresh, not the initial status, kept it green.
    await reg.stop();
    await waitFor('TTL check critical after the registrator stopped', async () => {
      const ch = (await agentChecks(consul.url))[ttl[0].CheckID];
      return ch?.Status === 'critical' ? ch : undefined;
    }, 8000);
  });

  test('health gate: register-when-healthy waits for Docker health; mirror follows it in a TTL check', TEST_BOUND, async () => {
    const gatedHost = `${hostPrefix}-gated`;
    const mirrorHost = `${hostPrefix}-mirror`;
    const name = serviceName('health');
    const regs = await Promise.all([
      readyRegistrator(['-hostname', gatedHost, '-explicit', '-health-gate', 'register-when-healthy']),
      readyRegistrator(['-hostname', mirrorHost, '-explicit', '-health-gate', 'mirror']),
    ]);
    const c = await runContainer({
      publish: ['80'],
      env: { SERVICE_NAME: name },
      extraArgs: ['--health-cmd', '/bin/busybox test -f /tmp/healthy', '--health-interval', '1s', '--health-retries', '1'],
    });
    const [mirrored] = await waitForInstances(name, 1, mirrorHost);
    const mirrorCheck = async () => Object.values(await agentChecks(consul.url)).find((ch) => ch.ServiceID === mirrored.ID && ch.Type === 'ttl');
    assert.equal((await mirrorCheck())?.Status, 'critical', 'not healthy yet');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await instancesOf(name, gatedHost)).length, 0, 'gated: not registered before healthy');

    await docker(['exec', c.id, '/bin/busybox', 'touch', '/tmp/healthy']);
    await waitForInstances(name, 1, gatedHost);
    await waitFor('mirrored check passing', async () => ((await mirrorCheck())?.Status === 'passing' ? true : undefined), WAIT_MS);

    await docker(['exec', c.id, '/bin/busybox', 'rm', '/tmp/healthy']);
    await waitForInstances(name, 0, gatedHost);
    await waitFor('mirrored check critical again', async () => ((await mirrorCheck())?.Status === 'critical' ? true : undefined), WAIT_MS);
    await Promise.all(regs.map((r) => r.stop()));
  });

  test('-cleanup after a host rename: leftovers found through the engine ID, live service moves to the new ID', TEST_BOUND, async () => {
    const oldHost = `${hostPrefix}-old`;
    const newHost = `${hostPrefix}-new`;
    const name = serviceName('rename');
    const first = await readyRegistrator(['-hostname', oldHost, '-explicit']);
    const live = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    const doomed = await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    await waitForInstances(name, 2, oldHost);
    await first.stop();
    await removeContainer(doomed.id);

    const second = await readyRegistrator(['-hostname', newHost, '-explicit', '-cleanup']);
    await waitForInstances(name, 0, oldHost);
    const [moved] = await waitForInstances(name, 1, newHost);
    assert.equal(moved.ID, `${newHost}:${live.name}:80`);
    await second.stop();
  });

  test('-retry-attempts: waits for Consul at start-up, or exits 1 when the attempts run out', TEST_BOUND, async () => {
    const hostname = `${hostPrefix}-retry`;
    const name = serviceName('retry');
    await runContainer({ publish: ['80'], env: { SERVICE_NAME: name } });
    await consul.outage();
    try {
      const giveUp = registrator(['-hostname', `${hostname}-x`, '-retry-attempts', '1', '-retry-interval', '100']);
      assert.equal(await giveUp.exited, 1);
      assert.ok(giveUp.logs.some((l) => l.level === 60), 'a fatal line says why');
      const patient = registrator(['-hostname', hostname, '-explicit', '-retry-attempts', '-1', '-retry-interval', '200']);
      await patient.waitForLog((l) => l.msg === 'registry not reachable', WAIT_MS, 'a failed attempt');
      await consul.restore();
      await waitForInstances(name, 1, hostname);
      await patient.stop();
    } finally {
      await consul.restore();
    }
  });

  test('bad flags and URIs exit 2 with a message; --help exits 0', TEST_BOUND, async () => {
    const bad = spawnRegistrator(['-deregister', 'sometimes', 'consul://127.0.0.1:1']);
    assert.equal(await bad.exited, 2);
    assert.match(bad.rawOutput.join('\n'), /deregister/);
    const badUri = spawnRegistrator(['etcd://x:1']);
    assert.equal(await badUri.exited, 2);
    const help = spawnRegistrator(['--help']);
    assert.equal(await help.exited, 0);
    assert.match(help.rawOutput.join('\n'), /-retry-attempts/);
  });
});
