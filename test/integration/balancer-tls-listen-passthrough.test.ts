// TLS passthrough on a --tls-listen port: the real primary and a worker, the Consul double (or a real
// agent). One port serves both: a name with our certificate is terminated (HTTP answered, ALPN h2
// offered as before), a proto=tcp+sni name with no certificate of ours goes untouched to an
// `openssl s_server` backend whose own certificate the client verifies, a hello without SNI is
// terminated with the default certificate, and a malformed hello is closed with nothing sent back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulRequest } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { until, untilRetryingErrors } from '../support/poll.js';
import { makeTestCa } from '../support/tls-certs.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

interface Answer {
  readonly cn: string;
  readonly alpn: string | false;
  readonly text: string;
}

/** GET / over TLS verifying against `ca`; `servername` undefined sends no SNI. */
function tlsGet(port: number, servername: string | undefined, ca: string, host: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), ca, rejectUnauthorized: true, ALPNProtocols: ['h2', 'http/1.1'],
      // without SNI node would check the certificate against 127.0.0.1: check it names `host` instead
      checkServerIdentity: (_h, cert) => tls.checkServerIdentity(host, cert) }, () => {
      s.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
    });
    let text = '';
    s.setEncoding('utf8');
    s.setTimeout(10_000, () => { s.destroy(); reject(new Error('no answer in 10 s')); });
    s.on('data', (d: string) => { text += d; });
    s.on('error', reject);
    s.on('secureConnect', () => {
      // h2 chosen: the engine speaks HTTP/2 there; the handshake and the certificate are what we check
      if (s.alpnProtocol === 'h2') {
        const cn = String(s.getPeerCertificate().subject?.CN);
        s.destroy();
        resolve({ cn, alpn: 'h2', text: '' });
      }
    });
    s.on('end', () => resolve({ cn: String(s.getPeerCertificate().subject?.CN), alpn: s.alpnProtocol ?? false, text }));
  });
}

function rawSend(port: number, bytes: Buffer): Promise<{ got: number; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let got = 0;
    s.on('data', (d) => { got += d.length; });
    s.on('error', () => undefined);
    s.on('close', () => resolve({ got, ms: Date.now() - t0 }));
    setTimeout(() => s.destroy(), 15_000).unref();
  });
}

test('--tls-listen: our names terminate (h2 ALPN unchanged), tcp+sni names without our certificate pass through, no SNI terminates with the default, garbage closed', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const ca = await makeTestCa('tlspass');
  const certDir = await mkdtemp(path.join(os.tmpdir(), 'tls-pass-'));
  const children: ChildProcess[] = [];
  const backend = http.createServer((req, res) => res.end(`web via ${req.headers['x-forwarded-proto']}`));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    const ours = await ca.issue(['ours.test']);
    const theirs = await ca.issue(['pass.test']);
    await writeFile(path.join(certDir, 'ours.pem'), ours.cert + ours.key);
    await writeFile(path.join(ca.dir, 'pass.crt'), theirs.cert);
    await writeFile(path.join(ca.dir, 'pass.key'), theirs.key);
    const sPort = await freePort();
    const sServer = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${sPort}`, '-cert', path.join(ca.dir, 'pass.crt'), '-key', path.join(ca.dir, 'pass.key'), '-www', '-quiet'], { stdio: 'ignore' });
    children.push(sServer);
    const tlsPort = await freePort();
    const web = scope.name('web');
    const register = (id: string, name: string, port: number, tags: string[]) =>
      consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id(id), Name: name, Address: '127.0.0.1', Port: port, Tags: tags });
    assert.equal(await register('web', web, (backend.address() as AddressInfo).port, ['urlprefix-ours.test/']), 200);
    assert.equal(await register('pass', scope.name('pass'), sPort, ['proto=tcp+sni', `urlprefix-pass.test:${tlsPort}`]), 200);
    // a passthrough route for a name we hold a certificate for: ours wins, it is terminated
    assert.equal(await register('shadow', scope.name('shadow'), sPort, ['proto=tcp+sni', `urlprefix-ours.test:${tlsPort}`]), 200);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--consul-wait', '2s', '--log-level', 'warn', '--tls-listen', `127.0.0.1:${tlsPort}`, '--tls-cert-dir', certDir, '--tls-kv-prefix', scope.kv('certs/'),
      '--tls-default-cert', 'ours.test', '--tcp-ports', `${tlsPort}-${tlsPort}`, '--tcp-hello-timeout', '800ms']), logger);

    const passed = await untilRetryingErrors('pass.test passed through', async () => {
      const a = await tlsGet(tlsPort, 'pass.test', ca.cert, 'pass.test');
      return a.cn === 'pass.test' ? a : undefined;
    }, 15_000, 100);
    assert.match(passed.text.split('\r\n')[0], /^HTTP\/1\.0 200 ok/, 'openssl s_server answered: TLS ended at the backend');
    assert.equal(passed.alpn, false, 's_server -www offers no ALPN: the hello reached it untouched');

    const terminated = await untilRetryingErrors('ours.test terminated', async () => {
      const a = await tlsGet(tlsPort, 'ours.test', ca.cert, 'ours.test');
      return a.cn === 'ours.test' ? a : undefined;
    }, 10_000, 100);
    assert.equal(terminated.alpn, 'h2', 'our listener still offers h2 first');
    // HTTP/1.1 over the same port and name: answered by the HTTP backend
    const h1 = await new Promise<Answer>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'ours.test', ca: ca.cert, ALPNProtocols: ['http/1.1'] }, () => s.write('GET / HTTP/1.0\r\nHost: ours.test\r\n\r\n'));
      let text = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => { text += d; });
      s.on('error', reject);
      s.on('end', () => resolve({ cn: String(s.getPeerCertificate().subject?.CN), alpn: s.alpnProtocol ?? false, text }));
    });
    assert.equal(h1.cn, 'ours.test');
    assert.match(h1.text, /^HTTP\/1\.1 200/);
    assert.match(h1.text, /web via https$/);

    const noSni = await tlsGet(tlsPort, undefined, ca.cert, 'ours.test');
    assert.equal(noSni.cn, 'ours.test', 'no SNI: terminated with the default certificate');

    const garbage = await rawSend(tlsPort, Buffer.from('GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n'));
    assert.equal(garbage.got, 0, 'a malformed hello is closed with nothing sent back');
    assert.ok(garbage.ms < 800, `closed at once (${garbage.ms} ms), not at the hello bound`);
    const badRecord = await rawSend(tlsPort, Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0]));
    assert.equal(badRecord.got, 0, 'a handshake record that is not a ClientHello is closed');
    const silent = await rawSend(tlsPort, Buffer.from([0x16, 0x03, 0x01]));
    assert.ok(silent.got === 0 && silent.ms >= 700, `an unfinished hello is closed at --tcp-hello-timeout (${silent.ms} ms)`);
  } finally {
    await primary?.stop();
    for (const c of children) c.kill('SIGKILL');
    backend.close();
    await scope.clean(consul);
    await consul.close();
    await ca.close();
    await rm(certDir, { recursive: true, force: true });
  }
});

test('--tls-listen port claimed by a plain proto=tcp service: refused with a warning, TLS terminates there as before, the TCP backend never sees a connection', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const ca = await makeTestCa('tlsplain');
  const certDir = await mkdtemp(path.join(os.tmpdir(), 'tls-plain-'));
  const backend = http.createServer((req, res) => res.end(`web via ${req.headers['x-forwarded-proto']}`));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  let tcpConnections = 0;
  const tcpBackend = net.createServer((s) => { tcpConnections++; s.destroy(); });
  await new Promise<void>((r) => tcpBackend.listen(0, '127.0.0.1', r));
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    const ours = await ca.issue(['ours.test']);
    await writeFile(path.join(certDir, 'ours.pem'), ours.cert + ours.key);
    const tlsPort = await freePort();
    const plain = scope.name('plain');
    const register = (id: string, name: string, port: number, tags: string[]) =>
      consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id(id), Name: name, Address: '127.0.0.1', Port: port, Tags: tags });
    assert.equal(await register('web', scope.name('web'), (backend.address() as AddressInfo).port, ['urlprefix-ours.test/']), 200);
    assert.equal(await register('plain', plain, (tcpBackend.address() as AddressInfo).port, ['proto=tcp', `urlprefix-:${tlsPort}`]), 200);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--consul-wait', '2s', '--log-level', 'warn', '--tls-listen', `127.0.0.1:${tlsPort}`, '--tls-cert-dir', certDir, '--tls-kv-prefix', scope.kv('certs/'),
      '--tls-default-cert', 'ours.test', '--tcp-ports', `${tlsPort}-${tlsPort}`]), logger);
    await until('the plain service in the table', () => primary!.holder.current().upstreams[plain] !== undefined, 10_000);
    assert.deepEqual(primary.holder.current().upstreams[plain].listen, [], 'the TLS port is not the TCP service\'s');
    const warning = `service ${plain}: proto=tcp port ${tlsPort} is a --tls-listen port, not served (TLS terminates there; only proto=tcp+sni names are passed through)`;
    assert.ok(primary.holder.warnings().includes(warning), JSON.stringify(primary.holder.warnings()));
    const a = await untilRetryingErrors('TLS terminated', async () => {
      const r = await tlsGet(tlsPort, 'ours.test', ca.cert, 'ours.test');
      return r.cn === 'ours.test' ? r : undefined;
    }, 15_000, 100);
    assert.equal(a.alpn, 'h2', 'our listener, h2 offered first');
    const h1 = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tlsPort, servername: 'ours.test', ca: ca.cert, ALPNProtocols: ['http/1.1'] }, () => s.write('GET / HTTP/1.0\r\nHost: ours.test\r\n\r\n'));
      let text = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => { text += d; });
      s.on('error', reject);
      s.on('end', () => resolve(text));
    });
    assert.match(h1, /^HTTP\/1\.1 200[\s\S]*web via https$/);
    // raw bytes that are not TLS are not relayed to the TCP service either
    await rawSend(tlsPort, Buffer.from('PING\r\n'));
    assert.equal(tcpConnections, 0, 'the proto=tcp backend was never connected');
  } finally {
    await primary?.stop();
    await scope.clean(consul);
    backend.close();
    tcpBackend.close();
    await ca.close();
    await rm(certDir, { recursive: true, force: true });
    await consul.close();
  }
});
