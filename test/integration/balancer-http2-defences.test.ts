// The HTTP/2 attack defences of the client side, each with frames written by hand: rapid reset
// (CVE-2023-44487) ends in GOAWAY ENHANCE_YOUR_CALM once the reset budget is spent; CONTINUATION
// floods and HPACK bombs end at the header list bound; SETTINGS / PING / empty-DATA floods close the
// session; streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused; a client that never opens its
// window is cut after the stall timeout; a stream's body is bounded. Bounds are small here so each
// case is quick; the defaults are in proxy/http2/limits.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { FLAG, FRAME, frame, headerBlock, RawH2Client, requestHeaders, rstStreamFrame, settingsFrame } from '../support/h2-frames.js';
import { until } from '../support/poll.js';
import { h2connect, h2request } from '../support/http2-client.js';

const C = http2.constants;
const ended = (raw: RawH2Client) => () => (raw.goawayCode() !== undefined || raw.closed ? true : undefined);

describe('balancer proxy: HTTP/2 defences (raw frames)', () => {
  let backends: Backend[];
  let big: http.Server;
  let proxy: RunningProxy;
  const requests = () => backends.reduce((n, b) => n + b.requests, 0);

  before(async () => {
    backends = await startBackends(1);
    // 4 MB answers: more than any window and node's write buffer
    big = http.createServer((_req, res) => { res.writeHead(200, { 'content-length': String(4 << 20) }); res.end(Buffer.alloc(4 << 20, 0x62)); });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    const bigPort = (big.address() as AddressInfo).port;
    proxy = await startProxy({
      http2: {
        h2c: true,
        limits: { resetBurst: 20, resetRate: 1, maxConcurrentStreams: 8, maxRejectedStreams: 20, maxHeaderListBytes: 4_096, maxInvalidFrames: 50, maxRequestBodyBytes: 1_000, stallMs: 300 },
      },
      timeouts: { connectMs: 1_000, headersMs: 10_000, idleMs: 10_000, clientKeepAliveMs: 5_000 },
    });
    proxy.runtime.applyTable(tableFromUpstreams({
      app: upstreamSpec('app', [backends[0].spec()]),
      big: upstreamSpec('big', [{ id: `127.0.0.1:${bigPort}`, host: '127.0.0.1', port: bigPort, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false }]),
    }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
    big.close();
  });

  it('rapid reset: streams opened and reset in a loop end in GOAWAY ENHANCE_YOUR_CALM after the budget', async () => {
    const raw = new RawH2Client(proxy.port);
    try {
      let id = 1;
      for (let i = 0; i < 200 && !raw.closed; i++, id += 2) {
        raw.write(Buffer.concat([requestHeaders(id, 'app', '/sleep/2000'), rstStreamFrame(id, C.NGHTTP2_CANCEL)]));
        if (i % 10 === 9) await new Promise((r) => setImmediate(r));
      }
      await until('GOAWAY', () => raw.goawayCode(), 5_000);
      assert.equal(raw.goawayCode(), C.NGHTTP2_ENHANCE_YOUR_CALM);
      await until('connection closed', () => raw.closed || undefined, 5_000);
    } finally {
      raw.close();
    }
  });

  it('CONTINUATION flood: header fragments without END_HEADERS are bounded (the session ends, no request is made)', async () => {
    const before = requests();
    const raw = new RawH2Client(proxy.port);
    try {
      raw.write(frame(FRAME.headers, 0, 1, headerBlock([[':method', 'GET'], [':scheme', 'http'], [':authority', 'app'], [':path', '/']])));
      const fragment = headerBlock([['x-filler', 'a'.repeat(1_000)]]);
      let sent = 0;
      for (; sent < 10_000 && !raw.closed && raw.goawayCode() === undefined; sent++) {
        raw.write(frame(FRAME.continuation, 0, 1, fragment));
        if (sent % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      await until('session ended', ended(raw), 5_000);
      assert.ok(sent < 10_000, `the flood was cut (after ${sent} frames)`);
      assert.equal(raw.answered(1), false);
      assert.equal(requests(), before);
    } finally {
      raw.close();
    }
  });

  it('HPACK bomb: a small block that decodes past the header list bound is not served', async () => {
    const before = requests();
    const raw = new RawH2Client(proxy.port);
    try {
      // one 3,000-byte field into the dynamic table (literal with incremental indexing), then it is
      // referenced 1,000 times by index 62 (one byte each): ~3 MB decoded from ~4 KB
      const name = Buffer.from('x-bomb');
      const value = Buffer.alloc(3_000, 0x61);
      const insert = Buffer.concat([Buffer.from([0x40, name.length]), name, Buffer.from([0x7f, 3_000 - 127 - 128 * 22, 22]), value]);
      const block = Buffer.concat([headerBlock([[':method', 'GET'], [':scheme', 'http'], [':authority', 'app'], [':path', '/']]), insert, Buffer.alloc(1_000, 0x80 | 62)]);
      raw.write(frame(FRAME.headers, FLAG.endHeaders | FLAG.endStream, 1, block));
      await until('refused', () => raw.resetCode(1) !== undefined || raw.goawayCode() !== undefined || raw.closed || undefined, 5_000);
      assert.equal(raw.answered(1), false);
      assert.equal(requests(), before);
    } finally {
      raw.close();
    }
  });

  for (const [name, one] of [
    ['SETTINGS', settingsFrame([[C.NGHTTP2_SETTINGS_ENABLE_PUSH, 0]])],
    ['PING', frame(FRAME.ping, 0, 0, Buffer.alloc(8, 7))],
  ] as const) {
    it(`${name} flood: thousands of frames whose ACKs pile up close the session`, async () => {
      const raw = new RawH2Client(proxy.port);
      try {
        raw.socket.pause(); // read nothing: every ACK stays queued on the proxy's side
        for (let i = 0; i < 20 && !raw.socket.destroyed; i++) raw.write(Buffer.concat(Array.from({ length: 2_000 }, () => one)));
        raw.socket.resume();
        await until('session ended', ended(raw), 10_000);
      } finally {
        raw.close();
      }
    });
  }

  it('empty DATA flood: zero-length DATA frames count as invalid frames and close the session', async () => {
    const raw = new RawH2Client(proxy.port);
    try {
      raw.write(Buffer.concat([
        frame(FRAME.headers, FLAG.endHeaders, 1, headerBlock([[':method', 'POST'], [':scheme', 'http'], [':authority', 'app'], [':path', '/sleep/3000']])),
        ...Array.from({ length: 500 }, () => frame(FRAME.data, 0, 1)),
      ]));
      await until('session ended', ended(raw), 5_000);
    } finally {
      raw.close();
    }
  });

  it('streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused, however many come', async () => {
    // before the client acknowledged our SETTINGS: REFUSED_STREAM, counted against maxRejectedStreams
    const atStart = requests();
    const raw = new RawH2Client(proxy.port);
    try {
      let id = 1;
      for (let i = 0; i < 8; i++, id += 2) raw.write(requestHeaders(id, 'app', '/sleep/3000'));
      raw.write(requestHeaders(id, 'app', '/sleep/3000'));
      await until('the ninth refused', () => raw.resetCode(id), 5_000);
      assert.equal(raw.resetCode(id), C.NGHTTP2_REFUSED_STREAM);
      const extra: number[] = [];
      for (let i = 0; i < 40; i++) { id += 2; extra.push(id); raw.write(requestHeaders(id, 'app', '/sleep/3000')); }
      await until('every extra stream refused', () => extra.every((x) => raw.resetCode(x) === C.NGHTTP2_REFUSED_STREAM) || undefined, 5_000);
      await until('the 8 admitted reach the server', () => requests() - atStart >= 8 || undefined, 5_000);
      assert.equal(requests() - atStart, 8, 'refused streams reach no server');
    } finally {
      raw.close();
    }
  });

  it('zero window: a response the client never lets through is reset after the stall timeout', async () => {
    const raw = new RawH2Client(proxy.port);
    try {
      raw.write(settingsFrame([[C.NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0]]));
      raw.write(requestHeaders(1, 'big', '/'));
      await until('answer head', () => raw.answered(1) || undefined, 5_000);
      const started = Date.now();
      await until('stream reset', () => raw.resetCode(1), 5_000);
      assert.equal(raw.resetCode(1), C.NGHTTP2_CANCEL);
      assert.ok(Date.now() - started >= 200, 'not before the stall timeout');
      assert.equal(raw.frames.filter((f) => f.type === FRAME.data && f.streamId === 1 && f.payload.length > 0).length, 0);
    } finally {
      raw.close();
    }
  });

  it("a stream's request body is bounded: 413 past the limit", async () => {
    const session = await h2connect(`http://127.0.0.1:${proxy.port}`);
    try {
      const ok = await h2request(session, { ':method': 'POST', ':path': '/upload', ':authority': 'app' }, 'x'.repeat(900));
      assert.equal(ok.status, 200);
      const over = await h2request(session, { ':method': 'POST', ':path': '/upload', ':authority': 'app' }, 'x'.repeat(5_000)).catch((err: Error) => err);
      assert.ok(!(over instanceof Error), `answered: ${String(over)}`);
      assert.equal(over.status, 413);
    } finally {
      session.close();
    }
  });
});
