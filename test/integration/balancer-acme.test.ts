// ACME against Pebble (Let's Encrypt's test CA, started here on loopback, validating HTTP-01 for
// real through a DNS responder this test runs): two balancer processes and one Consul. Each name is
// ordered once and both instances serve the same certificate; a forced renewal replaces it under
// keep-alive HTTPS load without a failed request; an instance killed in the middle of an order
// leaves a lock that is free again at its expiry, and the other instance finishes the name. The
// workers' challenge lookups go through their primary (IPC): no worker connects to Consul.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { spawnBalancer, type BalancerProcess } from '../support/balancer-process.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { startDnsResponder, type DnsResponder } from '../support/dns-responder.js';
import { sampleConnectionsTo } from '../support/process-sockets.js';
import { makeTestCa, type TestCa } from '../support/tls-certs.js';
import { handshake, httpsGet, until } from '../support/tls-client.js';

const RUN = `acme${process.pid}`;
const N1 = 'one.acme.test';
const N2 = 'two.acme.test';
const N3 = 'late.acme.test';
const LOCK_TTL_MS = 3_000;

let consul: ConsulTarget;
let ca: TestCa;
let work: string;
let pebble: ChildProcess;
let dns: DnsResponder;
let backend: http.Server;
let httpPort: number;
/** where the DNS responder sends every name (an instance's plain listener) */
let dnsTarget = '127.0.0.2';
/** while set, lookups of N3 wait for it */
let holdN3: Promise<void> | undefined;
let releaseN3: () => void = () => undefined;

interface Instance {
  readonly name: 'A' | 'B';
  readonly ip: string;
  readonly tlsPort: number;
  readonly adminPort: number;
  proc: BalancerProcess;
}
const instances: Instance[] = [];

async function freePort(hosts: string[] = ['127.0.0.1']): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = net.createServer();
    await new Promise<void>((r) => first.listen(0, hosts[0], r));
    const port = (first.address() as AddressInfo).port;
    const others: net.Server[] = [];
    let ok = true;
    for (const h of hosts.slice(1)) {
      const s = net.createServer();
      ok = await new Promise<boolean>((r) => { s.once('error', () => r(false)); s.listen(port, h, () => r(true)); });
      others.push(s);
      if (!ok) break;
    }
    await Promise.all([first, ...others].map((s) => new Promise((r) => s.close(r))));
    if (ok) return port;
  }
  throw new Error('no free port');
}

const issued = (name: string) => instances.flatMap((i) => i.proc.logs.filter((l) => l.msg === 'ACME certificate issued' && l.name === name));

function startInstance(name: 'A' | 'B', ip: string, tlsPort: number, adminPort: number, pebbleUrl: string): Instance {
  const proc = spawnBalancer([
    '--consul', consul.addr, '--consul-wait', '2s', '--workers', '1', '--log-level', 'info',
    '--listen', `${ip}:${httpPort}`, '--admin', `127.0.0.1:${adminPort}`, '--tls-listen', `127.0.0.1:${tlsPort}`,
    '--tls-kv-prefix', `${RUN}/certs/`, '--acme-kv-prefix', `${RUN}/acme/`, '--acme-directory', pebbleUrl, '--acme-email', 'ops@acme.test',
    '--acme-check-interval', '300ms', '--acme-lock-ttl', `${LOCK_TTL_MS}ms`, '--acme-retry', '500ms', '--client-keepalive-timeout', '30s',
  ], { NODE_EXTRA_CA_CERTS: ca.certPath });
  return { name, ip, tlsPort, adminPort, proc };
}

async function register(id: string, tags: string[]): Promise<void> {
  const res = await request(`${consul.url}/v1/agent/service/register`, {
    method: 'PUT', body: JSON.stringify({ ID: id, Name: id, Address: '127.0.0.1', Port: (backend.address() as AddressInfo).port, Tags: tags }),
  });
  assert.equal(res.statusCode, 200, await res.body.text());
}

async function servedBy(inst: Instance, name: string): Promise<{ fingerprint: string; issuer: string } | undefined> {
  const h = await handshake(inst.tlsPort, name).catch(() => undefined);
  if (!h) return undefined;
  return { fingerprint: h.fingerprint, issuer: h.issuer };
}

before(async () => {
  consul = await consulForTest();
  ca = await makeTestCa('pebble');
  work = await mkdtemp(path.join(os.tmpdir(), 'acme-'));
  const pebbleCert = await ca.issue(['localhost'], { extraIps: ['127.0.0.1'] });
  await writeFile(path.join(work, 'pebble.pem'), pebbleCert.cert);
  await writeFile(path.join(work, 'pebble.key'), pebbleCert.key);
  dns = await startDnsResponder(async (name) => {
    if (name === N3 && holdN3) await holdN3;
    return name.endsWith('.acme.test') ? dnsTarget : undefined;
  });
  // the instances' plain listeners share one port on two loopback addresses: Pebble dials that port
  httpPort = await freePort(['127.0.0.1', '127.0.0.2']);
  const [listenPort, mgmtPort] = [await freePort(), await freePort()];
  await writeFile(path.join(work, 'pebble.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${listenPort}`, managementListenAddress: `127.0.0.1:${mgmtPort}`,
      certificate: path.join(work, 'pebble.pem'), privateKey: path.join(work, 'pebble.key'),
      httpPort, tlsPort: await freePort(), ocspResponderURL: '', externalAccountBindingRequired: false,
    },
  }));
  pebble = spawn('/usr/bin/pebble', ['-config', path.join(work, 'pebble.json'), '-dnsserver', `127.0.0.1:${dns.port}`], {
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pebbleUrl = `https://127.0.0.1:${listenPort}/dir`;
  await until('pebble answers', async () => {
    const res = await new Promise<number>((resolve) => {
      https.get(pebbleUrl, { ca: ca.cert, timeout: 1000 }, (r) => { r.resume(); resolve(r.statusCode ?? 0); }).on('error', () => resolve(0));
    });
    return res === 200;
  }, 15_000, 100);

  backend = http.createServer((req, res) => { req.resume(); res.end(`hello ${req.headers.host}`); });
  backend.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  await register(`${RUN}-site`, ['tls=acme', `urlprefix-${N1}/`, `host=${N2}`, `urlprefix-${N2}/`]);

  const [ta, tb, aa, ab] = [await freePort(), await freePort(), await freePort(), await freePort()];
  instances.push(startInstance('A', '127.0.0.1', ta, aa, pebbleUrl), startInstance('B', '127.0.0.2', tb, ab, pebbleUrl));
  // a liveness bound: under a competing CPU load a balancer printed its first line only after ~20 s
  // (balancer-stop-bounded); the error carries the instance's last log lines, the cause either way
  await Promise.all(instances.map((i) => i.proc.waitForLog((l) => l.msg === 'balancer started', 90_000, `${i.name} started`)));
});

after(async () => {
  await Promise.all(instances.map((i) => i.proc.stop()));
  pebble?.kill('SIGTERM');
  await cleanConsul(consul, `${RUN}-`).catch(() => undefined);
  await request(`${consul.url}/v1/kv/${RUN}/?recurse`, { method: 'DELETE' }).then((r) => r.body.text()).catch(() => undefined);
  await consul?.close();
  await dns?.close();
  await new Promise((r) => backend?.close(r));
  await ca?.close();
  await rm(work, { recursive: true, force: true });
});

const workerPids = () => [...new Set(instances.flatMap((i) => i.proc.logs.filter((l) => l.role === 'worker' && typeof l.pid === 'number').map((l) => l.pid as number)))];
const primaryPids = () => instances.map((i) => i.proc.child.pid).filter((p): p is number => p !== undefined);

test('two names issued by Pebble with one order each; both instances serve the same certificate', async () => {
  // the workers ask their primary for challenge tokens: no worker holds a connection to Consul
  const fromWorkers = sampleConnectionsTo(workerPids, consul.port);
  const fromPrimaries = sampleConnectionsTo(primaryPids, consul.port, 100);
  for (const name of [N1, N2]) {
    const [a, b] = await until(`${name} served by both instances`, async () => {
      const both = await Promise.all(instances.map((i) => servedBy(i, name)));
      return both.every((s) => s && /Pebble/i.test(s.issuer)) && both[0]!.fingerprint === both[1]!.fingerprint ? both : undefined;
    }, 30_000, 100);
    assert.equal(a!.fingerprint, b!.fingerprint);
    assert.equal(issued(name).length, 1, `${name}: exactly one order between the two instances`);
  }
  // the plain listener of B answered every challenge (DNS points there), whichever instance ordered
  assert.ok(instances[1].proc.logs.some((l) => l.msg === 'ACME HTTP-01 challenge answered'));
  const w = await fromWorkers.stop();
  const p = await fromPrimaries.stop();
  assert.ok(workerPids().length >= 2 && p.max > 0, `the sampler sees the primaries' Consul connections (max ${p.max}) and knows the workers (${workerPids().join(',')})`);
  assert.equal(w.max, 0, `workers held connections to Consul (${w.samples} samples)`);
  const r = await httpsGet(instances[0].tlsPort, N1, N1, false);
  assert.equal(r.status, 200);
  assert.equal(r.body, `hello ${N1}`);
});

test('a forced renewal replaces the certificate on both instances under keep-alive HTTPS load, no failed request', async () => {
  const old = (await servedBy(instances[0], N1))!.fingerprint;
  const agents = instances.map(() => new https.Agent({ keepAlive: true, maxSockets: 2, servername: N1, rejectUnauthorized: false } as https.AgentOptions));
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const loops = instances.flatMap((inst, i) => [0, 1].map(async () => {
    while (!stop) {
      try {
        const res = await httpsGet(inst.tlsPort, N1, N1, agents[i]);
        if (res.status === 200) ok++;
        else failures.push(`${inst.name}: ${res.status}`);
      } catch (err) {
        failures.push(`${inst.name}: ${(err as Error).message}`);
      }
    }
  }));
  try {
    await until('load running', () => ok > 20, 10_000);
    const res = await request(`http://127.0.0.1:${instances[0].adminPort}/certs/${N1}/renew`, { method: 'POST' });
    assert.equal(res.statusCode, 202, await res.body.text());
    await until('both instances serve the renewed certificate', async () => {
      const both = await Promise.all(instances.map((i) => servedBy(i, N1)));
      return both.every((s) => s && s.fingerprint !== old && s.fingerprint === both[0]!.fingerprint);
    }, 30_000, 50);
    const seen = ok;
    await until('load continues', () => ok > seen + 20, 10_000);
  } finally {
    stop = true;
    await Promise.all(loops);
    for (const a of agents) a.destroy();
  }
  assert.deepEqual(failures, []);
  assert.equal(issued(N1).length, 2, 'one more order for the renewal');
});

test('an instance killed in the middle of an order leaves no lock beyond its expiry; the other finishes the name', async () => {
  holdN3 = new Promise<void>((r) => (releaseN3 = r));
  await register(`${RUN}-late`, ['tls=acme', `host=${N3}`]);
  const lockKey = `${RUN}/acme/locks/${N3}`;
  const readLock = async (): Promise<{ holder: string; expiresAt: number } | undefined> => {
    const res = await request(`${consul.url}/v1/kv/${lockKey}?raw`);
    const text = await res.body.text();
    return res.statusCode === 200 ? JSON.parse(text) as { holder: string; expiresAt: number } : undefined;
  };
  const lock = await until('an instance holds the order lock', readLock, 20_000, 10);
  // the order is stuck in validation: Pebble's lookup of N3 waits for us
  await until('Pebble is validating', () => dns.queries.some((q) => q.startsWith(`${N3}/`)), 10_000, 10);
  const pid = Number(lock.holder.split(':')[1]);
  const victim = instances.find((i) => i.proc.child.pid === pid);
  assert.ok(victim, `lock holder ${lock.holder} is one of ours`);
  const survivor = instances.find((i) => i !== victim)!;
  victim.proc.child.kill('SIGKILL');
  await victim.proc.exited;
  dnsTarget = survivor.ip;
  releaseN3();
  holdN3 = undefined;
  // the dead holder's lock stays until its expiry, and not a moment longer than the next check after it
  const takenAt = await until('the lock changes hands', async () => {
    const l = await readLock();
    return l?.holder !== lock.holder ? Date.now() : undefined;
  }, LOCK_TTL_MS + 10_000, 20);
  assert.ok(takenAt >= lock.expiresAt - 50, `not taken before its expiry (${takenAt - lock.expiresAt} ms)`);
  assert.ok(takenAt <= lock.expiresAt + 3_000, `free again soon after its expiry (${takenAt - lock.expiresAt} ms)`);
  const served = await until(`${N3} served by the survivor`, async () => {
    const s = await servedBy(survivor, N3);
    return s && /Pebble/i.test(s.issuer) ? s : undefined;
  }, 20_000, 100);
  assert.ok(served);
  await until('the lock is released after the order', async () => (await readLock()) === undefined, 5_000, 20);
  assert.ok(survivor.proc.logs.some((l) => l.msg === 'ACME certificate issued' && l.name === N3));
});
