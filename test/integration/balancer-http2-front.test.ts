// HTTP/2 from clients: ALPN h2 on the TLS listener (and http/1.1 on an opted-out one), h2c with prior
// knowledge on the plain listener behind http2.h2c; every stream routed by :authority through the same
// exchange as HTTP/1.1 (pick per stream), cookie crumbs joined, malformed requests reset with
// PROTOCOL_ERROR (raw frames), curl --http2 and --http2-prior-knowledge, drain sends GOAWAY.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import http2 from 'node:http2';
import pino from 'pino';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { certSnapshotOf, fullDelta } from '../../balancer/src/tls/cert-snapshot.js';
import { validateCertificate } from '../../balancer/src/tls/certificate.js';
import { DEFAULT_TLS_CIPHERS } from '../../balancer/src/tls/tls-settings.js';
import { WorkerTls } from '../../balancer/src/tls/worker-tls.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { makeTestCa, type TestCa } from '../support/tls-certs.js';
import { h2connect, h2request } from '../support/http2-client.js';
import { FRAME, RawH2Client, requestHeaders } from '../support/h2-frames.js';
import { until } from '../support/poll.js';

const run = promisify(execFile);
const { NGHTTP2_PROTOCOL_ERROR } = http2.constants;

for (const engine of ENGINES) describe(`balancer proxy: HTTP/2 clients [${engine}]`, () => {
  let ca: TestCa;
  let backends: Backend[];
  let proxy: RunningProxy;
  let tls: WorkerTls;
  let tlsPort: number;
  let h1OnlyPort: number;

  before(async () => {
    ca = await makeTestCa('h2front');
    const pem = await ca.issue(['app.example.test']);
    backends = await startBackends(3);
    proxy = await startProxy({ ...engineOptions(engine), http2: { h2c: true } });
    proxy.runtime.applyTable(tableFromUpstreams({ app: upstreamSpec('app', backends.map((b) => b.spec())) }, [{ host: 'app.example.test', pathPrefix: '/', upstream: 'app' }]));
    tls = new WorkerTls({
      listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port: 0, http1Only: true }],
      ciphers: DEFAULT_TLS_CIPHERS, minVersion: 'TLSv1.2', handshakeTimeoutMs: 5_000,
    }, pino({ level: 'silent' }));
    tls.apply(fullDelta(certSnapshotOf([validateCertificate({ id: 'kv:app', source: 'kv', chainText: pem.cert, keyText: pem.key }, Date.now())], 'app.example.test')));
    const addrs = await tls.listen((socket) => proxy.runtime.handleSocket(socket));
    tlsPort = addrs[0].port;
    h1OnlyPort = addrs[1].port;
  });
  after(async () => {
    tls.close();
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
    await ca.close();
  });

  it('TLS: ALPN picks h2, streams route by :authority and spread over all servers on one connection', async () => {
    const session = await h2connect(`https://127.0.0.1:${tlsPort}`, { servername: 'app.example.test' });
    try {
      assert.equal(session.alpnProtocol, 'h2');
      const answers = await Promise.all(Array.from({ length: 9 }, () => h2request(session, { ':path': '/', ':authority': 'app.example.test' })));
      assert.deepEqual(answers.map((a) => a.status), Array(9).fill(200));
      assert.deepEqual([...new Set(answers.map((a) => a.text))].sort(), ['b0', 'b1', 'b2'], 'picked per stream, not per connection');
      const headers = await h2request(session, { ':path': '/headers', ':authority': 'app.example.test', cookie: ['a=1', 'b=2'] });
      const seen = JSON.parse(headers.text) as Record<string, string>;
      assert.equal(seen.host, 'app.example.test');
      assert.equal(seen.cookie, 'a=1; b=2', 'cookie crumbs joined for the HTTP/1.1 hop');
      assert.equal(seen['x-forwarded-proto'], 'https');
      const post = await h2request(session, { ':method': 'POST', ':path': '/upload', ':authority': 'app.example.test' }, 'x'.repeat(100_000));
      assert.equal(JSON.parse(post.text).bytes, 100_000);
      const unknown = await h2request(session, { ':path': '/', ':authority': 'nobody.example.test' });
      assert.equal(unknown.status, 404);
      assert.equal(JSON.parse(unknown.text).error, 'unknown_host');
    } finally {
      session.close();
    }
  });

  it('TLS: a listener opted out of h2 negotiates http/1.1', async () => {
    await assert.rejects(h2connect(`https://127.0.0.1:${h1OnlyPort}`, { servername: 'app.example.test' }));
    const { stdout } = await run('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_version}', '--resolve', `app.example.test:${h1OnlyPort}:127.0.0.1`, `https://app.example.test:${h1OnlyPort}/`], { timeout: 10_000 });
    assert.equal(stdout, '1.1');
  });

  it('curl --http2 on TLS and --http2-prior-knowledge on the plain listener speak HTTP/2; plain HTTP/1.1 still works there', async () => {
    const tlsRun = await run('curl', ['-sk', '--http2', '-w', ' %{http_version}', '--resolve', `app.example.test:${tlsPort}:127.0.0.1`, `https://app.example.test:${tlsPort}/`], { timeout: 10_000 });
    assert.match(tlsRun.stdout, /^b\d 2$/);
    const h2c = await run('curl', ['-s', '--http2-prior-knowledge', '-w', ' %{http_version}', '-H', 'host: app.example.test', `http://127.0.0.1:${proxy.port}/`], { timeout: 10_000 });
    assert.match(h2c.stdout, /^b\d 2$/);
    const h1 = await proxy.fetch('app.example.test', '/');
    assert.equal(h1.status, 200);
    assert.match(h1.text, /^b\d$/);
  });

  it('malformed requests (raw frames) are reset with PROTOCOL_ERROR and reach no server', async () => {
    const before = backends.reduce((n, b) => n + b.requests, 0);
    const raw = new RawH2Client(proxy.port);
    try {
      raw.write(requestHeaders(1, 'app.example.test', '/', [['connection', 'keep-alive']]));
      raw.write(requestHeaders(3, 'app.example.test', '/', [['transfer-encoding', 'chunked']]));
      raw.write(requestHeaders(5, 'app.example.test', '/', [['te', 'gzip']]));
      raw.write(requestHeaders(7, 'app.example.test', '/', [['host', 'other.example.test']]));
      raw.write(requestHeaders(9, 'app.example.test', '/', [['te', 'trailers']]));
      await until('answers', () => (raw.answered(9) && [1, 3, 5, 7].every((id) => raw.resetCode(id) !== undefined)) || undefined, 5_000);
      for (const id of [1, 3, 5, 7]) assert.equal(raw.resetCode(id), NGHTTP2_PROTOCOL_ERROR, `stream ${id}`);
      assert.equal(raw.frames.filter((f) => f.type === FRAME.headers).length, 1, 'only the well-formed request was answered');
      assert.equal(backends.reduce((n, b) => n + b.requests, 0) - before, 1);
    } finally {
      raw.close();
    }
  });
});
