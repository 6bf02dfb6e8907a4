// `--consul-watch per-service` beyond dynamic mode: reload mode and `--render` follow Consul through the
// same per-service watcher (one blocking query per service over HTTP/2 to the double's HTTPS listener),
// and `--consul-ca <file>` is what the agent's certificate is verified against (CONSUL_CACERT of
// Consul's CLI): no NODE_EXTRA_CA_CERTS here, so the flag alone makes the TLS handshakes succeed, and a
// CA that did not sign the agent's certificate makes them fail. The double is the test's own
// (ownDouble): a shared real agent offers no HTTPS listener with a test CA. Writes go to the plain
// listener, as a client of ports.http would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnBalancer, type BalancerProcess } from '../support/balancer-process.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { consulPut } from '../support/consul-http.js';
import { freePort } from '../support/free-port.js';
import { getByHost } from '../support/host-get.js';
import { startNamedBackend } from '../support/http-backend.js';
import { untilRetryingErrors } from '../support/poll.js';
import { makeTestCa, type TestCa } from '../support/tls-certs.js';

interface TlsWorld {
  consul: ConsulTarget;
  ca: TestCa;
  httpsUrl: string;
}

async function tlsConsul(t: { after(fn: () => Promise<void>): void }): Promise<TlsWorld> {
  const ca = await makeTestCa('per-service-render');
  const pem = await ca.issue(['localhost'], { extraIps: ['127.0.0.1'] });
  const consul = await consulForTest({ ownDouble: true, tls: { cert: pem.cert, key: pem.key }, noise: { kvWritesPerSec: 10 } });
  t.after(async () => {
    await consul.close();
    await ca.close();
  });
  assert.ok(consul.double?.httpsUrl, 'the double has an HTTPS listener');
  return { consul, ca, httpsUrl: consul.double.httpsUrl };
}

async function register(consul: ConsulTarget, node: string, id: string, service: string, port: number): Promise<void> {
  await consulPut(consul, '/v1/catalog/register', {
    Node: node, Address: '127.0.0.1', Service: { ID: id, Service: service, Address: '127.0.0.1', Port: port },
    Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' },
  });
}

/** One instance out and another in (count unchanged), as two writes. */
async function move(consul: ConsulTarget, node: string, oldId: string, newId: string, service: string, port: number): Promise<void> {
  await consulPut(consul, '/v1/catalog/deregister', { Node: node, ServiceID: oldId });
  await register(consul, node, newId, service, port);
}

/** 4 requests, each on a connection of its own: every one answered by `name` */
async function allServedBy(port: number, host: string, name: string): Promise<boolean> {
  for (let i = 0; i < 4; i++) {
    const r = await getByHost(port, host, '/', 5000);
    if (r.status !== 200 || r.body !== name) return false;
  }
  return true;
}

function childEnv(): Record<string, string | undefined> {
  // the CA comes from --consul-ca alone
  return { NODE_EXTRA_CA_CERTS: undefined, BALANCER_MODE: undefined, CONSUL_CACERT: undefined };
}

test('reload mode with --consul-watch per-service and --consul-ca: a new service, then a count-preserving move, each served by a new generation', { timeout: 120_000 }, async (t) => {
  const { consul, ca, httpsUrl } = await tlsConsul(t);
  const scope = testScope();
  const web = scope.name('web');
  const node = scope.name('node');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'per-service-reload-'));
  const oldB = await startNamedBackend('old');
  const newB = await startNamedBackend('new');
  let balancer: BalancerProcess | undefined;
  t.after(async () => {
    await balancer?.stop(10_000);
    for (const b of [oldB, newB]) {
      b.server.closeAllConnections();
      await new Promise((r) => b.server.close(r));
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await register(consul, node, `${web}-old`, web, oldB.port);
  const port = await freePort();
  const configOut = path.join(dir, 'balancer.conf');
  balancer = spawnBalancer(['--mode', 'reload', '--consul', httpsUrl, '--consul-watch', 'per-service', '--consul-ca', ca.certPath,
    '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0', '--workers', '1', '--config-out', configOut, '--drain-timeout', '2s',
    '--consul-wait', '10s', '--log-level', 'info'], childEnv());
  await untilRetryingErrors('the old instance serving', () => allServedBy(port, web, 'old'), 60_000);

  const b = balancer;
  await move(consul, node, `${web}-old`, `${web}-new`, web, newB.port);
  await untilRetryingErrors('only the new instance serving', () => allServedBy(port, web, 'new'), 15_000, 20);
  const conf = readFileSync(configOut, 'utf8');
  assert.match(conf, new RegExp(`:${newB.port}\\b`));
  assert.doesNotMatch(conf, new RegExp(`:${oldB.port}\\b`));
  assert.ok(b.logs.some((l) => l.msg === 'reloaded: new generation serving, old one draining'), 'a new generation served the move');
  assert.deepEqual(b.logs.filter((l) => l.msg === 'render catalog watch started').map((l) => l.design), ['per-service'], 'the per-service watcher, not the index design, follows the catalog');
});

test('--render with --consul-watch per-service and --consul-ca: the file follows a count-preserving move', { timeout: 120_000 }, async (t) => {
  const { consul, ca, httpsUrl } = await tlsConsul(t);
  const scope = testScope();
  const web = scope.name('web');
  const node = scope.name('node');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'per-service-render-'));
  let balancer: BalancerProcess | undefined;
  t.after(async () => {
    await balancer?.stop(10_000);
    rmSync(dir, { recursive: true, force: true });
  });
  await register(consul, node, `${web}-a`, web, 17_001);
  const tpl = path.join(dir, 'upstreams.hbs');
  const out = path.join(dir, 'upstreams.txt');
  writeFileSync(tpl, `{{#each (service "${web}")}}server {{Address}}:{{Port}};\n{{/each}}{{#each (services)}}{{#if (eq Name "${web}")}}# {{Name}}\n{{/if}}{{/each}}`);
  balancer = spawnBalancer(['--consul', httpsUrl, '--consul-watch', 'per-service', '--consul-ca', ca.certPath, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--workers', '1', '--render', `${tpl}:${out}`, '--consul-wait', '10s', '--log-level', 'info'], childEnv());
  const rendered = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
  await untilRetryingErrors('the first render', async () => rendered() === `server 127.0.0.1:17001;\n# ${web}\n`, 60_000);
  await move(consul, node, `${web}-a`, `${web}-b`, web, 17_002);
  await untilRetryingErrors('the moved instance rendered', async () => rendered() === `server 127.0.0.1:17002;\n# ${web}\n`, 15_000, 20);
  assert.deepEqual(balancer.logs.filter((l) => l.msg === 'render catalog watch started').map((l) => l.design), ['per-service'], 'the per-service watcher follows the catalog');
});

test('--consul-ca: a CA that did not sign the agent\'s certificate fails the TLS handshake (verified, not trusted blindly); an unreadable file is a clear start error', { timeout: 120_000 }, async (t) => {
  const { consul, httpsUrl } = await tlsConsul(t);
  const other = await makeTestCa('not-the-agents');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'consul-ca-'));
  let balancer: BalancerProcess | undefined;
  t.after(async () => {
    await balancer?.stop(10_000);
    await other.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const scope = testScope();
  await register(consul, scope.name('node'), scope.id('web-a'), scope.name('web'), 17_010);
  for (const watch of ['index', 'per-service']) {
    balancer = spawnBalancer(['--consul', httpsUrl, '--consul-watch', watch, '--consul-ca', other.certPath, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
      '--workers', '1', '--consul-wait', '10s', '--log-level', 'info'], childEnv());
    const b = balancer;
    // the first Consul call fails on the certificate: the balancer says Consul is unreachable
    const line = await b.waitForLog((l) => /certificate|self.signed|unable to (get|verify)/i.test(JSON.stringify(l)), 30_000, `a certificate error (${watch})`);
    assert.ok(line, watch);
    assert.ok(!b.logs.some((l) => l.msg === 'consul reachable'), `${watch}: never reachable with the wrong CA`);
    await b.stop(10_000);
  }
  const missing = path.join(dir, 'nope.pem');
  const notPem = path.join(dir, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  for (const [file, why] of [[missing, /ENOENT/], [notPem, /no PEM certificate/]] as const) {
    balancer = spawnBalancer(['--consul', httpsUrl, '--consul-ca', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1'], childEnv());
    const code = await balancer.exited;
    assert.equal(code, 1);
    const out = [...balancer.rawOutput, ...balancer.logs.map((l) => JSON.stringify(l))].join('\n');
    assert.match(out, new RegExp(`--consul-ca ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: .*${why.source}`));
  }
});
