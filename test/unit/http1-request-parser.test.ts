// The request parser as scenario tables: every framing rule the issue lists, each accepted or refused
// with the status a server answers; every case also parsed byte by byte (incremental parsing).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequests } from '../support/http1-collect.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const H = 'Host: a\r\n';

interface Refused { readonly name: string; readonly input: string; readonly status: number }

const REFUSED: readonly Refused[] = [
  { name: 'LF-only line ends', input: `GET / HTTP/1.1\nHost: a\n\n`, status: 400 },
  { name: 'bare CR in a value', input: `GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n`, status: 400 },
  { name: 'NUL in a value', input: `GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n`, status: 400 },
  { name: 'DEL in a value', input: `GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n`, status: 400 },
  { name: 'obs-fold', input: `GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n`, status: 400 },
  { name: 'space before the colon', input: `GET / HTTP/1.1\r\nHost : a\r\n\r\n`, status: 400 },
  { name: 'space in a header name', input: `GET / HTTP/1.1\r\n${H}X Y: 1\r\n\r\n`, status: 400 },
  { name: 'non-token header name', input: `GET / HTTP/1.1\r\n${H}X@Y: 1\r\n\r\n`, status: 400 },
  { name: 'empty header name', input: `GET / HTTP/1.1\r\n${H}: 1\r\n\r\n`, status: 400 },
  { name: 'two Content-Length, same value', input: `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx`, status: 400 },
  { name: 'two Content-Length, different', input: `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\nxx`, status: 400 },
  { name: 'Content-Length list', input: `POST / HTTP/1.1\r\n${H}Content-Length: 1, 1\r\n\r\nx`, status: 400 },
  { name: 'Content-Length with a sign', input: `POST / HTTP/1.1\r\n${H}Content-Length: +1\r\n\r\nx`, status: 400 },
  { name: 'Content-Length hex', input: `POST / HTTP/1.1\r\n${H}Content-Length: 0x1\r\n\r\nx`, status: 400 },
  { name: 'Content-Length inner space', input: `POST / HTTP/1.1\r\n${H}Content-Length: 1 1\r\n\r\nx`, status: 400 },
  { name: 'Content-Length + Transfer-Encoding', input: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'TE xchunked', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'TE chunked, identity', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'TE gzip, chunked', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'TE twice', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'TE in HTTP/1.0', input: `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunk size 2^64', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n`, status: 400 },
  { name: 'chunk size not hex', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nz\r\n`, status: 400 },
  { name: 'chunk size with a space', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunk without CRLF after data', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n`, status: 400 },
  { name: 'chunk size line LF only', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`, status: 400 },
  { name: 'missing Host in 1.1', input: `GET / HTTP/1.1\r\n\r\n`, status: 400 },
  { name: 'two Host headers', input: `GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`, status: 400 },
  { name: 'unknown method', input: `FOO / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'lower-case method', input: `get / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'CONNECT', input: `CONNECT a:443 HTTP/1.1\r\n${H}\r\n`, status: 501 },
  { name: 'two spaces in the request line', input: `GET  / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'HTTP/0.9 request', input: `GET /\r\n\r\n`, status: 400 },
  { name: 'HTTP/2 preface', input: `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, status: 400 },
  { name: 'HTTP/1.2', input: `GET / HTTP/1.2\r\n${H}\r\n`, status: 505 },
  { name: 'space in the target', input: `GET /a b HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'non-ASCII in the target', input: `GET /\xe9 HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'fragment in the target', input: `GET /a#b HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'relative target', input: `GET a HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'absolute-form with userinfo', input: `GET http://u@a/ HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: 'unsupported Expect', input: `GET / HTTP/1.1\r\n${H}Expect: magic\r\n\r\n`, status: 417 },
  { name: 'head over 16 KiB', input: `GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(17_000)}\r\n\r\n`, status: 431 },
  { name: '64 KiB header', input: `GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(65_536)}\r\n\r\n`, status: 431 },
  { name: 'target over 8 KiB', input: `GET /${'a'.repeat(9_000)} HTTP/1.1\r\n${H}\r\n`, status: 414 },
  { name: 'target over the head limit, line unfinished', input: `GET /${'a'.repeat(20_000)}`, status: 414 },
  { name: '101 header fields', input: `GET / HTTP/1.1\r\n${H}${Array.from({ length: 100 }, (_, i) => `X-${i}: 1\r\n`).join('')}\r\n`, status: 431 },
  { name: 'invalid trailer', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\nX : y\r\n\r\n`, status: 400 },
];

describe('http1 request parser: refusals', () => {
  for (const c of REFUSED) {
    it(`${c.name} -> ${c.status}`, () => {
      for (const step of [c.input.length, 1]) {
        const out = parseRequests(b(c.input), step);
        assert.equal(out.error?.status, c.status, `step ${step}: ${JSON.stringify(out.error)} ${JSON.stringify(out.requests.map((r) => r.head.target))}`);
      }
    });
  }
});

interface Accepted {
  readonly name: string;
  readonly input: string;
  readonly expect: readonly { method: string; target: string; body: string; keepAlive: boolean; headers?: readonly string[]; upgrade?: string; expectContinue?: boolean }[];
}

const ACCEPTED: readonly Accepted[] = [
  { name: 'simple GET', input: `GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n`, expect: [{ method: 'GET', target: '/x?y=1', body: '', keepAlive: true, headers: ['Host', 'a'] }] },
  { name: 'OWS trimmed, case kept', input: `GET / HTTP/1.1\r\nhOsT:   a \t\r\nX-E:\r\n\r\n`, expect: [{ method: 'GET', target: '/', body: '', keepAlive: true, headers: ['hOsT', 'a', 'X-E', ''] }] },
  { name: 'obs-text in a value', input: `GET / HTTP/1.1\r\n${H}X: caf\xe9\r\n\r\n`, expect: [{ method: 'GET', target: '/', body: '', keepAlive: true, headers: ['Host', 'a', 'X', 'caf\xe9'] }] },
  { name: 'Content-Length body', input: `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, expect: [{ method: 'POST', target: '/', body: 'hello', keepAlive: true }] },
  { name: 'Content-Length leading zeros', input: `POST / HTTP/1.1\r\n${H}Content-Length: 005\r\n\r\nhello`, expect: [{ method: 'POST', target: '/', body: 'hello', keepAlive: true }] },
  { name: 'chunked with extensions and trailers', input: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n5;a=b;c="d;\\"e"\r\nhello\r\n006\r\n world\r\n0;z\r\nT: 1\r\n\r\n`, expect: [{ method: 'POST', target: '/', body: 'hello world', keepAlive: true }] },
  { name: 'pipelined, in order', input: `GET /1 HTTP/1.1\r\n${H}\r\nPOST /2 HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, expect: [
    { method: 'GET', target: '/1', body: '', keepAlive: true }, { method: 'POST', target: '/2', body: 'ok', keepAlive: true }, { method: 'GET', target: '/3', body: '', keepAlive: false },
  ] },
  { name: 'HTTP/1.0 closes by default', input: `GET / HTTP/1.0\r\n\r\n`, expect: [{ method: 'GET', target: '/', body: '', keepAlive: false }] },
  { name: 'HTTP/1.0 keep-alive', input: `GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n`, expect: [{ method: 'GET', target: '/', body: '', keepAlive: true }] },
  { name: 'HTTP/1.1 Connection: close', input: `GET / HTTP/1.1\r\n${H}Connection: foo, close\r\n\r\n`, expect: [{ method: 'GET', target: '/', body: '', keepAlive: false }] },
  { name: 'Expect: 100-continue', input: `PUT / HTTP/1.1\r\n${H}Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nx`, expect: [{ method: 'PUT', target: '/', body: 'x', keepAlive: true, expectContinue: true }] },
  { name: 'Upgrade', input: `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n`, expect: [{ method: 'GET', target: '/ws', body: '', keepAlive: true, upgrade: 'websocket' }] },
  { name: 'Upgrade in HTTP/1.0 is ignored (RFC 9110 section 7.8)', input: `GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, expect: [{ method: 'GET', target: '/ws', body: '', keepAlive: false, upgrade: undefined }] },
  { name: 'absolute-form', input: `GET http://b:81/p?q HTTP/1.1\r\n${H}\r\n`, expect: [{ method: 'GET', target: 'http://b:81/p?q', body: '', keepAlive: true }] },
  { name: 'OPTIONS *', input: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, expect: [{ method: 'OPTIONS', target: '*', body: '', keepAlive: true }] },
];

describe('http1 request parser: accepted', () => {
  for (const c of ACCEPTED) {
    it(c.name, () => {
      for (const step of [c.input.length, 7, 1]) {
        const out = parseRequests(b(c.input), step);
        assert.equal(out.error, undefined, `step ${step}`);
        assert.equal(out.requests.length, c.expect.length, `step ${step}`);
        c.expect.forEach((e, i) => {
          const r = out.requests[i];
          assert.equal(r.head.method, e.method);
          assert.equal(r.head.target, e.target);
          assert.equal(r.body, e.body, `step ${step}`);
          assert.equal(r.head.keepAlive, e.keepAlive);
          if (e.headers) assert.deepEqual(r.head.rawHeaders, e.headers);
          if ('upgrade' in e) assert.equal(r.head.upgrade, e.upgrade);
          if (e.expectContinue !== undefined) assert.equal(r.head.expectContinue, e.expectContinue);
        });
        assert.equal(out.leftover, 0);
      }
    });
  }

  it('a head limit flag is honoured', () => {
    const input = b(`GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(3000)}\r\n\r\n`);
    assert.equal(parseRequests(input, input.length, { maxHeadBytes: 2048, maxHeaders: 100, maxTargetBytes: 1024 }).error?.status, 431);
    assert.equal(parseRequests(input, input.length, { maxHeadBytes: 4096, maxHeaders: 100, maxTargetBytes: 1024 }).error, undefined);
  });
});
