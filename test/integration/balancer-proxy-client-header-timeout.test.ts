// --client-header-timeout on every engine: a request head that trickles in (slowloris) is answered
// 408 client_header_timeout and closed once it is not complete within the limit of its first byte;
// a slow head that does complete in time is served; an idle keep-alive connection is bounded by its
// own keep-alive timeout, and the head clock of its next request starts at that request's first byte.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

const HEADER_MS = 1_000;
const TIMEOUTS = { connectMs: 1_000, headersMs: 5_000, idleMs: 5_000, clientKeepAliveMs: 5_000, clientHeaderMs: HEADER_MS };

interface RawClient {
  readonly socket: net.Socket;
  text(): string;
  /** Date.now() when the server closed the connection */
  readonly closed: Promise<number>;
}

async function rawClient(port: number): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1');
  let got = '';
  socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  return { socket, text: () => got, closed };
}

async function until(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function withTimeout<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}

/** Writes `head` one byte per `everyMs`; an `endless` head goes on with one more header byte forever. */
function trickle(socket: net.Socket, head: string, everyMs: number, endless: boolean): { stop(): void; firstByteAt: number } {
  let i = 0;
  const firstByteAt = Date.now();
  socket.write(head[i++]);
  const timer = setInterval(() => {
    if (socket.destroyed) { clearInterval(timer); return; }
    if (i < head.length) socket.write(head[i++]);
    else if (endless) socket.write('a');
    else clearInterval(timer);
  }, everyMs);
  return { stop: () => clearInterval(timer), firstByteAt };
}

/** a whole answer from backend `id` (it sends its id as a chunked body) */
function answeredBy(text: string, id: string): boolean {
  return text.includes(`x-backend-id: ${id}\r\n`) && text.endsWith(`\r\n${id}\r\n0\r\n\r\n`);
}

function assert408(text: string): void {
  assert.match(text, /^HTTP\/1\.1 408 /, text);
  assert.ok(text.includes('"error":"client_header_timeout"'), text);
  assert.match(text, /connection: close/i, text);
}

for (const engine of ENGINES) describe(`balancer proxy: client header timeout [${engine}]`, () => {
  let backend: Backend;
  let proxy: RunningProxy;

  before(async () => {
    [backend] = await startBackends(1, 'h');
    proxy = await startProxy({ ...engineOptions(engine), timeouts: TIMEOUTS });
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backend.spec()]) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await backend.kill();
  });

  it('a trickled head is answered 408 and closed within the limit of its first byte, and reaches no server', { timeout: 10_000 }, async () => {
    const before = backend.requests;
    const c = await rawClient(proxy.port);
    // one byte every 50 ms: the socket is never idle, the head never ends
    const t = trickle(c.socket, 'GET / HTTP/1.1\r\nHost: web\r\nX-Slow: ', 50, true);
    try {
      const closedAt = await withTimeout('trickled head cut', c.closed, 5_000);
      const took = closedAt - t.firstByteAt;
      assert408(c.text());
      assert.ok(took >= HEADER_MS - 100 && took < 3 * HEADER_MS, `cut ${took} ms after its first byte (limit ${HEADER_MS} ms)`);
      assert.equal(backend.requests, before, 'the trickled request never reached the server');
    } finally {
      t.stop();
      c.socket.destroy();
    }
  });

  it('a slow head that completes within the limit is served', { timeout: 10_000 }, async () => {
    const c = await rawClient(proxy.port);
    const head = 'GET /slow HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n';
    // the whole head in about 600 ms, a piece every ~12 ms
    const t = trickle(c.socket, head, Math.floor(600 / head.length), false);
    try {
      await withTimeout('slow head answered', c.closed, 5_000);
      assert.match(c.text(), /^HTTP\/1\.1 200 /, c.text());
      assert.ok(answeredBy(c.text(), 'h0'), c.text());
    } finally {
      t.stop();
      c.socket.destroy();
    }
  });

  it('an idle keep-alive connection outlives the header limit; its next head is timed from its own first byte', { timeout: 15_000 }, async () => {
    const c = await rawClient(proxy.port);
    try {
      c.socket.write('GET /one HTTP/1.1\r\nHost: web\r\n\r\n');
      await until('first answer', () => answeredBy(c.text(), 'h0'), 3_000);
      assert.match(c.text(), /^HTTP\/1\.1 200 /, c.text());
      const answered = c.text().length;
      // idle for 1.5x the header limit (keep-alive is 5 s): still open, then a second request is served
      const idleUntil = Date.now() + 1.5 * HEADER_MS;
      await until('idle period', () => Date.now() >= idleUntil || c.socket.destroyed, 3 * HEADER_MS);
      assert.equal(c.socket.destroyed, false, 'the idle keep-alive connection was closed by the header limit');
      c.socket.write('GET /two HTTP/1.1\r\nHost: web\r\n\r\n');
      await until('second answer', () => answeredBy(c.text().slice(answered), 'h0'), 3_000);
      assert.match(c.text().slice(answered), /^HTTP\/1\.1 200 /, c.text());
      // a third head trickles in after another idle pause: cut from its first byte, not from the last answer
      const idle2 = Date.now() + HEADER_MS / 2;
      await until('second idle period', () => Date.now() >= idle2, 2 * HEADER_MS);
      const before = c.text().length;
      const t = trickle(c.socket, 'GET /three HTTP/1.1\r\nHost: web\r\nX-Slow: ', 50, true);
      try {
        const closedAt = await withTimeout('trickled third head cut', c.closed, 5_000);
        const took = closedAt - t.firstByteAt;
        assert408(c.text().slice(before));
        assert.ok(took >= HEADER_MS - 100 && took < 3 * HEADER_MS, `cut ${took} ms after its first byte (limit ${HEADER_MS} ms)`);
      } finally {
        t.stop();
      }
    } finally {
      c.socket.destroy();
    }
  });
});
