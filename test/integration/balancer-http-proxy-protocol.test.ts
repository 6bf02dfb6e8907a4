// PROXY protocol on the HTTP side, both engines, through one worker runtime. Client side
// (--proxy-protocol-from 127.0.0.1): a v1/v2 header from the trusted peer names the client for
// X-Forwarded-For, the access rules and hash by client IP, over HTTP/1.1 and h2c; the trusted peer
// without a header, a malformed header, and a header from an untrusted peer (127.0.0.2) are closed
// without an answer; the untrusted peer's plain requests are its own. Upstream side
// (proxy_protocol=v1): a backend that parses the header sees the carried client, and its
// connections are bound to one client connection (keep-alive reuse inside it, never across).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http2 from 'node:http2';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { decodeProxyHeader, encodeV1, encodeV2 } from '../../balancer/src/l4/proxy-protocol.js';
import { startBackend, startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { bodyOf, statusOf } from '../support/raw-http-answer.js';
import tls from 'node:tls';
import pino from 'pino';
import { Writable } from 'node:stream';
import { certSnapshotOf, fullDelta } from '../../balancer/src/tls/cert-snapshot.js';
import { validateCertificate } from '../../balancer/src/tls/certificate.js';
import { DEFAULT_TLS_CIPHERS } from '../../balancer/src/tls/tls-settings.js';
import { WorkerTls } from '../../balancer/src/tls/worker-tls.js';
import { proxyProtocolGate } from '../../balancer/src/proxy/proxy-protocol-accept.js';
import { makeTestCa } from '../support/tls-certs.js';

const L4 = { tcpHost: '127.0.0.1', idleMs: 60_000, drainMs: 1000, proxyProtocolFrom: ['127.0.0.1/32'] };
const v1 = (source: string, port = 40001) => encodeV1({ source, sourcePort: port, destination: '127.0.0.1', destinationPort: 80 });

/** Raw bytes on one new connection from `from`; what came back before the close ('' = closed without a byte). */
function raw(port: number, from: string, bytes: Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from }, () => { for (const b of bytes) s.write(b); });
    let text = '';
    s.setEncoding('latin1');
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no close within 5 s; got ${JSON.stringify(text)}`)); });
    s.on('data', (d: string) => { text += d; });
    s.on('error', () => undefined);
    s.on('close', () => resolve(text));
  });
}

const get = (host: string, path: string, close = true) => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`);

/** A backend speaking HTTP/1.1 behind a PROXY header: each answer is "<source>:<port>#<connection number>". */
function headerReadingBackend(): Promise<{ server: net.Server; port: number; sources: string[] }> {
  let conns = 0;
  const sources: string[] = [];
  const server = net.createServer((s) => {
    const n = ++conns;
    let buf = Buffer.alloc(0);
    let source: string | undefined;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (source === undefined) {
        const v = decodeProxyHeader(buf);
        if (v.state === 'need-more') return;
        if (v.state === 'bad') { s.destroy(); return; }
        source = v.header.kind === 'proxy' ? `${v.header.addresses.source}:${v.header.addresses.sourcePort}` : 'local';
        sources.push(source);
        buf = buf.subarray(v.length);
      }
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        buf = buf.subarray(end + 4);
        const body = `${source}#${n}`;
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, port: (server.address() as net.AddressInfo).port, sources })));
}

/** Two keep-alive requests on one connection from the trusted peer (the second after the first answer), after a v1 header naming `client`. */
function twoRequests(port: number, client: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' }, () => { s.write(v1(client, 5000)); s.write(get('pp', '/', false)); });
    let text = '';
    let sent = 1;
    s.setEncoding('latin1');
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no answers within 5 s; got ${JSON.stringify(text)}`)); });
    s.on('data', (d: string) => {
      text += d;
      const answers = text.split('HTTP/1.1 ').slice(1).filter((a) => /#\d+$/.test(a));
      if (answers.length === 1 && sent === 1) { sent = 2; s.write(get('pp', '/')); }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(text.split('HTTP/1.1 ').slice(1).map(bodyOf)));
  });
}

for (const engine of ENGINES) describe(`PROXY protocol on HTTP listeners [${engine}]`, () => {
  test('client side: carried address for XFF, deny= and hash by IP; missing, malformed, untrusted closed', async () => {
    const [a, b] = await Promise.all([startBackend('a'), startBackend('b')]);
    let proxy: RunningProxy | undefined;
    try {
      proxy = await startProxy({ ...engineOptions(engine), l4: L4, http2: { h2c: true } });
      proxy.runtime.applyTable(tableFromUpstreams({
        web: upstreamSpec('web', [a.spec()], { policy: { access: { deny: ['203.0.113.66/32'] } } }),
        sticky: upstreamSpec('sticky', [a.spec(), b.spec()], { algorithm: 'chash', hashKey: { source: 'ip' } }),
      }, []));
      const port = proxy.port;
      const xff = async (header: Buffer) => {
        const text = await raw(port, '127.0.0.1', [header, get('web', '/headers')]);
        assert.equal(statusOf(text), 200, text);
        return (JSON.parse(bodyOf(text)) as Record<string, string>)['x-forwarded-for'];
      };
      assert.equal(await xff(v1('203.0.113.7')), '203.0.113.7', 'v1: X-Forwarded-For is the carried client');
      assert.equal(await xff(encodeV2({ source: '2001:db8::9', sourcePort: 5, destination: '::1', destinationPort: 80 })), '2001:db8::9', 'v2 IPv6');
      assert.equal(await xff(Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x20, 0, 0, 0])])), '127.0.0.1', 'v2 LOCAL: the connection\'s own address');
      // the header in pieces still counts
      const split = v1('203.0.113.8');
      assert.equal(JSON.parse(bodyOf(await raw(port, '127.0.0.1', [split.subarray(0, 7), split.subarray(7), get('web', '/headers')])))['x-forwarded-for'], '203.0.113.8');
      assert.equal(statusOf(await raw(port, '127.0.0.1', [v1('203.0.113.66'), get('web', '/')])), 403, 'deny= judges the carried address');
      assert.equal(await raw(port, '127.0.0.1', [get('web', '/')]), '', 'the trusted peer must open with a header');
      assert.equal(await raw(port, '127.0.0.1', [Buffer.from('PROXY TCP4 nonsense\r\n'), get('web', '/')]), '', 'malformed: closed');
      assert.equal(await raw(port, '127.0.0.2', [v1('203.0.113.9'), get('web', '/')]), '', 'a header from an untrusted peer: closed, no answer');
      const own = await raw(port, '127.0.0.2', [get('web', '/headers')]);
      assert.equal(JSON.parse(bodyOf(own))['x-forwarded-for'], '127.0.0.2', 'an untrusted peer is its own client');
      // hash by client IP follows the carried address: 24 clients spread over both servers, each always on one
      const seen = new Map<string, Set<string>>();
      for (let i = 0; i < 24; i++) {
        for (let k = 0; k < 2; k++) {
          const client = `198.51.100.${i + 1}`;
          const text = await raw(port, '127.0.0.1', [v1(client, 6000 + k), get('sticky', '/')]);
          const set = seen.get(client) ?? new Set<string>();
          set.add(bodyOf(text));
          seen.set(client, set);
        }
      }
      assert.ok([...seen.values()].every((s) => s.size === 1), 'one client address, one server');
      assert.deepEqual(new Set([...seen.values()].flatMap((s) => [...s])), new Set(['a', 'b']), 'different carried addresses reach both servers');
      // h2c prior knowledge after the header: the PROXY header comes first, then the preface
      const session = http2.connect(`http://127.0.0.1:${port}`, {
        createConnection: () => {
          const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' });
          s.write(v1('203.0.113.20'));
          return s;
        },
      });
      try {
        const h2Text = await new Promise<string>((resolve, reject) => {
          const req = session.request({ ':path': '/headers', ':authority': 'web' });
          let body = '';
          req.setEncoding('utf8');
          req.on('data', (d: string) => { body += d; });
          req.on('end', () => resolve(body));
          req.on('error', reject);
          req.end();
        });
        assert.equal(JSON.parse(h2Text)['x-forwarded-for'], '203.0.113.20', 'h2c: the carried client');
      } finally {
        session.destroy();
      }
    } finally {
      await proxy?.runtime.close();
      await Promise.all([a.kill(), b.kill()]);
    }
  });

  test('the access log names the carried client', async () => {
    const a = await startBackend('a');
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
    let proxy: RunningProxy | undefined;
    try {
      proxy = await startProxy({ ...engineOptions(engine), l4: L4, logger: pino({ level: 'info' }, sink), accessLog: true });
      proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [a.spec()]) }, []));
      assert.equal(statusOf(await raw(proxy.port, '127.0.0.1', [v1('203.0.113.50'), get('web', '/')])), 200);
      assert.equal(statusOf(await raw(proxy.port, '127.0.0.1', [v1('203.0.113.51'), get('nowhere', '/')])), 404);
      const access = lines.filter((l) => l.component === 'access');
      assert.deepEqual(access.map((l) => [l.status, l.client]), [[200, '203.0.113.50'], [404, '203.0.113.51']]);
    } finally {
      await proxy?.runtime.close();
      await a.kill();
    }
  });

  test('--tls-listen: the header comes before TLS; HTTP/1.1 and ALPN h2 see the carried client', async () => {
    const ca = await makeTestCa('pp');
    const pem = await ca.issue(['web.example.test']);
    const a = await startBackend('a');
    const w = new WorkerTls({ listen: [{ host: '127.0.0.1', port: 0 }], ciphers: DEFAULT_TLS_CIPHERS, minVersion: 'TLSv1.2', handshakeTimeoutMs: 5_000 }, pino({ level: 'silent' }));
    let proxy: RunningProxy | undefined;
    try {
      w.apply(fullDelta(certSnapshotOf([validateCertificate({ id: 'kv:web', source: 'kv', chainText: pem.cert, keyText: pem.key }, Date.now())], undefined)));
      proxy = await startProxy({ ...engineOptions(engine), l4: L4 });
      proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [a.spec()]) }, [{ host: 'web.example.test', pathPrefix: '/', upstream: 'web' }]));
      const rt = proxy.runtime;
      const [addr] = await w.listen((socket) => rt.handleSocket(socket), undefined, proxyProtocolGate(L4.proxyProtocolFrom, 2_000, pino({ level: 'silent' })));
      const overTls = (from: string, header: Buffer | undefined, alpn: string[]) => new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = net.connect({ port: addr.port, host: '127.0.0.1', localAddress: from }, () => {
          if (header) s.write(header);
          const t = tls.connect({ socket: s, servername: 'web.example.test', ca: ca.cert, ALPNProtocols: alpn }, () => resolve(t));
          t.on('error', reject);
        });
        s.on('error', reject);
      });
      const t = await overTls('127.0.0.1', v1('203.0.113.40'), ['http/1.1']);
      const text = await new Promise<string>((resolve) => {
        let got = '';
        t.setEncoding('latin1');
        t.on('data', (d: string) => { got += d; });
        t.on('close', () => resolve(got));
        t.write(get('web.example.test', '/headers'));
      });
      const headers = JSON.parse(bodyOf(text)) as Record<string, string>;
      assert.equal(headers['x-forwarded-for'], '203.0.113.40', 'HTTP/1.1 over TLS: the carried client');
      assert.equal(headers['x-forwarded-proto'], 'https');
      const h2 = await overTls('127.0.0.1', v1('203.0.113.41'), ['h2']);
      assert.equal(h2.alpnProtocol, 'h2');
      const session = http2.connect('https://web.example.test', { createConnection: () => h2 });
      try {
        const body = await new Promise<string>((resolve, reject) => {
          const req = session.request({ ':path': '/headers' });
          let b = '';
          req.setEncoding('utf8');
          req.on('data', (d: string) => { b += d; });
          req.on('end', () => resolve(b));
          req.on('error', reject);
          req.end();
        });
        assert.equal(JSON.parse(body)['x-forwarded-for'], '203.0.113.41', 'HTTP/2 over TLS: the carried client');
      } finally {
        session.destroy();
      }
      await assert.rejects(overTls('127.0.0.1', undefined, ['http/1.1']), 'the trusted peer without a header: no handshake');
      await assert.rejects(overTls('127.0.0.2', v1('203.0.113.42'), ['http/1.1']), 'a header from an untrusted peer: no handshake');
    } finally {
      w.close();
      await proxy?.runtime.close();
      await a.kill();
      ca.close();
    }
  });

  test('upstream side: proxy_protocol=v1 names the client; its connections are bound to one client connection', async () => {
    const backend = await headerReadingBackend();
    let proxy: RunningProxy | undefined;
    try {
      proxy = await startProxy({ ...engineOptions(engine), l4: L4 });
      proxy.runtime.applyTable(tableFromUpstreams({
        pp: upstreamSpec('pp', [{ id: `127.0.0.1:${backend.port}`, host: '127.0.0.1', port: backend.port, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false }], { proxyProtocol: 'v1' }),
      }, []));
      const first = await twoRequests(proxy.port, '203.0.113.30');
      assert.equal(first.length, 2);
      assert.match(first[0], /^203\.0\.113\.30:5000#\d+$/, 'the backend reads the carried client from our header');
      assert.equal(first[1], first[0], 'the second request of that client connection reuses its upstream connection');
      const second = await twoRequests(proxy.port, '203.0.113.31');
      assert.match(second[0], /^203\.0\.113\.31:5000#\d+$/);
      assert.notEqual(second[0].split('#')[1], first[0].split('#')[1], 'another client never gets the first client\'s connection');
      assert.equal(second[1], second[0]);
      assert.deepEqual(backend.sources, ['203.0.113.30:5000', '203.0.113.31:5000'], 'one upstream connection per client connection');
    } finally {
      await proxy?.runtime.close();
      backend.server.close();
    }
  });
});
