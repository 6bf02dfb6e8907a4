// One wire vector per error class of the HTTP/1.1 codec (every `HPE_*` code balancer/src/http1
// raises) at every point it can be raised: request head, request body (chunked; after a
// Content-Length body), request trailers, upstream response head and body. Latin1 strings.
// balancer-proxy-parser-errors feeds each to both engines; its coverage check fails when http1/
// gains a code without a row here (or in UNREACHABLE_CODES, with why).

export type ErrorPoint = 'request-head' | 'request-body-chunked' | 'request-after-cl-body' | 'request-trailers' | 'upstream-head' | 'upstream-body';

/**
 * A status (then the close); 'cut' = the answer had begun when the body broke, the connection is
 * cut; `accepted` = that engine's parser takes the input, forwards it and relays the upstream's
 * answer (the undici engine is node:http + llhttp: what it accepts is llhttp's and node's call,
 * documented in README's engine comparison), with why.
 */
export type Expected = number | 'cut' | { readonly accepted: string };

export interface ParserErrorVector {
  readonly name: string;
  readonly point: ErrorPoint;
  /** the code the native parser must raise for it (checked on the pure parser first) */
  readonly code: string;
  /** what the client sends */
  readonly request: string;
  /** what the raw upstream answers (upstream points; otherwise a plain 200) */
  readonly upstream?: string;
  /** every status the client gets, in order, when it is not just the one of `expect` */
  readonly sequence?: { readonly native: readonly number[]; readonly undici: readonly number[]; readonly why: string };
  /** the client's last answer per engine */
  readonly expect: { readonly native: Expected; readonly undici: Expected };
}

const H = 'Host: web\r\n';
const get = (extra: string) => `GET / HTTP/1.1\r\n${H}${extra}\r\n`;
const post = (framing: string, body: string) => `POST / HTTP/1.1\r\n${H}${framing}\r\n${body}`;
const chunked = (body: string) => post('Transfer-Encoding: chunked\r\n', body);
const both = (status: number | 'cut') => ({ native: status, undici: status });

/** codes no wire input can reach: each with why */
export const UNREACHABLE_CODES: Readonly<Record<string, string>> = {
  HPE_INTERNAL: 'an impossible decoder state (a bug guard), or a parser used before start(): no byte sequence reaches it',
};

export const PARSER_ERROR_VECTORS: readonly ParserErrorVector[] = [
  // request head
  { name: 'invalid method', point: 'request-head', code: 'HPE_INVALID_METHOD', request: `G@T / HTTP/1.1\r\n${H}\r\n`, expect: both(400) },
  { name: 'invalid request-target', point: 'request-head', code: 'HPE_INVALID_URL', request: `GET /a\x7fb HTTP/1.1\r\n${H}\r\n`, expect: both(400) },
  { name: 'invalid version', point: 'request-head', code: 'HPE_INVALID_VERSION', request: `GET / HTTP/1.x\r\n${H}\r\n`, expect: { native: 505, undici: 400 } },
  { name: 'unsupported version', point: 'request-head', code: 'HPE_INVALID_VERSION', request: `GET / HTTP/2.0\r\n${H}\r\n`, expect: { native: 505, undici: { accepted: 'llhttp takes any HTTP/<digit>.<digit>' } } },
  { name: 'request-target too long', point: 'request-head', code: 'HPE_URI_TOO_LONG', request: `GET /${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n`, expect: { native: 414, undici: { accepted: 'node:http has no request-target limit, only the 16 KB head' } } },
  { name: 'head too large', point: 'request-head', code: 'HPE_HEADER_OVERFLOW', request: get(`X-Big: ${'b'.repeat(20_000)}\r\n`), expect: both(431) },
  { name: 'too many fields', point: 'request-head', code: 'HPE_HEADER_OVERFLOW', request: get(Array.from({ length: 120 }, (_, i) => `X-F${i}: v\r\n`).join('')), expect: { native: 431, undici: { accepted: 'node:http counts no fields (maxHeadersCount only trims what it hands on)' } } },
  { name: 'bare LF ending a header line', point: 'request-head', code: 'HPE_LF_EXPECTED', request: get('X-A: a\nX-B: b\r\n'), expect: both(400) },
  { name: 'bare CR in a header value', point: 'request-head', code: 'HPE_CR_EXPECTED', request: get('X-A: a\rb\r\n'), expect: both(400) },
  { name: 'obs-fold', point: 'request-head', code: 'HPE_OBS_FOLD', request: get('X-A: a\r\n b\r\n'), expect: both(400) },
  { name: 'space before the colon', point: 'request-head', code: 'HPE_INVALID_HEADER_TOKEN', request: get('X-A : a\r\n'), expect: both(400) },
  { name: 'NUL in a header value', point: 'request-head', code: 'HPE_INVALID_HEADER_TOKEN', request: get('X-A: a\0b\r\n'), expect: both(400) },
  { name: 'header line without a colon', point: 'request-head', code: 'HPE_INVALID_HEADER_TOKEN', request: get('X-A\r\n'), expect: both(400) },
  { name: 'two Host fields', point: 'request-head', code: 'HPE_INVALID_HOST', request: `GET / HTTP/1.1\r\n${H}Host: other\r\n\r\n`, expect: { native: 400, undici: { accepted: 'node:http keeps the first Host and drops the second' } } },
  { name: 'invalid Content-Length', point: 'request-head', code: 'HPE_INVALID_CONTENT_LENGTH', request: post('Content-Length: 5x\r\n', 'hello'), expect: both(400) },
  { name: 'unknown transfer coding', point: 'request-head', code: 'HPE_INVALID_TRANSFER_ENCODING', request: post('Transfer-Encoding: gzip\r\n', 'hello'), expect: both(400) },
  { name: 'Content-Length with chunked', point: 'request-head', code: 'HPE_UNEXPECTED_CONTENT_LENGTH', request: post('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), expect: both(400) },
  { name: 'unknown expectation', point: 'request-head', code: 'HPE_INVALID_EXPECT', request: get('Expect: teapot\r\n'), expect: { native: 417, undici: 417 } },
  { name: 'double space in the request line', point: 'request-head', code: 'HPE_INVALID_URL', request: `GET  / HTTP/1.1\r\n${H}\r\n`, expect: { native: 400, undici: { accepted: 'llhttp skips repeated spaces in the request line' } } },
  // request body, chunked
  { name: 'chunk size not hex', point: 'request-body-chunked', code: 'HPE_INVALID_CHUNK_SIZE', request: chunked('zz\r\nhello\r\n0\r\n\r\n'), expect: both(400) },
  { name: 'chunk size overflow', point: 'request-body-chunked', code: 'HPE_INVALID_CHUNK_SIZE', request: chunked('fffffffffffffffff\r\nhello\r\n0\r\n\r\n'), expect: both(400) },
  { name: 'chunk-size line too long', point: 'request-body-chunked', code: 'HPE_CHUNK_EXTENSIONS_OVERFLOW', request: chunked(`5;x=${'e'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`), expect: { native: 400, undici: { accepted: 'node:http allows 16 KB of chunk extensions' } } },
  { name: 'no CRLF after chunk data', point: 'request-body-chunked', code: 'HPE_STRICT', request: chunked('5\r\nhelloXX\r\n0\r\n\r\n'), expect: both(400) },
  // request: bytes after a Content-Length body are the next request
  { name: 'garbage after a Content-Length body', point: 'request-after-cl-body', code: 'HPE_INVALID_METHOD', request: `${post('Content-Length: 5\r\n', 'hello')}\x01\x02 junk\r\n\r\n`, expect: both(400),
    sequence: { native: [200, 400], undici: [400], why: 'node:http parses the whole read at once: its refusal of the second ends the connection before the first one is answered' } },
  // request trailers
  { name: 'Content-Length in the trailers', point: 'request-trailers', code: 'HPE_INVALID_CONTENT_LENGTH', request: chunked('5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n'), expect: both(400) },
  { name: 'trailer section too large', point: 'request-trailers', code: 'HPE_HEADER_OVERFLOW', request: chunked(`5\r\nhello\r\n0\r\nX-T: ${'t'.repeat(20_000)}\r\n\r\n`), expect: both(431) },
  { name: 'bare LF after the last chunk', point: 'request-trailers', code: 'HPE_STRICT', request: chunked('5\r\nhello\r\n0\r\n\n'), expect: both(400) },
  // upstream response head
  { name: 'upstream: invalid status line', point: 'upstream-head', code: 'HPE_INVALID_RESPONSE', request: get(''), upstream: 'HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n', expect: both(502) },
  { name: 'upstream: head too large', point: 'upstream-head', code: 'HPE_HEADER_OVERFLOW', request: get(''), upstream: `HTTP/1.1 200 OK\r\nX-Big: ${'b'.repeat(70_000)}\r\ncontent-length: 0\r\n\r\n`, expect: both(502) },
  { name: 'upstream: closed inside the head', point: 'upstream-head', code: 'HPE_INCOMPLETE', request: get(''), upstream: 'HTTP/1.1 200 OK\r\ncontent-le', expect: both(502) },
  { name: 'upstream: bare CR in a field', point: 'upstream-head', code: 'HPE_CR_EXPECTED', request: get(''), upstream: 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\ncontent-length: 0\r\n\r\n', expect: both(502) },
  { name: 'upstream: obs-fold', point: 'upstream-head', code: 'HPE_OBS_FOLD', request: get(''), upstream: 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\ncontent-length: 0\r\n\r\n', expect: both(502) },
  { name: 'upstream: invalid Content-Length', point: 'upstream-head', code: 'HPE_INVALID_RESPONSE', request: get(''), upstream: 'HTTP/1.1 200 OK\r\ncontent-length: 2x\r\n\r\nok', expect: both(502) },
  { name: 'upstream: bare LF', point: 'upstream-head', code: 'HPE_LF_EXPECTED', request: get(''), upstream: 'HTTP/1.1 200 OK\r\nX-A: a\nX-B: b\r\ncontent-length: 0\r\n\r\n', expect: both(502) },
  { name: 'upstream: unsupported version', point: 'upstream-head', code: 'HPE_INVALID_RESPONSE', request: get(''), upstream: 'HTTP/2.0 200 OK\r\ncontent-length: 2\r\n\r\nok', expect: { native: 502, undici: { accepted: 'llhttp takes any HTTP/<digit>.<digit> status line' } } },
  // upstream response body: the head went out, the cut connection is the only signal left
  { name: 'upstream: chunk size not hex', point: 'upstream-body', code: 'HPE_INVALID_CHUNK_SIZE', request: get(''), upstream: 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n', expect: both('cut') },
  { name: 'upstream: closed inside the body', point: 'upstream-body', code: 'HPE_INCOMPLETE', request: get(''), upstream: 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok', expect: both('cut') },
];
