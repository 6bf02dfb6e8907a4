// Incremental HTTP/1.1 response parser (RFC 9112), upstream side, no sockets. The caller says which
// request method the answer belongs to (HEAD has no body). 1xx other than 101 are reported and
// skipped; 101 ends parsing (the rest is tunnel bytes); bodies are Content-Length, chunked (with
// trailers) or close-delimited (finish() at EOF). A broken answer is an error with status 502.
import { CR, LF, REASON } from './chars.js';
import { BodyFraming, type FramedBodySink } from './body-framing.js';
import { http1Error, type Http1Error } from './errors.js';
import { listTokens, nameIs, parseContentLength, parseFieldLines, type FieldsResult } from './fields.js';
import { DEFAULT_MAX_HEADERS, DEFAULT_MAX_RESPONSE_HEAD_BYTES } from './limits.js';

export interface ResponseHead {
  readonly status: number;
  readonly reason: string;
  readonly versionMinor: number;
  readonly rawHeaders: string[];
  /** the connection may carry another request after this answer */
  readonly keepAlive: boolean;
  /** -1 unless Content-Length delimited */
  readonly contentLength: number;
  readonly chunked: boolean;
  /** no body at all (HEAD, 1xx, 204, 304, Content-Length 0) */
  readonly bodiless: boolean;
  /** body runs until the server closes */
  readonly closeDelimited: boolean;
}

export interface ResponseParserEvents {
  /** a 1xx other than 101 (100 Continue, 103 Early Hints) */
  onInformational(status: number, reason: string, rawHeaders: string[]): void;
  onResponseHead(head: ResponseHead): void;
  onResponseBody(chunk: Buffer): void;
  /** trailers: flat list, empty when none */
  onResponseComplete(trailers: string[]): void;
}

const enum S { Idle, Head, Body, Done, Failed }
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

export class ResponseParser implements FramedBodySink {
  #state = S.Idle;
  #pending: Buffer | null = null;
  #isHead = false;
  readonly #body: BodyFraming;
  readonly #scratch: FieldsResult = { end: 0, error: undefined };
  readonly #maxHead: number;
  readonly #maxHeaders: number;
  error: Http1Error | undefined;

  constructor(readonly events: ResponseParserEvents, maxHeadBytes = DEFAULT_MAX_RESPONSE_HEAD_BYTES, maxHeaders = DEFAULT_MAX_HEADERS * 2) {
    this.#maxHead = maxHeadBytes;
    this.#maxHeaders = maxHeaders;
    this.#body = new BodyFraming(maxHeadBytes, maxHeaders, 502);
  }

  /** expect the answer to a request with this method */
  start(method: string): void {
    this.#isHead = method === 'HEAD';
    this.#state = S.Head;
    this.#pending = null;
    this.error = undefined;
  }

  /** the whole answer was parsed (or it was a 101: the rest is tunnel bytes) */
  get done(): boolean {
    return this.#state === S.Done;
  }

  /** nothing of an answer was seen yet */
  get untouched(): boolean {
    return this.#state === S.Head && this.#pending === null;
  }

  /** Parse from `buf`; returns bytes used (fewer once the answer is done), -1 on error. */
  execute(buf: Buffer): number {
    let off = 0;
    const len = buf.length;
    while (off < len) {
      switch (this.#state) {
        case S.Head:
          off = this.#head(buf, off);
          if (off < 0) return -1;
          continue;
        case S.Body:
          off = this.#body.execute(buf, off, this);
          if (off < 0) return this.#failWith(this.#body.error ?? http1Error(502, 'HPE_INTERNAL', 'chunked body'));
          if (this.#body.done) this.#complete(this.#body.trailers);
          continue;
        case S.Done:
          return off;
        default:
          return this.#fail(502, 'HPE_INTERNAL', 'response parser not started');
      }
    }
    return off;
  }

  /** The server closed: completes a close-delimited body; anything else unfinished is an error (false). */
  finish(): boolean {
    if (this.#state === S.Body && this.#body.untilClose) {
      this.#body.endOfInput();
      this.#complete([]);
      return true;
    }
    if (this.#state === S.Done) return true;
    this.#fail(502, 'HPE_INCOMPLETE', this.#state === S.Head ? 'connection closed before a complete response head' : 'connection closed inside the response body');
    return false;
  }

  onBody(chunk: Buffer): void {
    this.events.onResponseBody(chunk);
  }

  #complete(trailers: string[]): void {
    this.#state = S.Done;
    this.events.onResponseComplete(trailers);
  }

  #head(buf: Buffer, off: number): number {
    const prev = this.#pending;
    let data: Buffer;
    let base: number;
    let from: number;
    if (prev === null) { data = buf; base = off; from = off; } else {
      data = Buffer.concat([prev, buf.subarray(off)]);
      base = 0;
      from = Math.max(0, prev.length - 3);
    }
    const idx = data.indexOf(HEAD_END, from);
    if (idx < 0) {
      if (data.length - base > this.#maxHead) return this.#fail(502, 'HPE_HEADER_OVERFLOW', 'response head too large');
      this.#pending = Buffer.from(data.subarray(base));
      return buf.length;
    }
    if (idx + 4 - base > this.#maxHead) return this.#fail(502, 'HPE_HEADER_OVERFLOW', 'response head too large');
    const head = data.toString('latin1', base, idx + 4);
    const used = prev === null ? idx + 4 : off + (idx + 4 - prev.length);
    this.#pending = null;
    return this.#parseHead(head) ? used : -1;
  }

  #parseHead(head: string): boolean {
    // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
    const lineEnd = head.indexOf('\r');
    if (head.charCodeAt(lineEnd + 1) !== LF || !head.startsWith('HTTP/1.') || lineEnd < 12) return this.#bad('invalid status line');
    const minorChar = head.charCodeAt(7);
    if ((minorChar !== 0x30 && minorChar !== 0x31) || head.charCodeAt(8) !== 0x20) return this.#bad('invalid HTTP version in the status line');
    let status = 0;
    for (let i = 9; i < 12; i++) {
      const d = head.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) return this.#bad('invalid status code');
      status = status * 10 + d;
    }
    if (status < 100) return this.#bad('invalid status code');
    let reason = '';
    if (lineEnd > 12) {
      if (head.charCodeAt(12) !== 0x20) return this.#bad('invalid status line');
      for (let i = 13; i < lineEnd; i++) if (REASON[head.charCodeAt(i)] !== 1) return this.#bad('invalid character in the reason phrase');
      reason = head.slice(13, lineEnd);
    }
    const rawHeaders: string[] = [];
    const r = parseFieldLines(head, lineEnd + 2, rawHeaders, this.#maxHeaders, 502, this.#scratch);
    if (r.error !== undefined) return this.#failWith({ ...r.error, status: 502 }) === 0;
    const versionMinor = minorChar - 0x30;

    if (status >= 100 && status < 200 && status !== 101) {
      this.events.onInformational(status, reason, rawHeaders);
      // stay in Head: the final answer follows
      return true;
    }
    let contentLength = -1;
    let teSeen = false;
    let chunked = false;
    let closeToken = false;
    let keepAliveToken = false;
    let tokens: string[] | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i];
      const value = rawHeaders[i + 1];
      if (name.length === 14 && nameIs(name, 'content-length')) {
        const n = parseContentLength(value);
        if (n < 0 || (contentLength !== -1 && contentLength !== n)) return this.#bad('invalid or conflicting Content-Length');
        contentLength = n;
      } else if (name.length === 17 && nameIs(name, 'transfer-encoding')) {
        tokens ??= [];
        tokens.length = 0;
        listTokens(value, tokens);
        // the last coding must be chunked for a length we can find; others (gzip) are end-to-end here
        chunked = tokens.length > 0 && tokens[tokens.length - 1] === 'chunked';
        if (teSeen) return this.#bad('more than one Transfer-Encoding');
        teSeen = true;
      } else if (name.length === 10 && nameIs(name, 'connection')) {
        tokens ??= [];
        tokens.length = 0;
        listTokens(value, tokens);
        for (const t of tokens) {
          if (t === 'close') closeToken = true;
          else if (t === 'keep-alive') keepAliveToken = true;
        }
      }
    }
    if (teSeen && contentLength !== -1) return this.#bad('Content-Length together with Transfer-Encoding');
    const bodiless = this.#isHead || status === 101 || status === 204 || status === 304 || (!teSeen && contentLength === 0);
    const closeDelimited = !bodiless && !chunked && contentLength === -1;
    let keepAlive = closeToken ? false : versionMinor === 1 ? true : keepAliveToken;
    if (closeDelimited || status === 101) keepAlive = false;
    const parsed: ResponseHead = {
      status, reason, versionMinor, rawHeaders, keepAlive,
      contentLength: bodiless ? (contentLength === -1 ? -1 : contentLength) : contentLength, chunked: chunked && !bodiless, bodiless, closeDelimited,
    };
    this.events.onResponseHead(parsed);
    if (this.#state === S.Failed) return false;
    if (bodiless) this.#complete([]);
    else if (parsed.chunked) { this.#body.startChunked(); this.#state = S.Body; } else if (contentLength > 0) { this.#body.startLength(contentLength); this.#state = S.Body; } else { this.#body.startUntilClose(); this.#state = S.Body; }
    return true;
  }

  #bad(reason: string): boolean {
    this.#fail(502, 'HPE_INVALID_RESPONSE', reason);
    return false;
  }

  #fail(status: number, code: string, reason: string): number {
    return this.#failWith(http1Error(status, code, reason));
  }

  #failWith(err: Http1Error): number {
    this.error = err;
    this.#state = S.Failed;
    return -1;
  }
}
