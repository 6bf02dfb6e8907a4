// check=grpc: the active checker asks each server grpc.health.v1.Health/Check (real @grpc/grpc-js
// servers whose answer the test flips): NOT_SERVING, SERVICE_UNKNOWN, an unimplemented health
// service and a dead server take the server out and traffic leaves it; SERVING brings it back and
// traffic returns. All probes of a server share one HTTP/2 session (one client port at the server).
// h2c for proto=grpc, TLS for proto=h2.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { ActiveCheckSpec } from '../../balancer/src/routing/types.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { echoClient, startEchoServer, unary, type EchoClient, type EchoServer } from '../support/grpc-echo.js';
import { makeTestCa, type TestCa } from '../support/tls-certs.js';
import { until } from '../support/poll.js';

const CHECK: ActiveCheckSpec = { type: 'grpc', path: '/', grpcService: '', tls: false, intervalMs: 40, timeoutMs: 1_000, rise: 2, fall: 2, expectStatuses: [] };

describe('balancer proxy: check=grpc active health', () => {
  let proxy: RunningProxy;
  let servers: EchoServer[] = [];
  let client: EchoClient | undefined;
  let ca: TestCa;

  before(async () => {
    ca = await makeTestCa('grpc-health');
    proxy = await startProxy({ http2: { h2c: true, upstreamCa: ca.cert }, timeouts: { connectMs: 1_000, headersMs: 5_000, idleMs: 5_000, clientKeepAliveMs: 5_000 } });
  });
  afterEach(() => {
    client?.close();
    client = undefined;
    proxy.runtime.applyTable(tableFromUpstreams({}, []));
    for (const s of servers) s.kill();
    servers = [];
  });
  after(async () => {
    await proxy.runtime.close();
    await ca.close();
  });

  const statusOf = (upstream: string, s: EchoServer) => proxy.runtime.status().find((u) => u.name === upstream)?.servers.find((x) => x.id === s.spec().id);
  const until_ = (upstream: string, s: EchoServer, want: 'ok' | 'ejected') =>
    until(`${s.id} ${want}`, () => (statusOf(upstream, s)?.status === want ? true : undefined), 10_000);
  /** n unary calls; how many each server answered */
  async function spread(c: EchoClient, n: number): Promise<Record<string, number>> {
    const per: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await unary(c, { text: String(i) }, { deadline: Date.now() + 5_000 });
      per[r.server] = (per[r.server] ?? 0) + 1;
    }
    return per;
  }

  it('NOT_SERVING takes a server out, SERVING brings it back; one session per server across probes', async () => {
    servers = await Promise.all(['g0', 'g1'].map((id) => startEchoServer(id)));
    const [g0, g1] = servers;
    proxy.runtime.applyTable(tableFromUpstreams({ echo: upstreamSpec('echo', servers.map((s) => s.spec()), { protocol: 'grpc', check: CHECK }) }, []));
    client = echoClient(proxy.port, 'echo');
    await until_('echo', g0, 'ok');
    await until_('echo', g1, 'ok');
    assert.deepEqual(await spread(client, 10), { g0: 5, g1: 5 });

    g0.setHealth('', 'NOT_SERVING');
    await until_('echo', g0, 'ejected');
    assert.match(String(statusOf('echo', g0)?.lastError), /NOT_SERVING/);
    assert.equal(statusOf('echo', g0)?.activeCheck?.up, false);
    assert.deepEqual(await spread(client, 10), { g1: 10 }, 'traffic left g0');

    g0.setHealth('', 'SERVING');
    await until_('echo', g0, 'ok');
    assert.deepEqual(await spread(client, 10), { g0: 5, g1: 5 }, 'traffic came back to g0');

    const probes = g0.healthPeers.length;
    assert.ok(probes >= 6, `${probes} probes`);
    assert.equal(new Set(g0.healthPeers).size, 1, `every probe on one connection: ${[...new Set(g0.healthPeers)].join(', ')}`);
    assert.equal(new Set(g1.healthPeers).size, 1);
  });

  it('a named service: SERVICE_UNKNOWN, then SERVING; the server-wide status does not count', async () => {
    servers = await Promise.all(['n0', 'n1'].map((id) => startEchoServer(id)));
    const [n0, n1] = servers;
    n0.setHealth('balancertest.Echo', 'SERVING');
    proxy.runtime.applyTable(tableFromUpstreams({
      named: upstreamSpec('named', servers.map((s) => s.spec()), { protocol: 'grpc', check: { ...CHECK, grpcService: 'balancertest.Echo' } }),
    }, []));
    client = echoClient(proxy.port, 'named');
    await until_('named', n1, 'ejected');
    assert.match(String(statusOf('named', n1)?.lastError), /SERVICE_UNKNOWN/);
    assert.equal(statusOf('named', n0)?.status, 'ok');
    assert.deepEqual(await spread(client, 6), { n0: 6 });
    n1.setHealth('balancertest.Echo', 'SERVING');
    await until_('named', n1, 'ok');
    assert.deepEqual(await spread(client, 6), { n0: 3, n1: 3 });
  });

  it('no health service (UNIMPLEMENTED) and a dead server are unhealthy', async () => {
    servers = await Promise.all([startEchoServer('u0'), startEchoServer('u1', { health: false }), startEchoServer('u2')]);
    const [u0, u1, u2] = servers;
    proxy.runtime.applyTable(tableFromUpstreams({ echo: upstreamSpec('echo', servers.map((s) => s.spec({ maxFails: 0 })), { protocol: 'grpc', check: CHECK }) }, []));
    client = echoClient(proxy.port, 'echo');
    await until_('echo', u1, 'ejected');
    assert.match(String(statusOf('echo', u1)?.lastError), /grpc-status 12/);
    await until_('echo', u2, 'ok');
    u2.kill();
    await until_('echo', u2, 'ejected');
    assert.deepEqual(await spread(client, 5), { u0: 5 });
  });

  it('proto=h2: the check speaks TLS (ALPN h2) to a TLS gRPC server', async () => {
    const pem = await ca.issue(['localhost'], { extraIps: ['127.0.0.1'] });
    servers = await Promise.all(['t0', 't1'].map((id) => startEchoServer(id, { tls: pem })));
    const [t0, t1] = servers;
    proxy.runtime.applyTable(tableFromUpstreams({ secure: upstreamSpec('secure', servers.map((s) => s.spec()), { protocol: 'h2', check: { ...CHECK, tls: true } }) }, []));
    client = echoClient(proxy.port, 'secure');
    await until_('secure', t0, 'ok');
    await until_('secure', t1, 'ok');
    t1.setHealth('', 'NOT_SERVING');
    await until_('secure', t1, 'ejected');
    assert.deepEqual(await spread(client, 4), { t0: 4 });
    assert.ok(t0.calls.Check >= 2);
  });

  it('proto=h2: the check verifies the certificate as the traffic does (an untrusted one is a failed check)', async () => {
    const other = await makeTestCa('grpc-health-untrusted');
    try {
      const pem = await other.issue(['localhost'], { extraIps: ['127.0.0.1'] });
      servers = [await startEchoServer('x0', { tls: pem })];
      const [x0] = servers;
      proxy.runtime.applyTable(tableFromUpstreams({ untrusted: upstreamSpec('untrusted', [x0.spec()], { protocol: 'h2', check: { ...CHECK, tls: true } }) }, []));
      await until_('untrusted', x0, 'ejected');
      assert.match(String(statusOf('untrusted', x0)?.lastError), /certificate|UNABLE_TO_VERIFY|SELF_SIGNED/i);
      assert.equal(x0.calls.Check, 0, 'no check reached a server whose certificate failed');
    } finally {
      await other.close();
    }
  });
});
