// One HTTP/2 client stream as the exchange layer sees a request (transport.ts ClientExchange): the
// same router, policy, scripts, metrics and access log as an HTTP/1.1 request, picked per stream.
// The response head is held until the first body write or the end within the same tick, so an answer
// without a body (a gRPC trailers-only status, a 204) leaves as one HEADERS frame with END_STREAM.
// Flow control is node's: a paused request stream stops WINDOW_UPDATEs to the client; a response
// write that returns false waits for 'drain' (the client's window), and one stalled longer than
// limits.stallMs is reset: a client that never reads costs a timer, not an upstream stream.
import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import type { BodySink, BodySource, ClientEvents, ClientExchange } from '../transport.js';
import type { ClientOrigin } from '../client-origin.js';
import type { Http2RequestHead } from './request-head.js';
import { GRPC, grpcErrorHeaders, parseGrpcTimeout } from './grpc-status.js';
import type { Http2Limits } from './limits.js';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

/** Response fields HTTP/2 forbids (RFC 9113 section 8.2.2); an HTTP/1.1 upstream may send them. */
const NOT_ON_HTTP2 = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

export interface StreamFacts {
  readonly origin: ClientOrigin;
  readonly encrypted: boolean;
  readonly localPort: number;
}

export class BodyTooLargeError extends Error {
  readonly code = 'ERR_HTTP2_BODY_TOO_LARGE';
}

/** Flat header list -> node's header object (repeated names become arrays, names lower case). */
export function headerObject(flat: readonly string[], into: OutgoingHttpHeaders, skip?: ReadonlySet<string>): OutgoingHttpHeaders {
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i].toLowerCase();
    if (skip !== undefined && skip.has(name)) continue;
    const prev = into[name];
    if (prev === undefined) into[name] = flat[i + 1];
    else if (Array.isArray(prev)) prev.push(flat[i + 1]);
    else into[name] = [String(prev), flat[i + 1]];
  }
  return into;
}

export class Http2ClientExchange implements ClientExchange, BodySource {
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: string[];
  readonly origin: ClientOrigin;
  readonly encrypted: boolean;
  readonly localPort: number;
  readonly body: BodySource | null;
  readonly protocol: 'http2' | 'grpc';
  grpcStatus: number | undefined;
  headersSent = false;
  statusCode = 0;
  consumed = false;
  failed = false;
  /** the client reset the stream before the answer ended (the session's reset budget counts it) */
  resetByClient = false;
  readonly #stream: ServerHttp2Stream;
  readonly #limits: Http2Limits;
  readonly #acceptsTrailers: boolean;
  #headers: IncomingHttpHeaders | undefined;
  #events: ClientEvents | undefined;
  #sink: BodySink | undefined;
  #head: OutgoingHttpHeaders | undefined;
  #trailers: OutgoingHttpHeaders | undefined;
  #ended = false;
  #bodyEnded = false;
  #received = 0;
  #stallTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(stream: ServerHttp2Stream, head: Http2RequestHead, endStream: boolean, facts: StreamFacts, limits: Http2Limits) {
    this.#stream = stream;
    this.#limits = limits;
    this.method = head.method;
    this.target = head.target;
    this.rawHeaders = head.rawHeaders;
    this.origin = facts.origin;
    this.encrypted = facts.encrypted;
    this.localPort = facts.localPort;
    this.protocol = head.grpc ? 'grpc' : 'http2';
    this.#acceptsTrailers = head.acceptsTrailers;
    this.body = endStream ? null : this;
    if (endStream) this.#bodyEnded = true;
    stream.on('close', () => this.#onClose());
    stream.on('drain', () => {
      this.#clearStall();
      this.#events?.onClientDrain();
    });
    stream.on('wantTrailers', () => stream.sendTrailers(this.#trailers ?? {}));
    if (head.grpc) {
      const ms = parseGrpcTimeout(this.#header('grpc-timeout'));
      if (ms !== undefined) this.#deadlineTimer = setTimeout(() => this.#deadline(), Math.min(ms, 2_147_483_647));
    }
  }

  get headers(): IncomingHttpHeaders {
    if (this.#headers === undefined) {
      const h: IncomingHttpHeaders = {};
      for (let i = 0; i < this.rawHeaders.length; i += 2) {
        const name = this.rawHeaders[i];
        const prev = h[name];
        h[name] = prev === undefined ? this.rawHeaders[i + 1] : `${String(prev)}, ${this.rawHeaders[i + 1]}`;
      }
      this.#headers = h;
    }
    return this.#headers;
  }

  #header(name: string): string | undefined {
    for (let i = 0; i < this.rawHeaders.length; i += 2) if (this.rawHeaders[i] === name) return this.rawHeaders[i + 1];
    return undefined;
  }

  // ---- BodySource ----
  setSink(sink: BodySink): void {
    this.#sink = sink;
    const stream = this.#stream;
    stream.on('data', (chunk: Buffer) => {
      this.#received += chunk.length;
      const max = this.#limits.maxRequestBodyBytes;
      if (max > 0 && this.#received > max) { this.#bodyTooLarge(); return; }
      this.consumed = true;
      if (!sink.onBodyData(chunk)) stream.pause();
    });
    stream.on('end', () => {
      this.#bodyEnded = true;
      sink.onBodyEnd();
    });
  }

  pause(): void { this.#stream.pause(); }
  resume(): void { this.#stream.resume(); }

  #bodyTooLarge(): void {
    const sink = this.#sink;
    this.#sink = undefined;
    this.failed = true;
    this.#stream.removeAllListeners('data');
    this.#stream.pause();
    if (!this.headersSent) {
      if (this.protocol === 'grpc') this.writeHead(200, undefined, grpcErrorHeaders(GRPC.resourceExhausted, 'request body too large'));
      else this.writeHead(413, undefined, ['content-type', 'application/json', 'content-length', '29']);
      this.end(this.protocol === 'grpc' ? undefined : Buffer.from('{"error":"request_too_large"}'));
    }
    // the answer is out; RST_STREAM(NO_ERROR) tells the client to stop sending (RFC 9113 section 8.1)
    if (!this.#stream.closed) this.#stream.close(NGHTTP2_NO_ERROR);
    sink?.onBodyError(new BodyTooLargeError(`request body over ${this.#limits.maxRequestBodyBytes} bytes`));
  }

  // ---- response sink ----
  attach(events: ClientEvents): void {
    this.#events = events;
  }

  writeHead(status: number, _reason: string | undefined, headers: readonly string[]): void {
    if (this.headersSent) return;
    this.statusCode = status;
    this.headersSent = true;
    this.#head = headerObject(headers, { ':status': status }, NOT_ON_HTTP2);
    if (this.protocol === 'grpc') this.grpcStatus = grpcStatusField(this.#head['grpc-status']);
    process.nextTick(flushHead, this);
  }

  /** Sends the held head (from nextTick, or first write/end); false when the stream is gone. */
  flushHead(endStream: boolean): boolean {
    const head = this.#head;
    if (head === undefined) return !this.#stream.destroyed;
    this.#head = undefined;
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return false;
    try {
      stream.respond(head, endStream ? { endStream: true } : { waitForTrailers: this.#acceptsTrailers });
      return true;
    } catch {
      // a field node refuses for HTTP/2 (the upstream's bytes): the stream cannot carry this answer
      stream.close(NGHTTP2_INTERNAL_ERROR);
      return false;
    }
  }

  write(chunk: Buffer): boolean {
    if (this.#ended || !this.flushHead(false)) return true;
    const ok = this.#stream.write(chunk);
    if (!ok) this.#startStall();
    return ok;
  }

  end(chunk?: Buffer, trailers?: readonly string[]): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#clearDeadline();
    const stream = this.#stream;
    if (trailers !== undefined && trailers.length > 0 && this.#acceptsTrailers) {
      this.#trailers = headerObject(trailers, {}, NOT_ON_HTTP2);
      if (this.protocol === 'grpc') this.grpcStatus = grpcStatusField(this.#trailers['grpc-status']) ?? this.grpcStatus;
    }
    const empty = chunk === undefined || chunk.length === 0;
    if (this.#head !== undefined && empty && this.#trailers === undefined) {
      this.flushHead(true);
    } else {
      if (!this.flushHead(false)) return;
      if (empty) stream.end(); else stream.end(chunk);
    }
    // a request body the answer did not wait for: stop the client sending it (section 8.1)
    if (!this.#bodyEnded && !stream.closed) stream.once('finish', () => { if (!stream.closed) stream.close(NGHTTP2_NO_ERROR); });
  }

  destroy(): void {
    this.#ended = true;
    this.#clearDeadline();
    this.#clearStall();
    if (!this.#stream.closed) this.#stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  /** grpc-timeout passed: the client is told DEADLINE_EXCEEDED and the upstream call is cancelled. */
  #deadline(): void {
    this.#deadlineTimer = undefined;
    if (this.#ended) return;
    const status = ['grpc-status', String(GRPC.deadlineExceeded), 'grpc-message', 'deadline exceeded'];
    if (!this.headersSent) {
      this.writeHead(200, undefined, grpcErrorHeaders(GRPC.deadlineExceeded, 'deadline exceeded'));
      this.end();
    } else this.end(undefined, status);
    const events = this.#events;
    if (!this.#stream.closed) this.#stream.once('close', () => events?.onClientClose());
    else events?.onClientClose();
  }

  #startStall(): void {
    if (this.#stallTimer !== undefined || this.#limits.stallMs <= 0) return;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = undefined;
      // the client's window stayed shut: reset the stream (the exchange hears onClientClose)
      if (!this.#stream.closed) this.#stream.close(NGHTTP2_CANCEL);
    }, this.#limits.stallMs);
  }

  #clearStall(): void {
    if (this.#stallTimer !== undefined) { clearTimeout(this.#stallTimer); this.#stallTimer = undefined; }
  }

  #clearDeadline(): void {
    if (this.#deadlineTimer !== undefined) { clearTimeout(this.#deadlineTimer); this.#deadlineTimer = undefined; }
  }

  #onClose(): void {
    this.#clearStall();
    this.#clearDeadline();
    if (!this.#bodyEnded && !this.failed) {
      this.failed = true;
      this.#sink?.onBodyError(Object.assign(new Error('client stream closed before the request body ended'), { code: 'ERR_HTTP2_STREAM_CLOSED' }));
    }
    const wasOpen = !this.#ended;
    // closed with an error code before our answer ended: the client reset it (or never read it)
    if (wasOpen && this.#stream.rstCode !== NGHTTP2_NO_ERROR) this.resetByClient = true;
    this.#ended = true;
    if (wasOpen) this.#events?.onClientClose();
  }
}

/** A grpc-status field as a number (metrics); undefined when absent or not a decimal code. */
function grpcStatusField(v: OutgoingHttpHeaders[string]): number | undefined {
  const text = Array.isArray(v) ? v[0] : v;
  return typeof text === 'string' && /^\d{1,3}$/.test(text) ? Number(text) : typeof text === 'number' ? text : undefined;
}

function flushHead(x: Http2ClientExchange): void {
  x.flushHead(false);
}
