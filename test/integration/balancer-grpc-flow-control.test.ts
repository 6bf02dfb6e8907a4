// Flow control end to end through the balancer (h2c front, proto=grpc upstream, real grpc-js both
// ends): a reader that stops reading stops the writer on the far side. Server -> slow client: the
// server's call.write returns false and the messages it could hand over stop growing, far below
// what it would write; the same client -> slow server. Each side then reads on and every message
// arrives. What stalls is bounded by the HTTP/2 windows and stream buffers of the three hops, not
// by the amount sent.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { echoClient, startEchoServer, type EchoClient, type EchoReply, type EchoServer } from '../support/grpc-echo.js';
import { until } from '../support/poll.js';

const MESSAGE = 256 * 1024;
const COUNT = 400; // 100 MiB each way
/** what may be in flight while the reader stopped: windows and buffers of client, proxy and server (measured ~2-6 MiB) */
const STALL_BOUND_BYTES = 24 * 1024 * 1024;

/** resolves once `read()` returned the same value `polls` times in a row (the writer stopped) */
function settled(what: string, read: () => number, polls = 20): Promise<number> {
  let last = -1;
  let same = 0;
  return until(what, () => {
    const v = read();
    same = v === last ? same + 1 : 0;
    last = v;
    return same >= polls ? v : undefined;
  }, 20_000, 50);
}

describe('balancer proxy: gRPC flow control end to end', () => {
  let server: EchoServer;
  let proxy: RunningProxy;
  let client: EchoClient;

  before(async () => {
    server = await startEchoServer('f0');
    proxy = await startProxy({ http2: { h2c: true }, timeouts: { connectMs: 1_000, headersMs: 5_000, idleMs: 5_000, clientKeepAliveMs: 5_000 } });
    proxy.runtime.applyTable(tableFromUpstreams({ flow: upstreamSpec('flow', [server.spec()], { protocol: 'grpc' }) }, []));
    client = echoClient(proxy.port, 'flow', { 'grpc.max_receive_message_length': 4 * MESSAGE });
  });
  after(async () => {
    client.close();
    await proxy.runtime.close();
    server.kill();
  });

  it('a slow client slows the server: its writes stop while the client reads nothing, then all arrive', { timeout: 60_000 }, async () => {
    const call = client.ServerStream({ text: 's', count: COUNT, payload: Buffer.alloc(MESSAGE, 7) });
    let received = 0;
    const ended = new Promise<void>((resolve, reject) => { call.on('end', resolve); call.on('error', reject); });
    call.on('data', (r: EchoReply) => { received++; assert.equal(r.payload?.length, MESSAGE); });
    call.pause();
    const stalledAt = await settled('server writes stopped', () => server.streamed.messages);
    assert.ok(server.streamed.blocked > 0, 'the server saw write() return false');
    assert.ok(stalledAt * MESSAGE <= STALL_BOUND_BYTES, `${stalledAt} messages (${(stalledAt * MESSAGE / 2 ** 20).toFixed(1)} MiB) handed over while nothing was read`);
    assert.equal(received, 0);
    process.stderr.write(`server -> slow client: ${stalledAt} of ${COUNT} messages (${(stalledAt * MESSAGE / 2 ** 20).toFixed(1)} MiB) written before the stall\n`);
    call.resume();
    await ended;
    assert.equal(received, COUNT);
    assert.equal(server.streamed.messages, COUNT);
  });

  // the client attaches before the proxy's body gate filled (gRPC goes upstream at once), so the
  // client is flowing when the upstream's first write says stop: the gate used to queue every later
  // chunk (all 100 MiB passed while the server read nothing); it holds the client now
  it('a slow server slows the client: its writes stop while the server reads nothing, then all arrive', {
    timeout: 60_000,
  }, async () => {
    server.holdReads(true);
    const receivedBefore = server.clientStreamReceived;
    let written = 0;
    let blocked = 0;
    const answer = new Promise<EchoReply>((resolve, reject) => {
      const call = client.ClientStream(new grpc.Metadata(), {}, (err, res) => (err ? reject(err) : resolve(res as EchoReply)));
      const payload = Buffer.alloc(MESSAGE, 3);
      const more = (): void => {
        while (written < COUNT) {
          written++;
          if (!call.write({ text: String(written), payload })) { blocked++; call.once('drain', more); return; }
        }
        call.end();
      };
      more();
    });
    const stalledAt = await settled('client writes stopped', () => written);
    assert.ok(blocked > 0, 'the client saw write() return false');
    assert.ok(stalledAt * MESSAGE <= STALL_BOUND_BYTES, `${stalledAt} messages (${(stalledAt * MESSAGE / 2 ** 20).toFixed(1)} MiB) written while the server read nothing`);
    process.stderr.write(`client -> slow server: ${stalledAt} of ${COUNT} messages (${(stalledAt * MESSAGE / 2 ** 20).toFixed(1)} MiB) written before the stall; server read ${server.clientStreamReceived - receivedBefore}\n`);
    server.holdReads(false);
    const res = await answer;
    assert.equal(res.n, COUNT);
    assert.equal(Number(res.bytes), COUNT * MESSAGE);
  });
});
