// A registration the agent refuses for good (script checks disabled on a default agent: a 500 with
// agent.go's text; a validation 400) is one error line per container naming the check, the container and
// Consul's message, counted in metrics, and not sent again until the container or its record changes;
// the service is not registered at all (README: why), and other containers are unaffected.
// The real Consul backend; the refusal comes from a proxy in front of the double that answers as a
// default agent does (or a real agent with CONSUL_HTTP_ADDR); Docker is an in-memory fake.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Bridge } from '../../registrator/src/bridge.js';
import { RegistratorMetrics } from '../../registrator/src/metrics/registrator-metrics.js';
import { isFinalRegisterRefusal, refusedChecks } from '../../registrator/src/registry/agent-refusal.js';
import { ConsulRegistry } from '../../registrator/src/registry/consul-backend.js';
import type { ServiceRecord } from '../../registrator/src/mapping/types.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { startFaultProxy, type FaultProxy } from '../support/consul-fault-proxy.js';
import { FakeDocker } from '../support/registrator-fakes.js';
import { agentServices } from '../support/registrator-process.js';

// agent.go addCheck, source ConfigSourceRemote, EnableRemoteScriptChecks false (the default)
const SCRIPTS_DISABLED = "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";
const runTag = `rx${process.pid}x${Date.now().toString(36)}`;

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

test('which agent answers are final, and which checks they are about', () => {
  assert.equal(isFinalRegisterRefusal(500, SCRIPTS_DISABLED), true);
  assert.equal(isFinalRegisterRefusal(500, 'Check is not valid: Interval must be > 0'), true);
  assert.equal(isFinalRegisterRefusal(500, 'failed to persist service: disk full'), false, 'a 500 of the moment stays a failure for now');
  assert.equal(isFinalRegisterRefusal(503, SCRIPTS_DISABLED), false);
  const record: ServiceRecord = {
    id: 'h:web:80', name: 'web', address: '10.0.0.1', port: 80, tags: [], meta: {}, containerId: 'c', containerName: 'web', exposedPort: '80', protocol: 'tcp',
    checks: [{ kind: 'http', target: 'http://10.0.0.1:80/' }, { kind: 'script', target: 'true' }, { kind: 'docker', target: 'test -f /ok' }],
  };
  assert.deepEqual(refusedChecks(record, SCRIPTS_DISABLED).map((c) => c.id), ['service:h:web:80:2', 'service:h:web:80:3']);
  assert.deepEqual(refusedChecks(record, 'Invalid check: TTL must be > 0').map((c) => c.id), ['service:h:web:80:1', 'service:h:web:80:2', 'service:h:web:80:3'], 'Consul does not say which: all');
  assert.deepEqual(refusedChecks(record, 'Invalid Service Meta: Key contains invalid characters'), []);
});

describe('a registration the agent refuses', () => {
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

  function setup(hint: string) {
    const hostname = `${runTag}-${hint}`;
    const docker = new FakeDocker();
    const metrics = new RegistratorMetrics();
    const registry = metrics.wrap(new ConsulRegistry({ host: proxy.host, port: proxy.port, secure: false, instanceMarker: hostname, callTimeoutMs: 3000 }));
    const logs = logCapture();
    const bridge = new Bridge({
      docker: docker.asDocker(), registry, logger: logs.logger,
      mapping: { hostname, internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: hostname },
      deregister: 'always', cleanup: false, resyncSeconds: 0, driftCheckSeconds: 0,
      recordRetry: { baseMs: 50, maxMs: 100 },
    });
    metrics.setBridgeSource(() => ({ resyncs: bridge.stats.resyncs, refusals: bridge.stats.refusals, refusedServices: bridge.stats.refusedServices }));
    bridges.push(bridge);
    const ours = async () => Object.keys(await agentServices(consul.url)).filter((id) => id.startsWith(`${hostname}:`)).sort();
    const metric = (name: string, labels: Record<string, string> = {}) =>
      metrics.families().find((f) => f.name === name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    return { hostname, docker, bridge, logs, ours, metric };
  }

  test('script checks disabled: one error naming check, container and Consul\'s message; no retry; others registered; registered once the container changes', async () => {
    const { hostname, docker, bridge, logs, ours, metric } = setup('script');
    proxy.rules = [{ match: (r) => r.path.startsWith('/v1/agent/service/register') && r.body.includes('"Args"'), status: 500, body: SCRIPTS_DISABLED }];
    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`, 'SERVICE_CHECK_SCRIPT=curl -f localhost/health'] });
    docker.containers.set('c1', { running: true, env: [`SERVICE_NAME=${hostname}-web`] });
    docker.containers.set('c2', { running: true, env: [`SERVICE_NAME=${hostname}-api`, 'SERVICE_CHECK_TTL=30s'] });
    const id = `${hostname}:c0:80`;

    await bridge.requestResync('startup');
    assert.deepEqual(await ours(), [`${hostname}:c1:80`, `${hostname}:c2:80`], 'the other containers are registered; the refused one not at all');
    const refused = logs.lines.filter((l) => l.event === 'register-refused');
    assert.equal(refused.length, 1, 'one error line');
    assert.equal(refused[0].level, 50, 'an error');
    const msg = String(refused[0].msg);
    for (const needle of [`service:${id}`, 'script', 'curl -f localhost/health', 'c0', SCRIPTS_DISABLED]) assert.ok(msg.includes(needle), `the line names ${needle}: ${msg}`);
    assert.equal(refused[0].containerName, 'c0');
    assert.deepEqual((refused[0].services as Array<{ consul: string }>).map((s) => s.consul), [SCRIPTS_DISABLED], 'Consul\'s message, not "internal server error"');
    assert.equal(bridge.stats.failingContainers, 0, 'not a failure to retry');
    assert.equal(bridge.stats.refusedServices, 1);
    assert.equal(metric('registrator_registrations_refused_total'), 1);
    assert.equal(metric('registrator_refused_services'), 1);
    assert.equal(metric('registrator_consul_errors_total', { code: 'ERR_REGISTRY_REJECTED' }), 1);

    // Not sent again: resyncs, drift checks, syncs of the unchanged container, past the retry schedule.
    const faulted = proxy.counts.faulted;
    await bridge.requestResync('periodic');
    await bridge.checkDrift();
    await bridge.syncContainer('c0', 'docker-update');
    await new Promise((r) => setTimeout(r, 300)); // longer than the whole record-retry schedule (50-100 ms): nothing may come
    assert.equal(proxy.counts.faulted, faulted, 'the refused registration is not sent again');
    assert.equal(logs.lines.filter((l) => l.event === 'register-refused').length, 1, 'and not logged again');
    assert.equal(metric('registrator_registrations_refused_total'), 1);

    // The registration changes (the script check goes): registered, the refusal forgotten.
    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`, 'SERVICE_CHECK_HTTP=/health'] });
    await bridge.syncContainer('c0', 'docker-update');
    assert.deepEqual(await ours(), [id, `${hostname}:c1:80`, `${hostname}:c2:80`]);
    assert.equal(bridge.stats.refusedServices, 0);
    proxy.rules = [];
  });

  test('the agent itself (no proxy: the double refuses script checks as a default agent does): one error line with its text, no retry', async () => {
    const hostname = `${runTag}-direct`;
    const docker = new FakeDocker();
    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`, 'SERVICE_CHECK_CMD=/bin/check'] });
    docker.containers.set('c1', { running: true, env: [`SERVICE_NAME=${hostname}-web`] });
    const logs = logCapture();
    const registry = new ConsulRegistry({ host: consul.host, port: consul.port, secure: false, instanceMarker: hostname, callTimeoutMs: 3000 });
    const bridge = new Bridge({
      docker: docker.asDocker(), registry, logger: logs.logger,
      mapping: { hostname, internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: hostname },
      deregister: 'always', cleanup: false, resyncSeconds: 0, driftCheckSeconds: 0, recordRetry: { baseMs: 50, maxMs: 100 },
    });
    bridges.push(bridge);
    await bridge.requestResync('startup');
    await bridge.checkDrift();
    await new Promise((r) => setTimeout(r, 300)); // past the record-retry schedule: nothing may come
    const refused = logs.lines.filter((l) => l.event === 'register-refused');
    assert.equal(refused.length, 1);
    assert.ok(String(refused[0].msg).includes('Scripts are disabled on this agent from remote calls'), String(refused[0].msg));
    assert.ok(String(refused[0].msg).includes(`service:${hostname}:c0:80 (docker "/bin/check")`), String(refused[0].msg));
    assert.equal(bridge.stats.recordFailures, 0);
    assert.deepEqual(Object.keys(await agentServices(consul.url)).filter((id) => id.startsWith(`${hostname}:`)), [`${hostname}:c1:80`]);
  });

  test('a validation 400: same treatment; the container dying and coming back tries again', async () => {
    const { hostname, docker, bridge, logs, ours } = setup('v400');
    const reason = 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, or TCP checks';
    proxy.rules = [{ match: (r) => r.path.startsWith('/v1/agent/service/register') && r.body.includes(`"${hostname}:c0:80"`), status: 400, body: reason }];
    docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`, 'SERVICE_CHECK_TCP=true'] });
    docker.containers.set('c1', { running: true, env: [`SERVICE_NAME=${hostname}-web`] });
    await bridge.requestResync('startup');
    assert.deepEqual(await ours(), [`${hostname}:c1:80`]);
    const refused = logs.lines.filter((l) => l.event === 'register-refused');
    assert.equal(refused.length, 1);
    assert.ok(String(refused[0].msg).includes(reason) && String(refused[0].msg).includes(`service:${hostname}:c0:80`), String(refused[0].msg));
    const faulted = proxy.counts.faulted;
    await bridge.requestResync('periodic');
    assert.equal(proxy.counts.faulted, faulted);

    // die, start again (same record): one more try, one more line
    docker.containers.get('c0')!.running = false;
    await bridge.syncContainer('c0', 'docker-die');
    assert.equal(bridge.stats.refusedServices, 0, 'forgotten with its container');
    docker.containers.get('c0')!.running = true;
    await bridge.syncContainer('c0', 'docker-start');
    assert.equal(proxy.counts.faulted, faulted + 1);
    assert.equal(logs.lines.filter((l) => l.event === 'register-refused').length, 2);
    proxy.rules = [];
  });
});
