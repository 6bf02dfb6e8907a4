// --client-half-close, both engines, both values. A client that sends its request and then shuts down
// its write side (FIN, `shutdown(SHUT_WR)`, as `nc -N`, some load testers and one-shot HTTP/1.0 clients
// do) sends the same FIN as a client that went away, so which one it is is a policy:
// - answer (HAProxy without abortonclose): it gets its answer, pipelined requests included, then the
//   proxy closes; a FIN on an idle connection or halfway through a head closes at once;
// - abort (the default, as nginx's proxy_ignore_client_abort off): nothing is answered and the upstream
//   request is aborted at once (what balancer-proxy-streaming asserts of a client that leaves).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { ClientHalfClose } from '../../balancer/src/proxy/client-half-close.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';
import { until } from '../support/poll.js';
import { withTimeout } from '../support/raw-client.js';

/** Writes `request`, then FIN; everything received until the proxy closed. */
function sendThenShutdown(port: number, request: string): Promise<string> {
  return withTimeout('an answer and a close after the FIN', new Promise<string>((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    socket.on('connect', () => socket.end(request, 'latin1'));
    socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(got));
  }), 10_000);
}

const count = (text: string, re: RegExp) => (text.match(re) ?? []).length;

/** The body of one whole response (Content-Length, chunked or close-delimited); undefined if cut short. */
function bodyOf(response: string): string | undefined {
  const split = response.indexOf('\r\n\r\n');
  if (split < 0) return undefined;
  const head = response.slice(0, split).toLowerCase();
  const rest = response.slice(split + 4);
  if (/\r\ntransfer-encoding: chunked/.test(head)) {
    let body = '';
    let at = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol < 0) return undefined;
      const size = parseInt(rest.slice(at, eol), 16);
      if (size === 0) return rest.slice(eol + 2) === '\r\n' ? body : undefined;
      body += rest.slice(eol + 2, eol + 2 + size);
      at = eol + 4 + size;
    }
  }
  const length = /\r\ncontent-length: (\d+)/.exec(head);
  if (length !== null) return rest.length === Number(length[1]) ? rest : undefined;
  return rest;
}

function withProxy(engine: (typeof ENGINES)[number], clientHalfClose: ClientHalfClose | undefined) {
  const state = {} as { backends: Backend[]; proxy: RunningProxy };
  before(async () => {
    state.backends = await startBackends(1);
    // a long upstream header timeout: only the client's FIN may end a slow exchange early
    state.proxy = await startProxy({
      ...engineOptions(engine), ...(clientHalfClose ? { clientHalfClose } : {}),
      timeouts: { connectMs: 1_000, headersMs: 60_000, idleMs: 60_000, clientKeepAliveMs: 5_000 },
    });
    state.proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', [state.backends[0].spec()]) }, []));
  });
  after(async () => {
    await state.proxy.runtime.close();
    for (const b of state.backends) await b.kill();
  });
  return state;
}

for (const engine of ENGINES) describe(`balancer proxy: --client-half-close answer [${engine}]`, () => {
  const s = withProxy(engine, 'answer');

  it('GET then FIN: the answer, then the proxy closes', async () => {
    const got = await sendThenShutdown(s.proxy.port, 'GET /x HTTP/1.1\r\nHost: web\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 200 /, got);
    assert.equal(bodyOf(got), 'b0', got);
  });

  it('POST with a body then FIN: the answer', async () => {
    const got = await sendThenShutdown(s.proxy.port, 'POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello');
    assert.match(got, /^HTTP\/1\.1 200 /, got);
    assert.equal(bodyOf(got), '{"id":"b0","bytes":5}', got);
  });

  it('two pipelined requests then FIN: both answered, in order', async () => {
    const got = await sendThenShutdown(s.proxy.port, 'GET /1 HTTP/1.1\r\nHost: web\r\n\r\nGET /2 HTTP/1.1\r\nHost: web\r\n\r\n');
    assert.equal(count(got, /HTTP\/1\.1 200 /g), 2, got);
  });

  it('HTTP/1.0 then FIN: the answer', async () => {
    const got = await sendThenShutdown(s.proxy.port, 'GET /x HTTP/1.0\r\nHost: web\r\n\r\n');
    assert.match(got, /^HTTP\/1\.1 200 /, got);
    assert.equal(bodyOf(got), 'b0', got);
  });

  it('FIN on an idle connection or halfway through a head: closed, not held open', async () => {
    assert.equal(await sendThenShutdown(s.proxy.port, ''), '');
    const partial = await sendThenShutdown(s.proxy.port, 'GET /x HTTP/1.1\r\nHost: we');
    assert.doesNotMatch(partial, /HTTP\/1\.1 200 /, partial);
  });
});

for (const [engine, value] of ENGINES.flatMap((e) => [[e, 'abort'], [e, undefined]] as const)) describe(`balancer proxy: --client-half-close ${value ?? '(default)'} is abort [${engine}]`, () => {
  const s = withProxy(engine, value);

  it('GET then FIN: no answer, the connection closes and the upstream request is aborted at once', async () => {
    const b0 = s.backends[0];
    const abortedBefore = b0.aborted;
    const requestsBefore = b0.requests;
    // the backend would answer after 30 s, the proxy wait for it 60 s: an abort before means the FIN did it
    const answer = sendThenShutdown(s.proxy.port, 'GET /sleep/30000 HTTP/1.1\r\nHost: web\r\n\r\n');
    await until('the request reached the backend', () => b0.requests > requestsBefore, 10_000);
    await until('the backend saw the proxy go away', () => b0.aborted > abortedBefore, 10_000);
    assert.equal(await answer, '', 'nothing answered, the connection closed');
    const status = s.proxy.runtime.status()[0].servers[0];
    assert.equal(status.status, 'ok', 'a client leaving is not the server\'s fault');
  });
});
