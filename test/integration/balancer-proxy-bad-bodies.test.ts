// Every refused request body is answered and its connection closed within a bounded time (RFC 9112
// section 7.1: a bad chunked body is a 400 and a close). Before this, the native engine's parse-error
// path returned without answering while the body was being buffered and the socket stayed open with
// no deadline. Every client-side timer is set far above the bound, so only an answer passes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { until } from '../support/raw-client.js';

/** an answer and a close within this long (every timer of the proxy is 60 s) */
const BOUND_MS = 5_000;
const CHUNKED_HEAD = 'POST /body HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n';

/** [name, the bad rest of a chunked body, expected status] (the 12 vectors of the desync review and neighbours) */
export const BAD_CHUNKED: readonly (readonly [string, string, number])[] = [
  ['chunk-size overflow', 'fffffffffffffffffff\r\nhello\r\n0\r\n\r\n', 400],
  ['hex prefix 0x5', '0x5\r\nhello\r\n0\r\n\r\n', 400],
  ['space after the size', '5 \r\nhello\r\n0\r\n\r\n', 400],
  ['negative size', '-5\r\nhello\r\n0\r\n\r\n', 400],
  ['empty size', '\r\nhello\r\n0\r\n\r\n', 400],
  ['bare LF in an extension', '5;ext\nhello\r\n0\r\n\r\n', 400],
  ['bare CR in an extension', '5;ext\rx\r\nhello\r\n0\r\n\r\n', 400],
  ['extension without a name', '5;\r\nhello\r\n0\r\n\r\n', 400],
  ['bare LF after data', '5\r\nhello\n0\r\n\r\n', 400],
  ['bare CR after data', '5\r\nhello\rx0\r\n\r\n', 400],
  ['too much data', '5\r\nhelloworld\r\n0\r\n\r\n', 400],
  ['Content-Length in trailers', '5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n', 400],
  ['Transfer-Encoding in trailers', '5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
  ['bad trailer line', '5\r\nhello\r\n0\r\nno colon here\r\n\r\n', 400],
  ['bare LF after the last chunk', '5\r\nhello\r\n0\r\n\n', 400],
  ['chunk-size line too long (beyond the 16 KiB of node:http too)', `5;${'a'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`, 400],
];

interface Answer { status: number; closedInMs: number }

/** Write the parts (a function part waits for a condition first); the answer's status and when the proxy closed. */
function send(port: number, parts: readonly (string | (() => Promise<void>))[]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    let lastWrite = Date.now();
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer and close within ${BOUND_MS} ms; got ${JSON.stringify(got.slice(0, 200))}`)); }, BOUND_MS + 2_000);
    socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0), closedInMs: Date.now() - lastWrite });
    });
    socket.on('connect', async () => {
      try {
        for (const part of parts) {
          if (typeof part === 'string') { if (!socket.destroyed) socket.write(part, 'latin1'); lastWrite = Date.now(); } else await part();
        }
      } catch (err) { socket.destroy(); reject(err as Error); }
    });
  });
}

for (const engine of ENGINES) describe(`balancer proxy: a refused request body is answered and closed [${engine}]`, () => {
  let backends: Backend[];
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(1);
    proxy = await startProxy({
      ...engineOptions(engine),
      timeouts: { connectMs: 1_000, headersMs: 60_000, idleMs: 60_000, clientKeepAliveMs: 60_000, clientHeaderMs: 60_000, clientBodyMs: 60_000, requestMs: 0 },
    });
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backends[0].spec()]) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('a bad chunked body sent with its head: 400 and a close', async () => {
    const wrong: string[] = [];
    for (const [name, body, status] of BAD_CHUNKED) {
      const a = await send(proxy.port, [CHUNKED_HEAD + body]);
      if (a.status !== status || a.closedInMs > BOUND_MS) wrong.push(`${name}: ${a.status} after ${a.closedInMs} ms`);
    }
    assert.deepEqual(wrong, []);
  });

  it('a bad chunked body after a first good chunk, while the body is buffered: 400 and a close', async () => {
    const wrong: string[] = [];
    for (const [name, body, status] of BAD_CHUNKED) {
      const a = await send(proxy.port, [`${CHUNKED_HEAD}3\r\nabc\r\n`, () => new Promise((r) => setImmediate(r)), body]);
      if (a.status !== status || a.closedInMs > BOUND_MS) wrong.push(`${name}: ${a.status} after ${a.closedInMs} ms`);
    }
    assert.deepEqual(wrong, []);
  });

  it('a bad chunked body while the body streams to the server: 400 and a close', async () => {
    const wrong: string[] = [];
    // more than the body gate holds (64 KiB): the request goes to the server before the body ended
    const big = 'x'.repeat(70_000);
    for (const [name, body, status] of BAD_CHUNKED.slice(0, 4)) {
      const seen = backends[0].requests;
      const a = await send(proxy.port, [`${CHUNKED_HEAD}${big.length.toString(16)}\r\n${big}\r\n`, () => until('the server got the request', () => backends[0].requests > seen, 5_000), body]);
      if (a.status !== status || a.closedInMs > BOUND_MS) wrong.push(`${name}: ${a.status} after ${a.closedInMs} ms`);
    }
    assert.deepEqual(wrong, []);
  });
});
