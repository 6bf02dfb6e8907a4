// TLS passthrough by SNI (proto=tcp+sni) through one worker runtime: two `openssl s_server`
// backends with their own certificates behind one port, reached by name; the client verifies the
// backend's certificate (the balancer never terminates TLS). A ClientHello written in 7-byte pieces
// still routes; garbage, a hello without a name, an unknown name and a silent client are closed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { createWorkerRuntime } from '../../balancer/src/proxy/proxy-runtime.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { UpstreamSpec } from '../../balancer/src/routing/types.js';
import { makeTestCa } from '../support/tls-certs.js';
import { freePort } from '../support/free-port.js';
import { untilRetryingErrors } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

function sniUpstream(name: string, port: number, sni: string, serverPort: number): UpstreamSpec {
  return {
    name, algorithm: 'roundrobin', origin: 'admin', retry: DEFAULT_TABLE_DEFAULTS.retry, protocol: 'tcp+sni', listen: [{ port, sni }],
    servers: [{ id: `127.0.0.1:${serverPort}`, host: '127.0.0.1', port: serverPort, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false }],
  };
}

async function sServer(dir: string, label: string, cert: string, key: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  await writeFile(path.join(dir, `${label}.crt`), cert);
  await writeFile(path.join(dir, `${label}.key`), key);
  const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', path.join(dir, `${label}.crt`), '-key', path.join(dir, `${label}.key`), '-www', '-quiet'], { stdio: 'ignore' });
  await untilRetryingErrors(`s_server ${label}`, () => new Promise<boolean>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.once('error', reject);
  }), 10_000, 50);
  return { port, child };
}

/** A net socket whose writes go out in `piece`-byte chunks, one per tick (a hello split over many writes). */
function choppy(port: number, piece: number): Duplex {
  const s = net.connect(port, '127.0.0.1');
  const d = new Duplex({
    read() { s.resume(); },
    write(chunk: Buffer, _enc, cb) {
      let off = 0;
      const next = () => {
        if (off >= chunk.length) return cb();
        s.write(chunk.subarray(off, off + piece));
        off += piece;
        setImmediate(next);
      };
      next();
    },
    final(cb) { s.end(); cb(); },
    destroy(err, cb) { s.destroy(); cb(err); },
  });
  s.on('data', (b) => { if (!d.push(b)) s.pause(); });
  s.on('end', () => d.push(null));
  s.on('error', (e) => d.destroy(e));
  return d;
}

/** GET / over TLS with verification against `ca`: the peer's CN and the answer's first line. */
function httpsGet(opts: { port?: number; socket?: Duplex; servername: string; ca: string }): Promise<{ cn: string; line: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: opts.port, socket: opts.socket as net.Socket | undefined, servername: opts.servername, ca: opts.ca, rejectUnauthorized: true }, () => {
      s.write('GET / HTTP/1.0\r\n\r\n');
    });
    let text = '';
    s.setEncoding('utf8');
    s.setTimeout(10_000, () => { s.destroy(); reject(new Error('no answer in 10 s')); });
    s.on('data', (d: string) => { text += d; });
    s.on('error', reject);
    s.on('end', () => resolve({ cn: String(s.getPeerCertificate().subject?.CN), line: text.split('\r\n')[0] }));
  });
}

/** Raw bytes to the port: resolves with what came back once the balancer closed, and how long it took. */
function rawSend(port: number, bytes: Buffer | undefined): Promise<{ ms: number; got: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1', () => { if (bytes) s.write(bytes); });
    let got = 0;
    s.on('data', (d) => { got += d.length; });
    s.on('error', () => undefined);
    s.on('close', () => resolve({ ms: Date.now() - t0, got }));
    setTimeout(() => s.destroy(), 15_000).unref();
  });
}

/** A real ClientHello (captured from node's TLS client) for `servername`, or none when undefined. */
async function captureHello(servername: string | undefined): Promise<Buffer> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => srv.once('connection', (s) => s.once('data', (d: Buffer) => { resolve(d); s.destroy(); })));
  const c = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false });
  c.on('error', () => undefined);
  const hello = await got;
  c.destroy();
  srv.close();
  return hello;
}

test('two names on one port reach two services; the client verifies each backend\'s own certificate; split hello; bad hellos closed', async () => {
  const ca = await makeTestCa('sni');
  const children: ChildProcess[] = [];
  const tcp = await freePort();
  const rt = createWorkerRuntime({
    logger, accessLog: false, maxConnectionsPerServer: 8,
    timeouts: { connectMs: 1000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 1000 },
    l4: { tcpPorts: { from: tcp, to: tcp }, tcpHost: '127.0.0.1', idleMs: 60_000, drainMs: 1000, helloTimeoutMs: 700, proxyProtocolFrom: [] },
  });
  try {
    const a = await ca.issue(['alpha.test']);
    const b = await ca.issue(['beta.test']);
    const sa = await sServer(ca.dir, 'alpha', a.cert, a.key);
    const sb = await sServer(ca.dir, 'beta', b.cert, b.key);
    children.push(sa.child, sb.child);
    rt.applyTable(tableFromUpstreams({ alpha: sniUpstream('alpha', tcp, 'alpha.test', sa.port), beta: sniUpstream('beta', tcp, 'beta.test', sb.port) }, []));
    const first = await untilRetryingErrors('sni port open', () => httpsGet({ port: tcp, servername: 'alpha.test', ca: ca.cert }), 8000, 50);
    assert.deepEqual(first, { cn: 'alpha.test', line: 'HTTP/1.0 200 ok' });
    for (let i = 0; i < 3; i++) {
      assert.equal((await httpsGet({ port: tcp, servername: 'beta.test', ca: ca.cert })).cn, 'beta.test');
      assert.equal((await httpsGet({ port: tcp, servername: 'ALPHA.test', ca: ca.cert })).cn, 'alpha.test', 'names compare case-insensitively');
    }
    // the hello in 7-byte writes, one per tick: still routed, handshake and verification complete
    assert.deepEqual(await httpsGet({ socket: choppy(tcp, 7), servername: 'beta.test', ca: ca.cert }), { cn: 'beta.test', line: 'HTTP/1.0 200 ok' });

    // refused: closed with nothing sent back; garbage and wrong hellos at once, a silent client at the 700 ms bound
    const garbage = await rawSend(tcp, Buffer.from('GET / HTTP/1.1\r\nHost: alpha.test\r\n\r\n'));
    assert.equal(garbage.got, 0);
    assert.ok(garbage.ms < 700, `garbage closed at once (${garbage.ms} ms), before the hello bound`);
    const noName = await rawSend(tcp, await captureHello(undefined));
    assert.equal(noName.got, 0, 'a hello without a server name is closed');
    const unknown = await rawSend(tcp, await captureHello('gamma.test'));
    assert.equal(unknown.got, 0, 'a name with no route is closed');
    const hello = await captureHello('alpha.test');
    const truncated = await rawSend(tcp, hello.subarray(0, hello.length - 10));
    assert.equal(truncated.got, 0);
    assert.ok(truncated.ms >= 600, `an incomplete hello waits for the bound (${truncated.ms} ms) and is closed`);
    const silent = await rawSend(tcp, undefined);
    assert.ok(silent.ms >= 600 && silent.got === 0, `a silent client is closed at the hello bound (${silent.ms} ms)`);
  } finally {
    await rt.close();
    for (const c of children) c.kill('SIGKILL');
    await ca.close();
  }
});
