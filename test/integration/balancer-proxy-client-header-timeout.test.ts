// --client-header-timeout on every engine: a request head that trickles in (slowloris) is answered
// 408 client_header_timeout and closed once it is not complete within the limit of its first byte;
// a slow head that does complete in time is served; an idle keep-alive connection is bounded by its
// own keep-alive timeout, and the head clock of its next request starts at that request's first byte.
// No timed upper bound (the machine may be busy): a trickle that never pauses as long as the limit is
// cut by the head clock or not at all (an idle clock would never fire), and the 408 names that clock.
// The slow head that must be served trickles for ~600 ms against a limit of its own, 10 s, and sends its
// last bytes by the clock, not after a count of timer ticks: at load 9 the ticks of a 600 ms trickle
// summed past a 1 s limit (408), and the proxy shares this process's event loop, so a stalled loop
// runs the expired head timer before it reads the bytes that arrived meanwhile.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

const HEADER_MS = 1_000;
// keep-alive far above the idle pauses below, so a late timer cannot turn a pause into a keep-alive close
const TIMEOUTS = { connectMs: 1_000, headersMs: 5_000, idleMs: 5_000, clientKeepAliveMs: 30_000, clientHeaderMs: HEADER_MS };
/** the limit of the proxy that serves the slow head: far above the ~600 ms it trickles */
const SERVED_HEADER_MS = 10_000;
/** liveness bound of a wait for an answer (a busy machine), not a speed target */
const ANSWER_BOUND_MS = 20_000;

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

interface Trickle {
  stop(): void;
  readonly firstByteAt: number;
  /** the longest pause between two writes so far (ms): a busy machine may stretch the ticks */
  readonly maxGapMs: number;
  /** when the last byte of a finite head went out (undefined while some is left) */
  readonly completedAt: number | undefined;
}

/**
 * Writes `head` one byte per `everyMs`; an `endless` head goes on with one more header byte forever.
 * `completeWithinMs`: once that long has passed since the first byte (by the clock, not by ticks),
 * the rest of the head goes out in one write.
 */
function trickle(socket: net.Socket, head: string, everyMs: number, endless: boolean, completeWithinMs = Infinity): Trickle {
  let i = 0;
  const firstByteAt = Date.now();
  let lastWriteAt = firstByteAt;
  let maxGapMs = 0;
  let completedAt: number | undefined;
  const write = (bytes: string) => {
    const now = Date.now();
    maxGapMs = Math.max(maxGapMs, now - lastWriteAt);
    lastWriteAt = now;
    socket.write(bytes);
  };
  socket.write(head[i++]);
  const timer = setInterval(() => {
    if (socket.destroyed) { clearInterval(timer); return; }
    if (i < head.length && Date.now() - firstByteAt >= completeWithinMs) { write(head.slice(i)); i = head.length; }
    else if (i < head.length) write(head[i++]);
    else if (endless) write('a');
    if (i >= head.length && !endless) { completedAt ??= Date.now(); clearInterval(timer); }
  }, everyMs);
  return { stop: () => clearInterval(timer), firstByteAt, get maxGapMs() { return maxGapMs; }, get completedAt() { return completedAt; } };
}

/** The trickle kept writing more often than the limit: only a clock from the first byte can have cut it. */
function assertNeverIdle(t: Trickle): void {
  assert.ok(t.maxGapMs < HEADER_MS, `the trickle paused ${t.maxGapMs} ms (limit ${HEADER_MS} ms): an idle clock could have cut it`);
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
  let patient: RunningProxy;

  before(async () => {
    [backend] = await startBackends(1, 'h');
    proxy = await startProxy({ ...engineOptions(engine), timeouts: TIMEOUTS });
    patient = await startProxy({ ...engineOptions(engine), timeouts: { ...TIMEOUTS, clientHeaderMs: SERVED_HEADER_MS } });
    patient.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backend.spec()]) }, []));
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [backend.spec()]) }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await patient.runtime.close();
    await backend.kill();
  });

  it('a trickled head is answered 408 and closed within the limit of its first byte, and reaches no server', { timeout: 30_000 }, async () => {
    const before = backend.requests;
    const c = await rawClient(proxy.port);
    // one byte every 50 ms: the socket is never idle, the head never ends
    const t = trickle(c.socket, 'GET / HTTP/1.1\r\nHost: web\r\nX-Slow: ', 50, true);
    try {
      // a liveness bound: without a head clock the trickle would go on for ever
      const closedAt = await withTimeout('trickled head cut', c.closed, ANSWER_BOUND_MS);
      const took = closedAt - t.firstByteAt;
      assert408(c.text());
      assertNeverIdle(t);
      assert.ok(took >= HEADER_MS - 100, `cut ${took} ms after its first byte, before the limit (${HEADER_MS} ms)`);
      assert.equal(backend.requests, before, 'the trickled request never reached the server');
    } finally {
      t.stop();
      c.socket.destroy();
    }
  });

  it('a slow head that completes within the limit is served', { timeout: 30_000 }, async () => {
    const c = await rawClient(patient.port);
    const head = 'GET /slow HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n';
    // a piece every ~12 ms, the rest at once 600 ms after the first byte, however late the ticks come
    const t = trickle(c.socket, head, Math.floor(600 / head.length), false, 600);
    try {
      await withTimeout('slow head answered', c.closed, ANSWER_BOUND_MS);
      assert.match(c.text(), /^HTTP\/1\.1 200 /, `${c.text()} (head sent over ${String((t.completedAt ?? NaN) - t.firstByteAt)} ms, limit ${SERVED_HEADER_MS} ms)`);
      assert.ok(answeredBy(c.text(), 'h0'), c.text());
    } finally {
      t.stop();
      c.socket.destroy();
    }
  });

  it('an idle keep-alive connection outlives the header limit; its next head is timed from its own first byte', { timeout: 45_000 }, async () => {
    const c = await rawClient(proxy.port);
    try {
      c.socket.write('GET /one HTTP/1.1\r\nHost: web\r\n\r\n');
      await until('first answer', () => answeredBy(c.text(), 'h0'), ANSWER_BOUND_MS);
      assert.match(c.text(), /^HTTP\/1\.1 200 /, c.text());
      const answered = c.text().length;
      // idle for 1.5x the header limit (keep-alive is 30 s): still open, then a second request is served
      const idleUntil = Date.now() + 1.5 * HEADER_MS;
      await until('idle period', () => Date.now() >= idleUntil || c.socket.destroyed, ANSWER_BOUND_MS);
      assert.equal(c.socket.destroyed, false, 'the idle keep-alive connection was closed by the header limit');
      c.socket.write('GET /two HTTP/1.1\r\nHost: web\r\n\r\n');
      await until('second answer', () => answeredBy(c.text().slice(answered), 'h0'), ANSWER_BOUND_MS);
      assert.match(c.text().slice(answered), /^HTTP\/1\.1 200 /, c.text());
      // a third head trickles in after another idle pause: cut from its first byte, not from the last answer
      const idle2 = Date.now() + HEADER_MS / 2;
      await until('second idle period', () => Date.now() >= idle2, ANSWER_BOUND_MS);
      const before = c.text().length;
      const t = trickle(c.socket, 'GET /three HTTP/1.1\r\nHost: web\r\nX-Slow: ', 50, true);
      try {
        const closedAt = await withTimeout('trickled third head cut', c.closed, ANSWER_BOUND_MS);
        const took = closedAt - t.firstByteAt;
        assert408(c.text().slice(before));
        assertNeverIdle(t);
        assert.ok(took >= HEADER_MS - 100, `cut ${took} ms after its first byte, before the limit (${HEADER_MS} ms)`);
      } finally {
        t.stop();
      }
    } finally {
      c.socket.destroy();
    }
  });
});
