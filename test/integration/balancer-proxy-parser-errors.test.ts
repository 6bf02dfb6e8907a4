// Every error class of the HTTP/1.1 codec at every point it can be raised (request head, chunked
// request body, after a Content-Length body, request trailers, upstream response head and body),
// against both engines through a raw upstream: each gets its answer (400/413/414/417/431/505 for
// the client's errors, 502 for the upstream's, a cut connection once an answer had begun) and the
// connection closes within a bound; nothing of a refused head reaches the upstream, no refused body
// reaches it whole. The table is test/support/parser-error-vectors.ts; the coverage check below
// reads the codes out of balancer/src/http1 so a new one without a row fails.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { RequestParser } from '../../balancer/src/http1/request-parser.js';
import { ResponseParser } from '../../balancer/src/http1/response-parser.js';
import type { Http1Error } from '../../balancer/src/http1/errors.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startProxy, upstreamSpec, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { withTimeout } from '../support/raw-client.js';
import { repoRoot } from '../support/repo-root.js';
import { PARSER_ERROR_VECTORS, UNREACHABLE_CODES, type ParserErrorVector } from '../support/parser-error-vectors.js';

const CLOSE_BOUND_MS = 10_000;

/** The code the native codec raises for a vector, on the pure parsers. */
function nativeError(v: ParserErrorVector): Http1Error | undefined {
  if (v.upstream !== undefined) {
    const p = new ResponseParser({ onInformational() {}, onResponseHead() {}, onResponseBody() {}, onResponseComplete() {} });
    p.start('GET');
    if (p.execute(Buffer.from(v.upstream, 'latin1')) >= 0) p.finish();
    return p.error;
  }
  const p: RequestParser = new RequestParser({ onRequestHead() {}, onRequestBody() {}, onRequestComplete() { p.resume(); } });
  return p.execute(Buffer.from(v.request, 'latin1')) < 0 ? p.error : undefined;
}

describe('parser error vectors', () => {
  it('cover every error code balancer/src/http1 raises (or say why a code is unreachable)', () => {
    const dir = path.join(repoRoot(), 'balancer', 'src', 'http1');
    const raised = new Set<string>();
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/'(HPE_[A-Z_]+)'/g)) raised.add(m[1]);
    }
    assert.ok(raised.size >= 15, `found the codes (${raised.size})`);
    const covered = new Set([...PARSER_ERROR_VECTORS.map((v) => v.code), ...Object.keys(UNREACHABLE_CODES)]);
    assert.deepEqual([...raised].filter((c) => !covered.has(c)).sort(), [], 'codes without a vector');
    assert.deepEqual([...covered].filter((c) => !raised.has(c)).sort(), [], 'vectors for codes http1 no longer raises');
  });

  for (const v of PARSER_ERROR_VECTORS) {
    it(`${v.point}: ${v.name} is ${v.code} on the native codec`, () => {
      assert.equal(nativeError(v)?.code, v.code);
    });
  }
});

interface RawUpstream {
  readonly port: number;
  /** bytes received on every connection, in order */
  received(): string;
  close(): Promise<void>;
}

/** Answers each request head with `answer(bytes so far)`, then ends the connection. */
async function rawUpstream(answer: () => string): Promise<RawUpstream> {
  let got = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let mine = '';
    let answered = false;
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      mine += c.toString('latin1');
      if (!answered && mine.includes('\r\n\r\n')) {
        answered = true;
        s.end(answer(), 'latin1');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => got,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** Sends the vector's request; everything received until the proxy closed, or until `done(got)` (bounded). */
function exchange(port: number, request: string, done: (got: string) => boolean = () => false): Promise<string> {
  return withTimeout('an answer and a close', new Promise<string>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('connect', () => socket.write(request, 'latin1'));
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (done(got)) { socket.destroy(); resolve(got); }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  }), CLOSE_BOUND_MS);
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

for (const engine of ENGINES) describe(`balancer proxy: every parser error class gets its answer and a close [${engine}]`, () => {
  let current: ParserErrorVector | undefined;
  let upstream: RawUpstream;
  let proxy: RunningProxy;

  before(async () => {
    upstream = await rawUpstream(() => current?.upstream ?? OK);
    proxy = await startProxy(engineOptions(engine));
    proxy.runtime.applyTable(tableFromUpstreams({
      web: upstreamSpec('web', [{ id: `127.0.0.1:${upstream.port}`, host: '127.0.0.1', port: upstream.port, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false }]),
    }, []));
  });
  after(async () => {
    await proxy.runtime.close();
    await upstream.close();
  });

  for (const v of PARSER_ERROR_VECTORS) {
    it(`${v.point}: ${v.name} (${v.code})`, async () => {
      current = v;
      const before = upstream.received().length;
      const want = v.expect[engine];
      const accepted = typeof want === 'object';
      // an accepted request is answered by the upstream and the connection stays open (keep-alive)
      const got = await exchange(proxy.port, v.request, accepted ? (text) => text.endsWith('\r\n\r\nok') : undefined);
      const seen = upstream.received().slice(before);
      const statuses = [...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      if (accepted) {
        // documented: this engine's parser takes it (the reason is in the vector); it is forwarded and answered
        assert.deepEqual(statuses, [200], `${want.accepted}: ${got.slice(0, 300)}`);
        assert.notEqual(seen, '', 'forwarded');
        return;
      }
      if (want === 'cut') {
        // the head went out before the body broke: a cut connection, no second answer
        assert.deepEqual(statuses, [200], got.slice(0, 300));
      } else {
        assert.equal(statuses.at(-1), want, got.slice(0, 300));
        assert.deepEqual(statuses, v.sequence?.[engine] ?? [want], `${v.sequence?.why ?? 'one answer'}: ${got.slice(0, 300)}`);
      }
      if (v.point === 'request-head') assert.equal(seen, '', 'a refused head reaches no upstream');
      if (v.point === 'request-body-chunked' || v.point === 'request-trailers') {
        assert.doesNotMatch(seen, /\r\n0\r\n(?:[^]*\r\n)?\r\n$/, 'a refused body never reaches the upstream whole');
      }
      if (v.point === 'request-after-cl-body') assert.doesNotMatch(seen, /junk/, 'the refused bytes reach no upstream');
    });
  }
});
