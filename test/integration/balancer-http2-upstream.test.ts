// HTTP/2 to upstreams (proto=h2c in cleartext, proto=h2 over TLS with ALPN): one multiplexed session
// per server, `te: trailers` and :authority from Host, REFUSED_STREAM retried elsewhere even for a
// POST, a table swap mid-stream keeps the stream on its server (its session closes after it), and a
// draining worker sends GOAWAY to its HTTP/2 clients while their streams finish; proto=h2 verifies the
// servers' certificates (trusted CA, the address or tls_server_name= in the SANs) unless tls_skip_verify.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2, { type Http2Server, type Http2SecureServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { ServerSpec, UpstreamProtocol } from '../../balancer/src/routing/types.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { makeTestCa, type TestCa } from '../support/tls-certs.js';
import { h2connect, h2request } from '../support/http2-client.js';
import { until } from '../support/poll.js';

interface H2Backend {
  readonly id: string;
  readonly spec: ServerSpec;
  sessions: number;
  closedSessions: number;
  streams: number;
  lastHeaders: http2.IncomingHttpHeaders | undefined;
  refuse: boolean;
  /** a graceful shutdown of every open session (GOAWAY with the last stream id, closed once its streams ended) */
  goaway(): void;
  close(): void;
}

async function startH2Backend(id: string, tls?: { key: string; cert: string }): Promise<H2Backend> {
  const server: Http2Server | Http2SecureServer = tls ? http2.createSecureServer({ ...tls, allowHTTP1: false }) : http2.createServer();
  const b: H2Backend = {
    id, spec: undefined as unknown as ServerSpec, sessions: 0, closedSessions: 0, streams: 0, lastHeaders: undefined, refuse: false,
    goaway: () => { for (const s of open) s.close(); },
    close: () => { server.close(); },
  };
  const open = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => { b.sessions++; open.add(s); s.on('close', () => { b.closedSessions++; open.delete(s); }); });
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => undefined);
    if (b.refuse) { stream.close(http2.constants.NGHTTP2_REFUSED_STREAM); return; }
    b.streams++;
    b.lastHeaders = headers;
    const path = headers[':path'];
    stream.resume();
    if (path === '/slow') {
      stream.respond({ ':status': 200 });
      let i = 0;
      const t = setInterval(() => {
        stream.write(`${id}-${i}\n`);
        if (++i === 10) { clearInterval(t); stream.end(); }
      }, 60);
      stream.on('close', () => clearInterval(t));
      return;
    }
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'x-server': id }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'ok' }));
      stream.end(id);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  (b as { spec: ServerSpec }).spec = { id: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false };
  return b;
}

describe('balancer proxy: HTTP/2 upstreams', () => {
  let ca: TestCa;
  let plain: H2Backend[];
  let secure: H2Backend;
  let proxy: RunningProxy;
  const apply = (servers: H2Backend[], protocol: UpstreamProtocol = 'h2c') => proxy.runtime.applyTable(tableFromUpstreams({
    app: upstreamSpec('app', servers.map((s) => s.spec), { protocol }),
    sec: upstreamSpec('sec', [secure.spec], { protocol: 'h2' }),
  }, []));

  before(async () => {
    ca = await makeTestCa('h2up');
    const pem = await ca.issue(['localhost'], { extraIps: ['127.0.0.1'] });
    plain = await Promise.all(['p0', 'p1'].map((id) => startH2Backend(id)));
    secure = await startH2Backend('s0', { key: pem.key, cert: pem.cert });
    proxy = await startProxy({ http2: { h2c: true, upstreamCa: ca.cert } });
    apply(plain);
  });
  after(async () => {
    await proxy.runtime.close();
    for (const b of [...plain, secure]) b.close();
    await ca.close();
  });

  it('h2c: HTTP/1.1 clients are served over one multiplexed session per server; te: trailers and :authority sent', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => proxy.fetch('app', '/x')));
    assert.deepEqual(answers.map((a) => a.status), Array(20).fill(200));
    assert.deepEqual(new Set(answers.map((a) => a.text)), new Set(['p0', 'p1']));
    assert.deepEqual(plain.map((b) => b.sessions), [1, 1], 'one session per server');
    const h = plain[0].lastHeaders ?? {};
    assert.equal(h[':authority'], 'app');
    assert.equal(h.te, 'trailers');
    assert.equal(h['x-forwarded-proto'], 'http');
  });

  it('h2 over TLS (ALPN h2); trailers reach an HTTP/2 client that asked for them', async () => {
    const session = await h2connect(`http://127.0.0.1:${proxy.port}`);
    try {
      const a = await h2request(session, { ':method': 'POST', ':path': '/t', ':authority': 'sec', te: 'trailers' }, 'body');
      assert.equal(a.status, 200);
      assert.equal(a.text, 's0');
      assert.equal(a.trailers?.['x-checksum'], 'ok');
    } finally {
      session.close();
    }
  });

  it('a stream the server refused (REFUSED_STREAM) is retried on another server, even a POST', async () => {
    plain[0].refuse = true;
    try {
      for (let i = 0; i < 4; i++) {
        const a = await proxy.fetch('app', '/p', { method: 'POST', body: 'x' });
        assert.equal(a.status, 200);
        assert.equal(a.text, 'p1');
      }
    } finally {
      plain[0].refuse = false;
    }
  });

  it('a table swap mid-stream: the stream ends on its server, whose session then closes; new requests use the new table', async () => {
    const session = await h2connect(`http://127.0.0.1:${proxy.port}`);
    try {
      // find a /slow stream on p0
      let text = '';
      let swapped = false;
      const closedBefore = plain[0].closedSessions;
      await new Promise<void>((resolve, reject) => {
        const req = session.request({ ':path': '/slow', ':authority': 'app' });
        req.on('data', (c: Buffer) => {
          text += c.toString();
          if (!swapped) { swapped = true; apply(text.startsWith('p0') ? [plain[1]] : [plain[0]]); }
        });
        req.on('end', resolve);
        req.on('error', reject);
      });
      const first = text.slice(0, 2);
      assert.equal(text.split('\n').filter(Boolean).length, 10, 'the whole stream arrived');
      assert.ok(text.split('\n').filter(Boolean).every((l) => l.startsWith(first)), 'from one server');
      const other = first === 'p0' ? 'p1' : 'p0';
      for (let i = 0; i < 3; i++) assert.equal((await proxy.fetch('app', '/n')).text, other);
      const gone = plain.find((b) => b.id === first)!;
      await until('the old server session closed', () => gone.closedSessions > (first === 'p0' ? closedBefore : 0) || undefined, 5_000);
    } finally {
      session.close();
      apply(plain);
    }
  });
});

describe('balancer proxy: an HTTP/2 server that sends GOAWAY', () => {
  it('its session takes no new stream: the stream in flight finishes on it, new streams go to a new session', async () => {
    const [g0, g1] = await Promise.all(['g0', 'g1'].map((id) => startH2Backend(id)));
    const proxy = await startProxy();
    try {
      proxy.runtime.applyTable(tableFromUpstreams({ app: upstreamSpec('app', [g0.spec, g1.spec], { protocol: 'h2c' }) }, []));
      const warm = await Promise.all(Array.from({ length: 4 }, () => proxy.fetch('app', '/w')));
      assert.deepEqual(warm.map((a) => a.status), [200, 200, 200, 200]);
      assert.deepEqual([g0.sessions, g1.sessions], [1, 1]);
      // two long streams: round robin puts one on each server
      const [g0Before, g1Before] = [g0.streams, g1.streams];
      const inFlight = [proxy.fetch('app', '/slow'), proxy.fetch('app', '/slow')];
      await until('a /slow stream under way on each server', () => (g0.streams > g0Before && g1.streams > g1Before) || undefined, 5_000);
      g0.goaway();
      // every request is answered (a stream g0 refused after its GOAWAY is retried on g1), and g0's next
      // streams go on a NEW session, not on the one it is closing
      const closedWhenNew = await until('a new session to g0', async () => {
        const a = await proxy.fetch('app', '/n');
        assert.equal(a.status, 200, a.text);
        return g0.sessions === 2 ? { closed: g0.closedSessions } : undefined;
      }, 5_000, 20);
      assert.equal(closedWhenNew.closed, 0, 'the new session opened while the old one still carried its stream');
      const answers = await Promise.all(inFlight);
      for (const a of answers) {
        assert.equal(a.status, 200);
        assert.equal(a.text.split('\n').filter(Boolean).length, 10, `the stream in flight finished whole: ${a.text}`);
      }
      assert.deepEqual(answers.map((a) => a.text.slice(0, 2)).sort(), ['g0', 'g1']);
      await until('the old g0 session closed once its stream ended', () => g0.closedSessions >= 1 || undefined, 5_000);
      for (let i = 0; i < 4; i++) assert.equal((await proxy.fetch('app', '/m')).status, 200);
      assert.equal(g0.sessions, 2, 'no session per request after it');
    } finally {
      await proxy.runtime.close();
      g0.close();
      g1.close();
    }
  });
});

describe('balancer proxy: HTTP/2 worker drain', () => {
  it('GOAWAY to HTTP/2 clients, the stream in flight finishes, then the worker is drained', async () => {
    const backend = await startH2Backend('d0');
    const proxy = await startProxy({ http2: { h2c: true } });
    try {
      proxy.runtime.applyTable(tableFromUpstreams({ app: upstreamSpec('app', [backend.spec], { protocol: 'h2c' }) }, []));
      const session = await h2connect(`http://127.0.0.1:${proxy.port}`);
      let goaway = false;
      session.on('goaway', () => { goaway = true; });
      const slow = h2request(session, { ':path': '/slow', ':authority': 'app' });
      await until('stream under way', () => backend.streams > 0 || undefined, 5_000);
      const drained = proxy.runtime.stopAccepting();
      await until('GOAWAY', () => goaway || undefined, 5_000);
      const a = await slow;
      assert.equal(a.text.split('\n').filter(Boolean).length, 10);
      await drained;
    } finally {
      await proxy.runtime.close();
      backend.close();
    }
  });
});

describe('balancer proxy: proto=h2 verifies the server certificate', () => {
  let trusted: TestCa;
  let untrusted: TestCa;
  let servers: Record<'byIp' | 'byName' | 'stranger', H2Backend>;
  let withCa: RunningProxy;
  let systemStore: RunningProxy;

  before(async () => {
    trusted = await makeTestCa('h2verify');
    untrusted = await makeTestCa('h2verify-other');
    servers = {
      byIp: await startH2Backend('ip', await trusted.issue(['localhost'], { extraIps: ['127.0.0.1'] })),
      byName: await startH2Backend('name', await trusted.issue(['api.internal'])),
      stranger: await startH2Backend('stranger', await untrusted.issue(['localhost'], { extraIps: ['127.0.0.1'] })),
    };
    withCa = await startProxy({ http2: { upstreamCa: trusted.cert } });
    systemStore = await startProxy();
  });
  after(async () => {
    await withCa.runtime.close();
    await systemStore.runtime.close();
    for (const b of Object.values(servers)) b.close();
    await trusted.close();
    await untrusted.close();
  });

  it('a trusted certificate naming the server passes; an untrusted or misnamed one is a 502 and no request reaches the server, unless tls_skip_verify', async () => {
    const table = tableFromUpstreams({
      'ip': upstreamSpec('ip', [servers.byIp.spec], { protocol: 'h2' }),
      'name-by-address': upstreamSpec('name-by-address', [servers.byName.spec], { protocol: 'h2' }),
      'name-given': upstreamSpec('name-given', [servers.byName.spec], { protocol: 'h2', serverTls: { serverName: 'api.internal' } }),
      'name-wrong': upstreamSpec('name-wrong', [servers.byName.spec], { protocol: 'h2', serverTls: { serverName: 'web.internal' } }),
      'stranger': upstreamSpec('stranger', [servers.stranger.spec], { protocol: 'h2' }),
      'stranger-skip': upstreamSpec('stranger-skip', [servers.stranger.spec], { protocol: 'h2', serverTls: { skipVerify: true } }),
    }, []);
    withCa.runtime.applyTable(table);
    systemStore.runtime.applyTable(table);
    const cases: [RunningProxy, string, string, number, H2Backend][] = [
      [withCa, '--upstream-ca', 'ip', 200, servers.byIp],
      [withCa, '--upstream-ca', 'name-by-address', 502, servers.byName],
      [withCa, '--upstream-ca', 'name-given', 200, servers.byName],
      [withCa, '--upstream-ca', 'name-wrong', 502, servers.byName],
      [withCa, '--upstream-ca', 'stranger', 502, servers.stranger],
      [withCa, '--upstream-ca', 'stranger-skip', 200, servers.stranger],
      [systemStore, 'system store', 'ip', 502, servers.byIp],
      [systemStore, 'system store', 'stranger-skip', 200, servers.stranger],
    ];
    for (const [proxy, trust, service, status, server] of cases) {
      const before = server.streams;
      const a = await proxy.fetch(service, '/v', { method: 'POST', body: 'x' });
      assert.equal(a.status, status, `${trust} ${service}: ${a.text}`);
      assert.equal(server.streams - before, status === 200 ? 1 : 0, `${trust} ${service}: streams that reached the server`);
      if (status === 200) assert.equal(a.text, server.id);
      // a refused certificate is never retried into a success on the same server, and says why
      else assert.match(a.text, /ERR_UPSTREAM_CERTIFICATE|certificate/i, `${trust} ${service}`);
    }
  });
});
