// Incremental HTTP/1.1 request parser (RFC 9112), client side, no sockets: bytes in, one request at
// a time out. Strict: never accepts what llhttp's strict mode refuses (see the differential test).
// After each complete message the parser pauses; the connection resumes it once the answer is out,
// which answers pipelined requests in order and keeps unread bytes for the next request or a tunnel.
import { CR, LF, SP, TARGET, TCHAR } from './chars.js';
import { BodyFraming, type FramedBodySink } from './body-framing.js';
import { http1Error, type Http1Error } from './errors.js';
import { listTokens, nameIs, parseContentLength, parseFieldLines, type FieldsResult } from './fields.js';
import { DEFAULT_LIMITS, type Http1Limits } from './limits.js';

/** Methods llhttp knows (node's http.METHODS, minus CONNECT: this proxy does not tunnel CONNECT). */
const METHODS = new Set([
  'ACL', 'BIND', 'CHECKOUT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK', 'M-SEARCH', 'MERGE',
  'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MOVE', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST', 'PROPFIND', 'PROPPATCH',
  'PURGE', 'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE', 'TRACE', 'UNBIND', 'UNLINK',
  'UNLOCK', 'UNSUBSCRIBE',
]);

export interface RequestHead {
  readonly method: string;
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 */
  readonly versionMinor: number;
  /** flat [name, value, ...] as received (names keep their case, values OWS-trimmed) */
  readonly rawHeaders: string[];
  /** the connection may carry another request after this one */
  readonly keepAlive: boolean;
  /** Upgrade header value when Connection lists upgrade (lower-cased protocol list), else undefined (always for HTTP/1.0) */
  readonly upgrade: string | undefined;
  /** Expect: 100-continue */
  readonly expectContinue: boolean;
  /** -1 unless the body is Content-Length delimited */
  readonly contentLength: number;
  readonly chunked: boolean;
}

export interface RequestParserEvents {
  onRequestHead(head: RequestHead): void;
  /** a slice of the input buffer: copy it if it must outlive the call */
  onRequestBody(chunk: Buffer): void;
  /** the message ended; the parser is paused until resume() */
  onRequestComplete(): void;
}

const enum S { Head, Body, Paused, Failed }

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

export class RequestParser implements FramedBodySink {
  #state = S.Head;
  #pending: Buffer | null = null;
  readonly #body: BodyFraming;
  readonly #limits: Http1Limits;
  readonly #scratch: FieldsResult = { end: 0, error: undefined };
  error: Http1Error | undefined;
  /** bytes of a head received so far (0 between messages): the connection's "idle" test */
  get headBytesPending(): number {
    return this.#pending === null ? 0 : this.#pending.length;
  }

  constructor(readonly events: RequestParserEvents, limits: Http1Limits = DEFAULT_LIMITS) {
    this.#limits = limits;
    this.#body = new BodyFraming(limits.maxHeadBytes, limits.maxHeaders, 431);
  }

  get paused(): boolean {
    return this.#state === S.Paused;
  }

  /** between messages with nothing buffered: closing the connection now loses nothing */
  get idle(): boolean {
    return (this.#state === S.Head || this.#state === S.Paused) && this.#pending === null;
  }

  get inBody(): boolean {
    return this.#state === S.Body;
  }

  /** continue with the next message after onRequestComplete */
  resume(): void {
    if (this.#state === S.Paused) this.#state = S.Head;
  }

  /**
   * Parse from `buf`; returns how many bytes were used. Fewer than buf.length when the parser paused
   * (the rest belongs to the next message or a tunnel), -1 on an error (see `error`; close after answering).
   */
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
          if (off < 0) return this.#failWith(this.#body.error ?? http1Error(400, 'HPE_INTERNAL', 'chunked body'));
          if (this.#body.done) this.#complete();
          continue;
        case S.Paused:
          return off;
        default:
          return -1;
      }
    }
    return off;
  }

  onBody(chunk: Buffer): void {
    this.events.onRequestBody(chunk);
  }

  #complete(): void {
    this.#state = S.Paused;
    this.events.onRequestComplete();
  }

  #head(buf: Buffer, off: number): number {
    const prev = this.#pending;
    let data: Buffer;
    let base: number;
    let from: number;
    if (prev === null) {
      data = buf;
      base = off;
      from = off;
    } else {
      data = Buffer.concat([prev, buf.subarray(off)]);
      base = 0;
      from = Math.max(0, prev.length - 3);
    }
    const idx = data.indexOf(HEAD_END, from);
    if (idx < 0) {
      // a bare LF would never end a head the strict way: refuse it now instead of waiting for a limit
      for (let i = data.indexOf(LF, from); i >= 0; i = data.indexOf(LF, i + 1)) {
        if (i === base || data[i - 1] !== CR) return this.#fail(400, 'HPE_LF_EXPECTED', 'LF without CR');
      }
      const have = data.length - base;
      if (have > this.#limits.maxHeadBytes) {
        const firstLine = data.indexOf(LF, base);
        if (firstLine < 0 && have > this.#limits.maxTargetBytes) return this.#fail(414, 'HPE_URI_TOO_LONG', 'request-target too long');
        return this.#fail(431, 'HPE_HEADER_OVERFLOW', 'request head too large');
      }
      if (prev === null) {
        // an early refusal for a request line that is already too long or not HTTP at all
        const early = this.#checkPartialLine(data, base);
        if (early !== undefined) return this.#failWith(early);
      }
      this.#pending = Buffer.from(data.subarray(base));
      return buf.length;
    }
    const headLen = idx + 4 - base;
    if (headLen > this.#limits.maxHeadBytes) {
      const firstLine = data.indexOf(LF, base) - base;
      if (firstLine > this.#limits.maxTargetBytes) return this.#fail(414, 'HPE_URI_TOO_LONG', 'request-target too long');
      return this.#fail(431, 'HPE_HEADER_OVERFLOW', 'request head too large');
    }
    const head = data.toString('latin1', base, idx + 4);
    const used = prev === null ? idx + 4 : off + (idx + 4 - prev.length);
    this.#pending = null;
    const parsed = this.#parseHead(head);
    if (parsed === undefined) return -1;
    this.events.onRequestHead(parsed);
    if (parsed.chunked) {
      this.#body.startChunked();
      this.#state = S.Body;
    } else if (parsed.contentLength > 0) {
      this.#body.startLength(parsed.contentLength);
      this.#state = S.Body;
    } else {
      this.#complete();
    }
    return used;
  }

  /** A request line so long or so wrong that waiting for the rest is pointless. */
  #checkPartialLine(data: Buffer, base: number): Http1Error | undefined {
    const end = Math.min(data.length, base + 16);
    for (let i = base; i < end; i++) {
      const c = data[i];
      if (c === SP) return i === base ? http1Error(400, 'HPE_INVALID_METHOD', 'invalid method') : undefined;
      if (TCHAR[c] !== 1) return http1Error(400, 'HPE_INVALID_METHOD', 'invalid method');
    }
    return undefined;
  }

  #parseHead(head: string): RequestHead | undefined {
    // request-line = method SP request-target SP HTTP-version CRLF, single spaces
    const sp1 = head.indexOf(' ');
    const lineEnd = head.indexOf('\r');
    if (sp1 <= 0 || sp1 > lineEnd) return this.#failU(400, 'HPE_INVALID_METHOD', 'invalid request line');
    const method = head.slice(0, sp1);
    if (!METHODS.has(method)) {
      return this.#failU(method === 'CONNECT' ? 501 : 400, 'HPE_INVALID_METHOD', method === 'CONNECT' ? 'CONNECT is not supported' : 'unknown method');
    }
    const sp2 = head.indexOf(' ', sp1 + 1);
    if (sp2 < 0 || sp2 > lineEnd || sp2 === sp1 + 1) return this.#failU(400, 'HPE_INVALID_URL', 'invalid request line');
    if (sp2 - sp1 - 1 > this.#limits.maxTargetBytes) return this.#failU(414, 'HPE_URI_TOO_LONG', 'request-target too long');
    for (let i = sp1 + 1; i < sp2; i++) if (TARGET[head.charCodeAt(i)] !== 1) return this.#failU(400, 'HPE_INVALID_URL', 'invalid character in the request-target');
    const target = head.slice(sp1 + 1, sp2);
    const c0 = target.charCodeAt(0);
    // origin-form, absolute-form (http/https only), or asterisk-form for OPTIONS
    if (c0 !== 0x2f /* / */) {
      if (target === '*') {
        if (method !== 'OPTIONS') return this.#failU(400, 'HPE_INVALID_URL', 'asterisk-form is for OPTIONS only');
      } else if (!/^https?:\/\/[A-Za-z0-9._~:[\]-]+(?:[/?][^#]*)?$/i.test(target)) {
        return this.#failU(400, 'HPE_INVALID_URL', 'request-target is neither origin-form nor absolute-form');
      }
    }
    if (target.includes('#')) return this.#failU(400, 'HPE_INVALID_URL', 'fragment in the request-target');
    if (lineEnd - sp2 !== 9 || head.charCodeAt(lineEnd + 1) !== LF || !head.startsWith('HTTP/1.', sp2 + 1)) {
      if (/^HTTP\/\d\.\d$/.test(head.slice(sp2 + 1, lineEnd)) && head.charCodeAt(lineEnd + 1) === LF) {
        return this.#failU(505, 'HPE_INVALID_VERSION', 'HTTP version not supported');
      }
      return this.#failU(400, 'HPE_INVALID_VERSION', 'invalid HTTP version');
    }
    const minorChar = head.charCodeAt(sp2 + 8);
    if (minorChar !== 0x30 && minorChar !== 0x31) return this.#failU(505, 'HPE_INVALID_VERSION', 'HTTP version not supported');
    const versionMinor = minorChar - 0x30;

    const rawHeaders: string[] = [];
    const r = parseFieldLines(head, lineEnd + 2, rawHeaders, this.#limits.maxHeaders, 431, this.#scratch);
    if (r.error !== undefined) return this.#failWithU(r.error);
    if (r.end !== head.length) return this.#failU(400, 'HPE_INTERNAL', 'head parse ended early');

    let contentLength = -1;
    let chunked = false;
    let teSeen = false;
    let hosts = 0;
    let closeToken = false;
    let keepAliveToken = false;
    let connectionTab = false;
    let upgradeToken = false;
    let upgrade: string | undefined;
    let expectContinue = false;
    let tokens: string[] | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i];
      const value = rawHeaders[i + 1];
      switch (name.length) {
        case 4:
          if (nameIs(name, 'host')) hosts++;
          break;
        case 6:
          if (nameIs(name, 'expect')) {
            if (value.toLowerCase() !== '100-continue') return this.#failU(417, 'HPE_INVALID_EXPECT', 'unsupported expectation');
            expectContinue = versionMinor === 1;
          }
          break;
        case 7:
          if (nameIs(name, 'upgrade')) upgrade = upgrade === undefined ? value.toLowerCase() : `${upgrade}, ${value.toLowerCase()}`;
          break;
        case 10:
          if (nameIs(name, 'connection')) {
            // llhttp keeps an HTAB as part of a token: be the more careful of the two readings
            if (value.includes('\t')) connectionTab = true;
            tokens ??= [];
            tokens.length = 0;
            listTokens(value, tokens);
            for (const t of tokens) {
              if (t === 'close') closeToken = true;
              else if (t === 'keep-alive') keepAliveToken = true;
              else if (t === 'upgrade') upgradeToken = true;
            }
          }
          break;
        case 14:
          if (nameIs(name, 'content-length')) {
            if (contentLength !== -1) return this.#failU(400, 'HPE_UNEXPECTED_CONTENT_LENGTH', 'more than one Content-Length');
            contentLength = parseContentLength(value);
            if (contentLength < 0) return this.#failU(400, 'HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length');
          }
          break;
        case 17:
          if (nameIs(name, 'transfer-encoding')) {
            if (teSeen) return this.#failU(400, 'HPE_INVALID_TRANSFER_ENCODING', 'more than one Transfer-Encoding');
            teSeen = true;
            if (value.toLowerCase() !== 'chunked') return this.#failU(400, 'HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding other than chunked');
            chunked = true;
          }
          break;
        default:
          break;
      }
    }
    if (r.tabTrimmed === true && r.tabFields !== undefined) {
      // llhttp reads a trailing HTAB as part of a framing value and refuses it: so do we
      for (const i of r.tabFields) {
        const n = rawHeaders[i];
        if (nameIs(n, 'content-length') || nameIs(n, 'transfer-encoding')) return this.#failU(400, 'HPE_INVALID_CONTENT_LENGTH', `whitespace after the ${n} value`);
      }
    }
    if (teSeen && contentLength !== -1) return this.#failU(400, 'HPE_UNEXPECTED_CONTENT_LENGTH', 'Content-Length together with Transfer-Encoding');
    if (chunked && versionMinor === 0) return this.#failU(400, 'HPE_INVALID_TRANSFER_ENCODING', 'Transfer-Encoding in an HTTP/1.0 request');
    if (versionMinor === 1 && hosts !== 1) return this.#failU(400, 'HPE_INVALID_HOST', hosts === 0 ? 'missing Host' : 'more than one Host');
    if (hosts > 1) return this.#failU(400, 'HPE_INVALID_HOST', 'more than one Host');
    const keepAlive = closeToken ? false : versionMinor === 1 ? true : keepAliveToken && !connectionTab && r.tabTrimmed !== true;
    return {
      method, target, versionMinor, rawHeaders, keepAlive,
      // a server MUST ignore Upgrade in an HTTP/1.0 request (RFC 9110 section 7.8)
      upgrade: upgradeToken && upgrade !== undefined && versionMinor === 1 ? upgrade : undefined,
      expectContinue, contentLength: chunked ? -1 : contentLength, chunked,
    };
  }

  #fail(status: number, code: string, reason: string): number {
    return this.#failWith(http1Error(status, code, reason));
  }

  #failWith(err: Http1Error): number {
    this.error = err;
    this.#state = S.Failed;
    return -1;
  }

  #failU(status: number, code: string, reason: string): undefined {
    this.#failWith(http1Error(status, code, reason));
    return undefined;
  }

  #failWithU(err: Http1Error): undefined {
    this.#failWith(err);
    return undefined;
  }
}
