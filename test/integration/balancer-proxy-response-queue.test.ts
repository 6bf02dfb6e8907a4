// Response-queue poisoning (RFC 9112 section 6.3): an upstream that writes more than its answer in
// one chunk (a body on HEAD/204/304, bytes past its Content-Length) must not get its socket back in
// the pool, or the next client's request on it hears what the upstream wrote next. A raw upstream
// writes the poisoned bytes to the first request it gets and nothing more on that connection (the
// extra bytes were its "answer" to whatever comes next); every other request gets its own answer.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { RequestParser } from '../../balancer/src/http1/request-parser.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

const POISON = 'HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON';

/** [name, method of the first request, the upstream's whole first write] */
const POISONED: readonly (readonly [string, string, string])[] = [
  ['body on a 204', 'GET', `HTTP/1.1 204 No Content\r\n\r\n${POISON}`],
  ['body on a 304', 'GET', `HTTP/1.1 304 Not Modified\r\n\r\n${POISON}`],
  ['body on a HEAD answer', 'HEAD', `HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n${POISON}`],
  ['bytes past Content-Length', 'GET', `HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok${POISON}`],
  ['bytes past a chunked body', 'GET', `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n${POISON}`],
];

interface RawUpstream {
  readonly port: number;
  /** the next connection's first request gets this write (once) */
  arm(bytes: string): void;
  /** connections accepted so far */
  readonly accepted: number;
  close(): Promise<void>;
}

async function rawUpstream(): Promise<RawUpstream> {
  const sockets = new Set<net.Socket>();
  let armed: string | undefined;
  let accepted = 0;
  let served = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let poisoned = false;
    let rest: Buffer = Buffer.alloc(0);
    const parser = new RequestParser({ onRequestHead() {}, onRequestBody() {}, onRequestComplete() {} });
    socket.on('data', (chunk: Buffer) => {
      let data: Buffer = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
      for (let guard = 0; data.length > 0 && guard < 100; guard++) {
        const n = parser.execute(data);
        if (n < 0) { socket.destroy(); return; }
        data = data.subarray(n);
        if (!parser.paused) break;
        parser.resume();
        if (poisoned) continue; // it "answered" this one already
        if (armed !== undefined) { socket.write(armed, 'latin1'); armed = undefined; poisoned = true; continue; }
        const body = `own-${++served}`;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      }
      rest = Buffer.from(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    arm(bytes) { armed = bytes; },
    get accepted() { return accepted; },
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

for (const engine of ENGINES) describe(`balancer proxy: no response-queue poisoning across clients [${engine}]`, () => {
  let upstream: RawUpstream;
  let proxy: RunningProxy;

  before(async () => {
    upstream = await rawUpstream();
    // a short response-head timeout: a reused poisoned socket (the upstream stays silent) shows as a 504
    proxy = await startProxy({ ...engineOptions(engine), timeouts: { connectMs: 1_000, headersMs: 1_500, idleMs: 5_000, clientKeepAliveMs: 5_000 } });
    const server = { id: `127.0.0.1:${upstream.port}`, host: '127.0.0.1', port: upstream.port, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false };
    // no retries: a second try would hide a poisoned first one
    proxy.runtime.applyTable(tableFromUpstreams({ a: upstreamSpec('a', [server], { retry: { tries: 1, timeoutMs: 0, onStatuses: [], nonIdempotent: false } }) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await upstream.close();
  });

  for (const [name, method, bytes] of POISONED) {
    it(`${name}: the next client gets its own answer on a fresh upstream connection`, async () => {
      upstream.arm(bytes);
      const first = await proxy.fetch('a', '/first', { method });
      const acceptedBefore = upstream.accepted;
      assert.ok(first.status === 200 || first.status === 204 || first.status === 304, `first answer ${first.status}`);
      assert.ok(!first.text.includes('POISON'), `the first client got the extra bytes: ${JSON.stringify(first.text)}`);
      const second = await proxy.fetch('a', '/second');
      assert.equal(second.text.includes('POISON'), false, 'the second client got the upstream\'s extra bytes as its answer');
      assert.equal(second.status, 200, `second answer: ${second.status} ${second.text}`);
      assert.match(second.text, /^own-\d+$/);
      assert.ok(upstream.accepted > acceptedBefore, 'the poisoned connection was reused');
    });
  }
});
