// TLS termination, end to end with two workers: certificates per SNI from a directory, Consul KV and
// the admin API (exact, wildcard, default, no SNI), TLS 1.0/1.1 refused, ALPN, shared session
// tickets, forwarding headers; hot swaps under keep-alive HTTPS load with no failed request, and with
// open HTTP/2 sessions (they keep their certificate and take new streams; new ones get the new one); bad
// input refused with the previous certificate kept and no key in any log line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary, type PrimaryHandle } from '../../balancer/src/cluster/primary.js';
import { parseBalancerArgs, type Config } from '../../balancer/src/config.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { makeTestCa, type Pem, type TestCa } from '../support/tls-certs.js';
import type { ClientHttp2Session } from 'node:http2';
import tls from 'node:tls';
import { h2connect, h2request } from '../support/http2-client.js';
import { handshake, httpsGet, LogSink, ticketChain, until } from '../support/tls-client.js';
import { engineEnv, ENGINES, type EngineName } from '../support/engines.js';

/** One balancer (two workers) per engine for all the tests below. */
function suite(engine: EngineName): void {
  const RUN = `tls${process.pid}${engine}`;
  const KV_PREFIX = `${RUN}/certs/`;
  const SERVICE = `${RUN}-web`;
  let consul: ConsulTarget;
  let ca: TestCa;
  let certDir: string;
  let dumpDir: string;
  let primary: PrimaryHandle;
  let tlsPort: number;
  let adminUrl: string;
  let backend: http.Server;
  const logs = new LogSink();
  const certs: Record<string, Pem> = {};

  function config(argv: string[]): Config {
    const c = parseBalancerArgs(argv, engineEnv(engine), { cores: 1 });
    if (c.kind !== 'config') throw new Error(`bad test config: ${JSON.stringify(c)}`);
    return c;
  }

  async function kvPut(key: string, value: string): Promise<void> {
    const res = await request(`${consul.url}/v1/kv/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(5000) });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, `PUT ${key}: ${text}`);
  }

  /** A file appears in the directory whole (written beside it under a dot name, then renamed). */
  async function dirWrite(name: string, content: string): Promise<void> {
    const tmp = path.join(certDir, `.${name}.tmp`);
    await writeFile(tmp, content);
    await rename(tmp, path.join(certDir, name));
  }

  function adminPut(name: string, body: unknown, contentType = 'application/json') {
    return request(`${adminUrl}/certs/${name}`, {
      method: 'PUT', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': contentType }, signal: AbortSignal.timeout(10_000),
    });
  }

  const fp = (p: Pem) => new X509Certificate(p.leaf).fingerprint256;


  /**
   * Waits for the first new handshake that shows this certificate, then checks that it stays: the
   * next handshakes (spread over both workers) all show it, so every worker took the swap. Returns
   * how long until the first one: a figure for stderr, not an assertion (it depends on how busy the
   * machine is); the deadline only bounds a swap that never comes.
   */
  async function seenEverywhere(servername: string, pem: Pem, deadlineMs = 20_000): Promise<number> {
    const t0 = Date.now();
    const want = fp(pem);
    await until(`${servername} served with the new certificate`, async () => (await handshake(tlsPort, servername)).fingerprint === want, deadlineMs, 5);
    const ms = Date.now() - t0;
    const after = await Promise.all(Array.from({ length: 8 }, () => handshake(tlsPort, servername)));
    assert.deepEqual(after.map((h) => h.fingerprint === want), after.map(() => true), `${servername}: every handshake after the first new one shows the new certificate`);
    return ms;
  }

  before(async () => {
    consul = await consulForTest();
    ca = await makeTestCa('int');
    const [a, wild, dflt, kv, adm] = await Promise.all([
      ca.issue(['a.example.test']), ca.issue(['*.wild.example.test']), ca.issue(['default.example.test']),
      ca.issue(['kv.example.test']), ca.issue(['admin.example.test']),
    ]);
    Object.assign(certs, { a, wild, dflt, kv, adm });
    certDir = await mkdtemp(path.join(os.tmpdir(), 'tls-dir-'));
    dumpDir = await mkdtemp(path.join(os.tmpdir(), 'tls-dump-'));
    // names come from the certificates, not from these file names
    await writeFile(path.join(certDir, 'one.pem'), a.cert);
    await writeFile(path.join(certDir, 'one.key'), a.key);
    await writeFile(path.join(certDir, 'star.pem'), wild.cert + wild.key);
    await writeFile(path.join(certDir, 'fallback.pem'), dflt.cert + dflt.key);
    await kvPut(`${KV_PREFIX}kv.example.test/cert`, kv.cert);
    await kvPut(`${KV_PREFIX}kv.example.test/key`, kv.key);

    backend = http.createServer((req, res) => {
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ proto: req.headers['x-forwarded-proto'], port: req.headers['x-forwarded-port'], host: req.headers.host }));
    });
    backend.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const res = await request(`${consul.url}/v1/agent/service/register`, {
      method: 'PUT', body: JSON.stringify({ ID: `${SERVICE}-1`, Name: SERVICE, Address: '127.0.0.1', Port: (backend.address() as AddressInfo).port }),
    });
    assert.equal(res.statusCode, 200, await res.body.text());

    // a second service: plain HTTP is redirected to HTTPS, HTTPS answers carry HSTS
    const res2 = await request(`${consul.url}/v1/agent/service/register`, {
      method: 'PUT', body: JSON.stringify({ ID: `${SERVICE}-secure`, Name: `${SERVICE}-secure`, Address: '127.0.0.1', Port: (backend.address() as AddressInfo).port,
        Tags: ['urlprefix-secure.example.test/', 'redirect-https', 'hsts=31536000'] }),
    });
    assert.equal(res2.statusCode, 200, await res2.body.text());
    // a fixed port: redirect Locations name it
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const fixedTlsPort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));

    const logger = pino({ level: 'info' }, logs);
    primary = await startPrimary(config([
      '--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--consul-wait', '2s',
      '--tls-listen', `127.0.0.1:${fixedTlsPort}`, '--tls-cert-dir', certDir, '--tls-kv-prefix', KV_PREFIX, '--tls-default-cert', 'default.example.test',
      '--client-keepalive-timeout', '30s', '--dump-file', path.join(dumpDir, 'dump.json'), '--log-level', 'info',
    ]), logger);
    assert.ok(primary.tls, 'TLS is on');
    tlsPort = primary.tls.addresses[0].port;
    adminUrl = `http://127.0.0.1:${primary.admin.port}`;
    const put = await adminPut('admin.example.test', { cert: adm.cert, key: adm.key });
    assert.equal(put.statusCode, 200, await put.body.text());
    await until('service routed', async () => (await httpsGet(tlsPort, 'a.example.test', SERVICE, false).catch(() => undefined))?.status === 200);
  });

  after(async () => {
    await primary?.stop();
    await cleanConsul(consul, `${SERVICE}-`).catch(() => undefined);
    await request(`${consul.url}/v1/kv/${RUN}/?recurse`, { method: 'DELETE' }).then((r) => r.body.text()).catch(() => undefined);
    await consul?.close();
    await new Promise((r) => backend?.close(r));
    await ca?.close();
    await rm(certDir, { recursive: true, force: true });
    await rm(dumpDir, { recursive: true, force: true });
  });

  test('certificate per SNI: exact, one-label wildcard, default for unknown names and for no SNI; every source', async () => {
    const table: [string | undefined, Pem][] = [
      ['a.example.test', certs.a], ['A.Example.Test', certs.a], ['x.wild.example.test', certs.wild],
      ['deep.x.wild.example.test', certs.dflt], ['wild.example.test', certs.dflt], ['unknown.test', certs.dflt],
      [undefined, certs.dflt], ['kv.example.test', certs.kv], ['admin.example.test', certs.adm],
    ];
    for (const [name, pem] of table) {
      const h = await handshake(tlsPort, name);
      assert.equal(h.fingerprint, fp(pem), `servername ${name ?? '(none)'}`);
      assert.equal(h.alpn, 'http/1.1');
    }
    // the admin API shows what serves a name, without any key
    const res = await request(`${adminUrl}/certs/x.wild.example.test`);
    const body = await res.body.text();
    assert.equal(res.statusCode, 200, body);
    assert.equal((JSON.parse(body) as { serving: { fingerprint: string } }).serving.fingerprint, fp(certs.wild));
    const list = await (await request(`${adminUrl}/certs`)).body.text();
    assert.ok(!/PRIVATE KEY/.test(body) && !/PRIVATE KEY/.test(list) && !list.includes('keyPem'), 'GET /certs never returns a key');
    assert.equal((JSON.parse(list) as { certificates: unknown[] }).certificates.length, 5);
  });

  test('TLS 1.0 and 1.1 are refused by the server; 1.2 and 1.3 negotiate; the admin copy is mode 0600', async () => {
    for (const v of ['TLSv1', 'TLSv1.1'] as const) {
      await assert.rejects(handshake(tlsPort, 'a.example.test', { minVersion: v, maxVersion: v, ciphers: 'DEFAULT@SECLEVEL=0' }),
        (err: Error & { code?: string }) => /ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION/.test(err.code ?? err.message), v);
    }
    assert.equal((await handshake(tlsPort, 'a.example.test', { maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    assert.equal((await handshake(tlsPort, 'a.example.test')).protocol, 'TLSv1.3');
    const st = await stat(path.join(dumpDir, 'dump.json.certs.json'));
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('HTTPS through the proxy: X-Forwarded-Proto https and X-Forwarded-Port; tickets resume on both workers', async () => {
    const r = await httpsGet(tlsPort, 'a.example.test', SERVICE, false);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { proto: 'https', port: String(tlsPort), host: SERVICE });
    for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await handshake(tlsPort, 'kv.example.test', { maxVersion: v });
      assert.ok(first.session, `${v}: a session ticket was issued`);
      // consecutive connections alternate between the two workers (round-robin accept)
      for (let i = 0; i < 4; i++) {
        const again = await handshake(tlsPort, 'kv.example.test', { maxVersion: v, session: first.session });
        assert.equal(again.reused, true, `${v} resumption ${i}`);
      }
    }
    // a client that uses each TLS 1.3 ticket once (browsers, wrk): every resumed handshake hands out the next
    const chain = await ticketChain([tlsPort], 'kv.example.test', 6, { maxVersion: 'TLSv1.3' }, SERVICE);
    assert.deepEqual(chain, chain.map(() => 'resumed+1'), 'TLS 1.3, the newest ticket each time, alternating workers: all resumed, one new ticket each');
  });

  test('hot swap under keep-alive HTTPS load through KV, the directory and the admin API: no failed request, new handshakes on every worker get the new certificate, open connections keep theirs', async () => {
    const names = ['kv.example.test', 'a.example.test', 'admin.example.test'];
    const agents = names.map((servername) => new https.Agent({ keepAlive: true, maxSockets: 2, servername, rejectUnauthorized: false } as https.AgentOptions));
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const perSocket = new Map<unknown, { fingerprints: Set<string>; requests: number; firstAt: number; lastAt: number }>();
    const loops = names.flatMap((name, i) => [0, 1].map(async () => {
      while (!stop) {
        try {
          const r = await httpsGet(tlsPort, name, SERVICE, agents[i]);
          if (r.status !== 200) failures.push(`${name}: status ${r.status}`);
          else ok++;
          const s = perSocket.get(r.socket) ?? { fingerprints: new Set<string>(), requests: 0, firstAt: Date.now(), lastAt: 0 };
          s.fingerprints.add(r.fingerprint);
          s.requests++;
          s.lastAt = Date.now();
          perSocket.set(r.socket, s);
        } catch (err) {
          failures.push(`${name}: ${(err as Error).message}`);
        }
      }
    }));
    try {
      await until('load running', () => ok > 50, 10_000);
      const swapAt = Date.now();
      const kv2 = await ca.issue(['kv.example.test']);
      await kvPut(`${KV_PREFIX}kv.example.test/key`, kv2.key);
      await kvPut(`${KV_PREFIX}kv.example.test/cert`, kv2.cert);
      const kvMs = await seenEverywhere('kv.example.test', kv2);
      const a2 = await ca.issue(['a.example.test']);
      await dirWrite('one.pem', a2.cert + a2.key);
      await rm(path.join(certDir, 'one.key'));
      const dirMs = await seenEverywhere('a.example.test', a2);
      const adm2 = await ca.issue(['admin.example.test']);
      const put = await adminPut('admin.example.test', { cert: adm2.cert, key: adm2.key });
      assert.equal(put.statusCode, 200, await put.body.text());
      const admMs = await seenEverywhere('admin.example.test', adm2);
      const before = ok;
      await until('load continues after the swaps', () => ok > before + 50, 10_000);
      stop = true;
      await Promise.all(loops);
      assert.deepEqual(failures, [], 'no failed request');
      process.stderr.write(`# certificate swap -> first new handshake showing it: kv ${kvMs} ms, dir ${dirMs} ms, admin ${admMs} ms\n`);
      // existing connections were not cut and kept the certificate they started with
      const survivors = [...perSocket.values()].filter((s) => s.firstAt < swapAt && s.lastAt > Date.now() - 2000);
      assert.ok(survivors.length >= 3, `connections opened before the swaps still serve (${survivors.length})`);
      for (const s of perSocket.values()) assert.equal(s.fingerprints.size, 1, 'a connection never changes its certificate');
    } finally {
      stop = true;
      await Promise.all(loops);
      for (const a of agents) a.destroy();
    }
  });

  test('hot swap with open HTTP/2 sessions: each keeps its certificate and takes new streams; new sessions negotiate h2 with the new certificate', async () => {
    const name = 'h2swap.example.test';
    const peer = (s: ClientHttp2Session) => (s.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
    const streams = (s: ClientHttp2Session, n: number) => Promise.all(Array.from({ length: n }, async () => {
      const r = await h2request(s, { ':path': '/', ':authority': SERVICE }, undefined, 5_000);
      assert.equal(r.status, 200, r.text);
      return (JSON.parse(r.text) as { proto: string }).proto;
    }));
    const connect = () => h2connect(`https://127.0.0.1:${tlsPort}`, { servername: name });
    const first = await ca.issue([name]);
    assert.equal((await adminPut(name, { cert: first.cert, key: first.key })).statusCode, 200);
    await seenEverywhere(name, first);
    // several sessions, spread over the two workers by the primary
    const open = await Promise.all(Array.from({ length: 4 }, connect));
    const sessions = [...open];
    try {
      for (const s of open) {
        assert.equal(s.alpnProtocol, 'h2');
        assert.equal(peer(s), fp(first));
        assert.deepEqual(await streams(s, 3), ['https', 'https', 'https']);
      }
      const goaways: number[] = [];
      for (const [i, s] of open.entries()) s.on('goaway', () => goaways.push(i));
      const second = await ca.issue([name]);
      assert.equal((await adminPut(name, { cert: second.cert, key: second.key })).statusCode, 200);
      await seenEverywhere(name, second);
      for (const [i, s] of open.entries()) {
        assert.ok(!s.closed && !s.destroyed, `session ${i} still open after the swap`);
        assert.deepEqual(await streams(s, 5), Array(5).fill('https'), `session ${i} takes new streams after the swap`);
        assert.equal(peer(s), fp(first), `session ${i} keeps the certificate it started with`);
      }
      assert.deepEqual(goaways, [], 'no GOAWAY to an open session');
      const fresh = await Promise.all(Array.from({ length: 4 }, connect));
      sessions.push(...fresh);
      for (const s of fresh) {
        assert.equal(s.alpnProtocol, 'h2', 'a new session negotiates h2');
        assert.equal(peer(s), fp(second), 'a new session gets the new certificate');
        assert.deepEqual(await streams(s, 2), ['https', 'https']);
      }
    } finally {
      for (const s of sessions) s.close();
    }
  });

  test('bad input is refused with a warning and the previous certificate kept: wrong key, expired, garbage, oversized (KV, directory, admin)', async () => {
    const kvNow = (await handshake(tlsPort, 'kv.example.test')).fingerprint;
    const dirNow = (await handshake(tlsPort, 'a.example.test')).fingerprint;
    const admNow = (await handshake(tlsPort, 'admin.example.test')).fingerprint;
    const other = await ca.issue(['kv.example.test', 'a.example.test', 'admin.example.test']);
    const expired = await ca.issue(['kv.example.test', 'a.example.test', 'admin.example.test'], { days: -1 });
    const stray = await ca.strayKey();
    const bad: [string, string, string][] = [
      ['ERR_CERT_KEY_MISMATCH', other.cert, stray],
      ['ERR_CERT_EXPIRED', expired.cert, expired.key],
      ['ERR_CERT_NO_CERTIFICATE', 'this is no PEM at all', other.key],
      ['ERR_CERT_TOO_LARGE', other.cert + '#'.repeat(300 * 1024), other.key],
    ];
    const warned = (fields: Record<string, unknown>) => until(`warning ${JSON.stringify(fields)}`, () => logs.find({ level: 40, ...fields }).length > 0, 5_000);
    for (const [code, cert, key] of bad) {
      // KV
      await kvPut(`${KV_PREFIX}kv.example.test/key`, key);
      await kvPut(`${KV_PREFIX}kv.example.test/cert`, cert);
      await warned({ name: 'kv.example.test', code });
      // directory: one combined file
      await dirWrite('one.pem', cert + key);
      await warned({ file: path.join(certDir, 'one.pem'), code });
      // admin: a 400 with the reason
      const res = await adminPut('admin.example.test', { cert, key });
      const body = JSON.parse(await res.body.text()) as { error: string };
      assert.equal(res.statusCode, 400);
      assert.equal(body.error, code);
      for (const [name, was] of [['kv.example.test', kvNow], ['a.example.test', dirNow], ['admin.example.test', admNow]] as const) {
        assert.equal((await handshake(tlsPort, name)).fingerprint, was, `${name} keeps its certificate after ${code}`);
      }
      logs.lines.length = 0;
    }
    // a 1 MB file in the directory and a 1 MB admin body
    await writeFile(path.join(certDir, 'huge.pem'), Buffer.alloc(1024 * 1024, 0x41));
    await warned({ file: path.join(certDir, 'huge.pem'), code: 'ERR_CERT_TOO_LARGE' });
    const huge = await adminPut('admin.example.test', 'A'.repeat(1024 * 1024 + 10), 'text/plain');
    assert.ok(huge.statusCode === 413 || huge.statusCode === 400, `1 MB admin body refused (${huge.statusCode})`);
    await huge.body.text();
    assert.equal((await handshake(tlsPort, 'admin.example.test')).fingerprint, admNow);
    assert.equal(primary.supervisor.metrics().restarts, 0, 'no worker crashed');
    // no key material in any line the primary logged during the whole file
    const all = logs.text();
    for (const k of [certs.a.key, certs.kv.key, certs.adm.key, stray, other.key]) {
      for (const line of k.split('\n').filter((l) => l && !l.startsWith('-----'))) assert.ok(!all.includes(line), 'a key line was logged');
    }
    assert.ok(!all.includes('PRIVATE KEY-----'), 'a PEM key was logged');
  });

  test('redirect-https sends plain HTTP to the HTTPS listener (308, target kept); hsts= adds Strict-Transport-Security on HTTPS only; ACME paths are not redirected', async () => {
    const plain = await request(`http://127.0.0.1:${primary.proxy.port}/cart?item=1`, { headers: { host: 'Secure.Example.Test:8080' }, signal: AbortSignal.timeout(5000) });
    await plain.body.text();
    assert.equal(plain.statusCode, 308);
    assert.equal(plain.headers.location, `https://secure.example.test:${tlsPort}/cart?item=1`);
    assert.equal(plain.headers['strict-transport-security'], undefined);
    const secure = await new Promise<http.IncomingMessage>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: tlsPort, path: '/cart', servername: 'a.example.test', rejectUnauthorized: false, headers: { host: 'secure.example.test' } }, (r) => { r.resume(); resolve(r); }).on('error', reject);
    });
    assert.equal(secure.statusCode, 200);
    assert.equal(secure.headers['strict-transport-security'], 'max-age=31536000');
    // services without the tags are untouched
    const other = await request(`http://127.0.0.1:${primary.proxy.port}/`, { headers: { host: SERVICE } });
    await other.body.text();
    assert.equal(other.statusCode, 200);
  });
}

for (const engine of ENGINES) describe(`TLS termination [${engine}]`, () => suite(engine));
