// Feed bytes to the codec's parsers and collect what they report, as plain data for assertions
// (scenario tables, the differential test against llhttp).
import { RequestParser, type RequestHead } from '../../balancer/src/http1/request-parser.js';
import { ResponseParser, type ResponseHead } from '../../balancer/src/http1/response-parser.js';
import type { Http1Limits } from '../../balancer/src/http1/limits.js';

export interface ParsedRequest {
  readonly head: RequestHead;
  readonly body: string;
}

export interface RequestOutcome {
  readonly requests: ParsedRequest[];
  /** status/code of a refusal, undefined when everything given was accepted */
  readonly error: { status: number; code: string; reason: string } | undefined;
  /** bytes left unparsed at the end (an incomplete message) */
  readonly leftover: number;
}

/** Parse `input` split into pieces of at most `step` bytes, resuming after each message as a connection does. */
export function parseRequests(input: Buffer, step = input.length || 1, limits?: Http1Limits): RequestOutcome {
  const requests: ParsedRequest[] = [];
  // a connection stops reading HTTP after a message that closes it or asks for an upgrade
  let stopped = false;
  let head: RequestHead | undefined;
  let body: Buffer[] = [];
  const parser = new RequestParser({
    onRequestHead(h) { head = h; body = []; },
    onRequestBody(c) { body.push(Buffer.from(c)); },
    onRequestComplete() {
      const h = head as RequestHead;
      requests.push({ head: h, body: Buffer.concat(body).toString('latin1') });
      if (!h.keepAlive || h.upgrade !== undefined) stopped = true;
      head = undefined;
    },
  }, limits);
  let rest: Buffer = Buffer.alloc(0);
  for (let off = 0; off < input.length || rest.length > 0;) {
    const piece = off < input.length ? input.subarray(off, Math.min(input.length, off + step)) : Buffer.alloc(0);
    off += piece.length;
    let data: Buffer = rest.length > 0 ? Buffer.concat([rest, piece]) : piece;
    rest = Buffer.alloc(0);
    for (let guard = 0; data.length > 0 && guard < 10_000; guard++) {
      const n = parser.execute(data);
      if (n < 0) return { requests, error: parser.error, leftover: 0 };
      if (parser.paused) {
        if (stopped) return { requests, error: undefined, leftover: data.length - n };
        parser.resume();
        data = data.subarray(n);
        continue;
      }
      data = data.subarray(n);
      if (n === 0) break;
    }
    rest = data;
    if (off >= input.length) break;
  }
  return { requests, error: undefined, leftover: parser.idle ? rest.length : -1 };
}

export interface ResponseOutcome {
  readonly informational: number[];
  readonly head: ResponseHead | undefined;
  readonly body: string;
  readonly trailers: string[] | undefined;
  readonly complete: boolean;
  readonly error: { status: number; code: string; reason: string } | undefined;
  readonly leftover: number;
}

/** One response to a request with `method`, `eof` true when the server closes after `input`. */
export function parseResponse(input: Buffer, method = 'GET', eof = false, step = input.length || 1): ResponseOutcome {
  const informational: number[] = [];
  let head: ResponseHead | undefined;
  const body: Buffer[] = [];
  let trailers: string[] | undefined;
  let complete = false;
  const parser = new ResponseParser({
    onInformational(s) { informational.push(s); },
    onResponseHead(h) { head = h; },
    onResponseBody(c) { body.push(Buffer.from(c)); },
    onResponseComplete(t) { trailers = t; complete = true; },
  });
  parser.start(method);
  let leftover = 0;
  for (let off = 0; off < input.length; off += step) {
    const piece = input.subarray(off, Math.min(input.length, off + step));
    const n = parser.execute(piece);
    if (n < 0) return { informational, head, body: '', trailers, complete, error: parser.error, leftover: 0 };
    if (parser.done) { leftover = input.length - off - n; break; }
  }
  if (eof && !parser.done && !parser.finish()) return { informational, head, body: Buffer.concat(body).toString('latin1'), trailers, complete, error: parser.error, leftover };
  return { informational, head, body: Buffer.concat(body).toString('latin1'), trailers, complete, error: undefined, leftover };
}
