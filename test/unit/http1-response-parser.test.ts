// The response parser as scenario tables: bodiless answers, close-delimited bodies, 1xx skipped,
// 101 stops, trailers kept, broken framing refused as 502.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseResponse } from '../support/http1-collect.js';
import { serializeLastChunk, serializeRequestHead, serializeResponseHead } from '../../balancer/src/http1/serialize.js';
import { parseRequests } from '../support/http1-collect.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('http1 response parser', () => {
  const cases: readonly { name: string; input: string; method?: string; eof?: boolean; status?: number; body?: string; keepAlive?: boolean; trailers?: string[]; leftover?: number; info?: number[]; error?: boolean }[] = [
    { name: 'Content-Length', input: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', status: 200, body: 'ok', keepAlive: true },
    { name: 'empty reason, no space', input: 'HTTP/1.1 204\r\n\r\n', status: 204, body: '', keepAlive: true },
    { name: 'HEAD has no body', input: 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', method: 'HEAD', status: 200, body: '', keepAlive: true },
    { name: '304 has no body', input: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n', status: 304, body: '' },
    { name: '204 with extra bytes after', input: 'HTTP/1.1 204 No Content\r\n\r\nxyz', status: 204, body: '', leftover: 3 },
    { name: '1xx skipped', input: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx', status: 200, body: 'x', info: [100, 103] },
    { name: '101 ends the parse', input: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00', status: 101, body: '', leftover: 2, keepAlive: false },
    { name: 'close-delimited', input: 'HTTP/1.1 200 OK\r\n\r\nuntil close', eof: true, status: 200, body: 'until close', keepAlive: false },
    { name: 'HTTP/1.0 closes', input: 'HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx', status: 200, body: 'x', keepAlive: false },
    { name: 'chunked with trailers', input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nServer-Timing: a\r\nX-Sum: 9\r\n\r\n', status: 200, body: 'abc', trailers: ['Server-Timing', 'a', 'X-Sum', '9'], keepAlive: true },
    { name: 'Connection: close', input: 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', status: 200, body: '', keepAlive: false },
    { name: 'CL + TE refused', input: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', error: true },
    { name: 'conflicting CL refused', input: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', error: true },
    { name: 'garbage status line', input: 'HTTP/1.1 2x0 OK\r\n\r\n', error: true },
    { name: 'header injection (bare LF) refused', input: 'HTTP/1.1 200 OK\r\nX: a\nSet-Cookie: x\r\n\r\n', error: true },
    { name: 'closed inside a Content-Length body', input: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', eof: true, error: true },
    { name: 'head over 64 KiB', input: `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}\r\n\r\n`, error: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      for (const step of [c.input.length, 1]) {
        const out = parseResponse(b(c.input), c.method ?? 'GET', c.eof ?? false, step);
        if (c.error) {
          assert.equal(out.error?.status, 502, `step ${step}`);
          continue;
        }
        assert.equal(out.error, undefined, `step ${step}: ${JSON.stringify(out.error)}`);
        assert.equal(out.complete, true, `step ${step}`);
        assert.equal(out.head?.status, c.status);
        assert.equal(out.body, c.body);
        if (c.keepAlive !== undefined) assert.equal(out.head?.keepAlive, c.keepAlive);
        if (c.trailers) assert.deepEqual(out.trailers, c.trailers);
        if (c.info) assert.deepEqual(out.informational, c.info);
        if (c.leftover !== undefined && step === c.input.length) assert.equal(out.leftover, c.leftover);
      }
    });
  }
});

describe('http1 serializers', () => {
  it('a serialized request head parses back to the same fields', () => {
    const head = serializeRequestHead('POST', '/p?q', ['Host', 'a', 'X-Forwarded-For', '1.2.3.4'], 'content-length: 2\r\n');
    const out = parseRequests(Buffer.concat([b(head), b('ok')]));
    assert.equal(out.error, undefined);
    assert.deepEqual(out.requests[0].head.rawHeaders, ['Host', 'a', 'X-Forwarded-For', '1.2.3.4', 'content-length', '2']);
    assert.equal(out.requests[0].body, 'ok');
  });
  it('response head and last chunk with trailers', () => {
    const head = serializeResponseHead(200, undefined, ['x', '1'], 'transfer-encoding: chunked\r\n');
    assert.equal(head, 'HTTP/1.1 200 OK\r\nx: 1\r\ntransfer-encoding: chunked\r\n\r\n');
    const out = parseResponse(b(`${head}2\r\nok\r\n${serializeLastChunk(['t', 'v'])}`));
    assert.equal(out.body, 'ok');
    assert.deepEqual(out.trailers, ['t', 'v']);
  });
});
