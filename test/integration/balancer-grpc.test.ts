// gRPC end to end through the balancer (h2c on the plain listener, proto=grpc upstreams): all four
// call kinds with real @grpc/grpc-js clients and servers; calls of ONE channel spread over every
// server (per-call balancing); UNAVAILABLE / UNIMPLEMENTED / DEADLINE_EXCEEDED produced by the proxy
// as gRPC statuses; 3 servers scaled to 1 and back under 100 concurrent calls with no failed call.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { UpstreamSpec } from '../../balancer/src/routing/types.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { echoClient, startEchoServer, unary, type EchoClient, type EchoReply, type EchoServer } from '../support/grpc-echo.js';
import { h2connect, h2request } from '../support/http2-client.js';
import { until } from '../support/poll.js';

const grpcUpstream = (name: string, servers: EchoServer[], extra: Partial<UpstreamSpec> = {}): UpstreamSpec =>
  upstreamSpec(name, servers.map((s) => s.spec()), { protocol: 'grpc', ...extra });

describe('balancer proxy: gRPC end to end', () => {
  let servers: EchoServer[];
  let proxy: RunningProxy;
  let client: EchoClient;
  const table = (echo: EchoServer[]) => tableFromUpstreams({ echo: grpcUpstream('echo', echo), empty: grpcUpstream('empty', []) }, []);

  before(async () => {
    servers = await Promise.all(['g0', 'g1', 'g2'].map((id) => startEchoServer(id)));
    proxy = await startProxy({ http2: { h2c: true }, timeouts: { connectMs: 1_000, headersMs: 5_000, idleMs: 5_000, clientKeepAliveMs: 5_000 } });
    proxy.runtime.applyTable(table(servers));
    client = echoClient(proxy.port, 'echo');
  });
  after(async () => {
    client.close();
    await proxy.runtime.close();
    for (const s of servers) s.kill();
  });

  it('unary, server streaming, client streaming and bidirectional calls', async () => {
    const one = await unary(client, { text: 'hello' });
    assert.equal(one.text, 'hello');
    assert.match(one.server, /^g\d$/);

    const replies: EchoReply[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.ServerStream({ text: 's', count: 50, payload: Buffer.alloc(10_000, 1) });
      call.on('data', (r: EchoReply) => replies.push(r));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.deepEqual(replies.map((r) => r.n), Array.from({ length: 50 }, (_, i) => i + 1));

    const summed = await new Promise<EchoReply>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res as EchoReply)));
      for (let i = 0; i < 20; i++) call.write({ text: String(i), payload: Buffer.alloc(5_000) });
      call.end();
    });
    assert.equal(summed.n, 20);
    assert.equal(Number(summed.bytes), 100_000);

    // bidirectional: each message waits for its answer before the next goes (a gate that waited for
    // the whole body would hang here)
    const bidi = client.Bidi();
    const answers: EchoReply[] = [];
    const next = () => new Promise<EchoReply>((resolve, reject) => { bidi.once('data', resolve); bidi.once('error', reject); });
    for (let i = 1; i <= 5; i++) {
      const answer = next();
      bidi.write({ text: `m${i}` });
      answers.push(await answer);
    }
    bidi.end();
    assert.deepEqual(answers.map((a) => `${a.text}/${a.n}`), ['m1/1', 'm2/2', 'm3/3', 'm4/4', 'm5/5']);
    assert.equal(new Set(answers.map((a) => a.server)).size, 1, 'one call, one server');
  });

  it('calls of one channel spread over every server (picked per call)', async () => {
    const before = servers.map((s) => s.calls.Unary);
    const got = await Promise.all(Array.from({ length: 30 }, (_, i) => unary(client, { text: String(i) })));
    const per = servers.map((s, i) => s.calls.Unary - before[i]);
    assert.deepEqual(per, [10, 10, 10], `round robin per call: ${per.join(',')}`);
    assert.equal(new Set(got.map((r) => r.server)).size, 3);
  });

  it('proxy errors are gRPC statuses: UNAVAILABLE (no server), UNIMPLEMENTED (unknown service), server statuses relayed', async () => {
    const empty = echoClient(proxy.port, 'empty');
    const nobody = echoClient(proxy.port, 'nobody');
    try {
      await assert.rejects(unary(empty, { text: 'x' }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE && /no_healthy_upstream/.test(err.details));
      await assert.rejects(unary(nobody, { text: 'x' }), (err: grpc.ServiceError) => err.code === grpc.status.UNIMPLEMENTED);
      await assert.rejects(unary(client, { text: 'fail' }), (err: grpc.ServiceError) => err.code === grpc.status.FAILED_PRECONDITION && err.details === 'asked to fail');
    } finally {
      empty.close();
      nobody.close();
    }
    // on the wire: HTTP 200, application/grpc, the status in a trailers-only answer
    const session = await h2connect(`http://127.0.0.1:${proxy.port}`);
    try {
      const a = await h2request(session, { ':method': 'POST', ':path': '/balancertest.Echo/Unary', ':authority': 'empty', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
      assert.equal(a.status, 200);
      assert.equal(a.headers['content-type'], 'application/grpc');
      assert.equal(a.headers['grpc-status'], '14');
      assert.equal(a.text, '');
    } finally {
      session.close();
    }
  });

  it('grpc-timeout is a deadline: DEADLINE_EXCEEDED from the proxy, and the server call is cancelled', async () => {
    const session = await h2connect(`http://127.0.0.1:${proxy.port}`);
    const cancelledBefore = servers.reduce((n, s) => n + s.cancelled, 0);
    try {
      // a raw call without the client library's own deadline: only the proxy can end it
      const msg = Buffer.from([0x18, 0xd0, 0x0f]); // delay_ms = 2000
      const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
      const started = Date.now();
      const a = await h2request(session, { ':method': 'POST', ':path': '/balancertest.Echo/Unary', ':authority': 'echo', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '200m' }, frame);
      const status = a.trailers?.['grpc-status'] ?? a.headers['grpc-status'];
      assert.equal(status, '4');
      assert.ok(Date.now() - started < 1_900, 'ended by the deadline, not by the server');
      await until('server call cancelled', () => servers.reduce((n, s) => n + s.cancelled, 0) > cancelledBefore || undefined, 5_000);
    } finally {
      session.close();
    }
  });

  it('3 servers scaled to 1 and back under 100 concurrent unary calls: no failed call', { timeout: 60_000 }, async () => {
    let failures = 0;
    let done = 0;
    const firstErrors: string[] = [];
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        try {
          await unary(client, { text: 'load', delay_ms: 5 }, { deadline: Date.now() + 10_000 });
          done++;
        } catch (err) {
          failures++;
          if (firstErrors.length < 5) firstErrors.push(String((err as Error).message));
        }
      }
    };
    const load = Array.from({ length: 100 }, worker);
    await until('load running', () => done > 200 || undefined, 20_000);
    // scale down: two servers stop gracefully (GOAWAY, calls in flight finish), then the table follows
    const [, gone1, gone2] = servers;
    await Promise.all([gone1.shutdown(), gone2.shutdown()]);
    proxy.runtime.applyTable(table([servers[0]]));
    const atOne = done;
    await until('calls on one server', () => done > atOne + 200 || undefined, 20_000);
    // and back up to three (new processes, new ports)
    const fresh = await Promise.all(['g3', 'g4'].map((id) => startEchoServer(id)));
    servers = [servers[0], ...fresh];
    proxy.runtime.applyTable(table(servers));
    await until('new servers take calls', () => fresh.every((s) => s.calls.Unary > 20) || undefined, 20_000);
    stop = true;
    await Promise.all(load);
    gone1.kill();
    gone2.kill();
    assert.equal(failures, 0, `failed calls: ${firstErrors.join(' | ')}`);
    assert.ok(done > 400, `${done} calls`);
  });
});
