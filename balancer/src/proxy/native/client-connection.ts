// The `native` engine's connection manager: one per client socket. Bytes go through the codec's
// RequestParser; each request becomes a NativeRequest (the exchange layer's ClientExchange and the
// BodySource of its body); answers are framed here (Content-Length kept, chunked when unknown for
// HTTP/1.1, close-delimited for HTTP/1.0). One request at a time: the parser pauses after each
// message, so pipelined requests are answered in order. Upgrades leave for the tunnel after the head.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type net from 'node:net';
import type { Http1Error } from '../../http1/errors.js';
import type { Http1Limits } from '../../http1/limits.js';
import { RequestParser, type RequestHead, type RequestParserEvents } from '../../http1/request-parser.js';
import { serializeLastChunk, serializeResponseHead, simpleResponse } from '../../http1/serialize.js';
import { contentLengthOf } from '../headers.js';
import { handleProxyRequest } from '../proxy-exchange.js';
import type { ProxyContext } from '../proxy-context.js';
import type { BodySink, BodySource, ClientEvents, ClientExchange } from '../transport.js';
import { clientOriginOf, type ClientOrigin } from '../client-origin.js';
import type { DeadlineSweep, Expiring } from '../deadline-sweep.js';
import { writeChunk } from './chunk-write.js';
import { attachSocket, detachSocket, type SocketEvents } from './socket-events.js';

export interface ClientConnectionOptions {
  readonly limits: Http1Limits;
  /** idle keep-alive connections close after this */
  readonly keepAliveMs: number;
  /** a request head must be complete within this long of its first byte (--client-header-timeout) */
  readonly headMs: number;
}

export interface ClientConnectionOwner {
  /** the connection's clock: it is a member from construction until forget() */
  readonly sweep: DeadlineSweep;
  forget(conn: ClientConnection): void;
  /** the connection asked for an upgrade: the tunnel takes the socket from here */
  upgrade(req: IncomingMessage, socket: net.Socket, early: Buffer): void;
}

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);
/** answers up to this size leave as one buffer with their head */
const SMALL_BODY_BYTES = 16 * 1024;


function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    const prev = out[k];
    if (prev === undefined) out[k] = raw[i + 1];
    else if (k === 'set-cookie') out[k] = Array.isArray(prev) ? [...prev, raw[i + 1]] : [prev, raw[i + 1]];
    else out[k] = `${prev as string}, ${raw[i + 1]}`;
  }
  return out as IncomingHttpHeaders;
}

/** One request on a native client connection. */
export class NativeRequest implements ClientExchange, BodySource {
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: readonly string[];
  readonly body: BodySource | null;
  #headers: IncomingHttpHeaders | undefined;
  events: ClientEvents | undefined;
  headersSent = false;
  statusCode = 0;
  /** response framing */
  #chunked = false;
  #bodiless = false;
  #pendingHead: string | undefined;
  responseDone = false;
  /** see takeOver() */
  #takenOver = false;
  // ---- body source ----
  #sink: BodySink | undefined;
  consumed = false;
  failed = false;
  bodyEnded: boolean;

  constructor(readonly conn: ClientConnection, readonly head: RequestHead) {
    this.method = head.method;
    this.target = head.target;
    this.rawHeaders = head.rawHeaders;
    const hasBody = head.chunked || head.contentLength > 0;
    this.body = hasBody ? this : null;
    this.bodyEnded = !hasBody;
  }

  get headers(): IncomingHttpHeaders {
    return (this.#headers ??= headersObject(this.rawHeaders));
  }
  get origin(): ClientOrigin { return this.conn.origin; }
  get encrypted(): boolean { return (this.conn.socket as { encrypted?: boolean }).encrypted === true; }
  get localPort(): number { return this.conn.socket.localPort ?? 0; }

  attach(events: ClientEvents): void {
    this.events = events;
  }

  // ---- BodySource ----
  setSink(sink: BodySink): void {
    this.#sink = sink;
    // the exchange wants the body: now is the time to tell a waiting client to send it
    if (this.head.expectContinue && !this.headersSent) this.conn.socket.write(CONTINUE);
  }
  pause(): void { this.conn.pauseReading(); }
  resume(): void { this.conn.resumeReading(); }

  /** the answer is out: body bytes still coming are read and thrown away */
  dropBody(): void {
    this.#sink = undefined;
  }

  bodyData(chunk: Buffer): void {
    if (this.#sink === undefined) { this.conn.bodyDropped(); return; } // nobody wants it (answered without an upstream)
    this.consumed = true;
    if (!this.#sink.onBodyData(chunk)) this.conn.pauseReading();
  }
  bodyEnd(): void {
    this.bodyEnded = true;
    this.#sink?.onBodyEnd();
  }
  bodyFail(err: Error): void {
    if (this.bodyEnded || this.failed) return;
    this.failed = true;
    this.#sink?.onBodyError(err);
  }

  // ---- response sink ----
  writeHead(status: number, reason: string | undefined, headers: readonly string[]): void {
    if (this.#takenOver) return;
    if (this.headersSent) throw new Error('response head already written');
    const conn = this.conn;
    let framing = '';
    this.#bodiless = this.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    const length = contentLengthOf(headers);
    let keepAlive = conn.keepAliveAfter(this);
    if (!this.#bodiless && length < 0) {
      if (this.head.versionMinor === 1) { this.#chunked = true; framing = 'transfer-encoding: chunked\r\n'; } else keepAlive = false;
    }
    if (!keepAlive) conn.closeAfterResponse = true;
    let hasConnection = false;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i].length === 10 && headers[i].toLowerCase() === 'connection') {
        hasConnection = true;
        // the exchange closes on purpose (draining, a body it will not read)
        if (headers[i + 1].toLowerCase() === 'close') conn.closeAfterResponse = true;
      }
    }
    if (!hasConnection) {
      if (!keepAlive) framing += 'connection: close\r\n';
      else if (this.head.versionMinor === 0) framing += 'connection: keep-alive\r\n';
    }
    this.#pendingHead = serializeResponseHead(status, reason, headers, framing);
    this.headersSent = true;
    this.statusCode = status;
  }

  writeInformational(status: number, reason: string | undefined, headers: readonly string[]): void {
    // HTTP/1.0 clients get no 1xx (RFC 9110 section 15.2); never after the final head
    if (this.headersSent || this.head.versionMinor === 0 || status < 102 || status > 199) return;
    const socket = this.conn.socket;
    if (!socket.destroyed) socket.write(serializeResponseHead(status, reason, headers, ''), 'latin1');
  }

  write(chunk: Buffer): boolean {
    const socket = this.conn.socket;
    if (this.responseDone || socket.destroyed) return true;
    const head = this.#pendingHead;
    if (head !== undefined) {
      this.#pendingHead = undefined;
      socket.cork();
      socket.write(head, 'latin1');
      const ok = this.#writeBody(chunk);
      socket.uncork();
      return ok && !socket.writableNeedDrain;
    }
    return this.#writeBody(chunk);
  }

  #writeBody(chunk: Buffer): boolean {
    const socket = this.conn.socket;
    if (this.#bodiless || chunk.length === 0) return true;
    if (this.#chunked) return writeChunk(socket, chunk);
    return socket.write(chunk);
  }

  end(chunk?: Buffer, trailers?: readonly string[]): void {
    if (this.responseDone) return;
    const socket = this.conn.socket;
    if (!socket.destroyed) {
      const head = this.#pendingHead;
      if (head !== undefined && chunk !== undefined && !this.#chunked && !this.#bodiless && chunk.length <= SMALL_BODY_BYTES) {
        // the common small answer: head and body in one buffer, one plain write (no writev)
        this.#pendingHead = undefined;
        const out = Buffer.allocUnsafe(head.length + chunk.length);
        out.write(head, 0, 'latin1');
        chunk.copy(out, head.length);
        socket.write(out);
        this.responseDone = true;
        this.conn.responseEnded(this);
        return;
      }
      socket.cork();
      if (head !== undefined) { this.#pendingHead = undefined; socket.write(head, 'latin1'); }
      if (chunk !== undefined) this.#writeBody(chunk);
      if (this.#chunked) socket.write(serializeLastChunk(trailers), 'latin1');
      socket.uncork();
    }
    this.responseDone = true;
    this.conn.responseEnded(this);
  }

  destroy(): void {
    if (this.#takenOver) return;
    this.responseDone = true;
    this.conn.socket.destroy();
  }

  /**
   * The connection answers this request itself (a broken body): whatever the exchange still writes
   * is dropped, and it sees a response that was sent with `status`.
   */
  takeOver(status: number): void {
    this.#takenOver = true;
    this.headersSent = true;
    this.statusCode = status;
    this.responseDone = true;
  }
}

/**
 * What the connection's deadline means: idle between requests (close), a head being read (408),
 * a request in the exchange's hands (no deadline: the exchange has its own clocks), an answered
 * request whose body is still read and dropped (idle: close), ending (close unless still flushing).
 */
const enum Wait { Idle, Head, Exchange, Dropping, Ending }

export class ClientConnection implements RequestParserEvents, Expiring, SocketEvents {
  readonly #parser: RequestParser;
  deadline = 0;
  #wait = Wait.Idle;
  /** Ending: bytes still queued at the last look (progress moves the deadline) */
  #endingQueued = 0;
  current: NativeRequest | undefined;
  /** the client sent at least one byte (see closeIfIdle) */
  #spoken = false;
  #pending: Buffer | null = null;
  #readingPaused = false;
  closeAfterResponse = false;
  #upgradeHead: RequestHead | undefined;
  /** the upgrade head is complete: hand the socket over once execute() returned (bytes after the head are early data) */
  #upgradeReady = false;
  #closed = false;
  /** the parser refused the input: answered (or cut) once, the rest is ignored */
  #refused = false;
  /** --client-half-close answer, after the client's FIN: what it sent before is answered, then the connection ends */
  #clientEnded = false;

  /** decided once at accept, shared by every request on this connection */
  readonly origin: ClientOrigin;

  constructor(readonly socket: net.Socket, readonly ctx: ProxyContext, readonly owner: ClientConnectionOwner, readonly opts: ClientConnectionOptions) {
    this.origin = clientOriginOf(socket);
    this.#parser = new RequestParser(this, opts.limits);
    socket.setNoDelay(true);
    // answer: our side stays writable after the client's FIN (onEnd ends it once the answers are out);
    // abort: node ends it at the FIN, and the request's exchange is aborted when the socket closes
    socket.allowHalfOpen = ctx.clientHalfClose === 'answer';
    attachSocket(socket, this);
    // a new connection waits for its first byte as long as a head may take (nginx, node:http): closed silently
    this.deadline = ctx.now() + opts.headMs;
    owner.sweep.add(this);
  }

  /** between requests with nothing buffered: closing it loses nothing */
  get idle(): boolean {
    return this.current === undefined && this.#parser.idle && this.#pending === null;
  }

  onData(chunk: Buffer): void {
    this.#spoken = true;
    if (this.#pending !== null || this.#parser.paused) {
      // a request is being served: keep the bytes for later (reading is paused, so this stays small)
      this.#pending = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
      this.pauseReading();
      return;
    }
    this.#feed(chunk);
  }

  #feed(buf: Buffer): void {
    // the first byte of a head starts its clock (see after execute)
    const headStarts = this.current === undefined && this.#parser.idle;
    const n = this.#parser.execute(buf);
    if (n < 0) { this.#parseError(this.#parser.error); return; }
    if (this.#upgradeReady && this.#upgradeHead !== undefined) {
      // bytes after the upgrade head belong to the tunnel (held there until the server's 101)
      this.#pending = n < buf.length ? (this.#pending === null ? buf.subarray(n) : Buffer.concat([this.#pending, buf.subarray(n)])) : this.#pending;
      this.#startUpgrade(this.#upgradeHead);
      return;
    }
    if (n < buf.length) {
      this.#pending = buf.subarray(n);
      this.pauseReading();
    }
    if (headStarts && this.#wait !== Wait.Ending && this.current === undefined && !this.#parser.idle && !this.#parser.paused) {
      // a head that did not arrive in one piece: the whole of it must be here within headMs
      this.#wait = Wait.Head;
      this.deadline = this.ctx.now() + this.opts.headMs;
    }
  }

  onRequestHead(head: RequestHead): void {
    if (head.upgrade !== undefined) {
      this.#upgradeHead = head;
      if (head.chunked || head.contentLength > 0) this.#respondAndClose(400, 'bad_request', 'an upgrade request carries no body');
      return;
    }
    const req = new NativeRequest(this, head);
    this.current = req;
    this.#wait = Wait.Exchange;
    this.deadline = 0;
    try {
      handleProxyRequest(this.ctx, req);
    } catch (err) {
      // a bug must cost one request, not the worker
      this.ctx.log.error({ err, url: head.target }, 'proxy handler failed');
      if (!req.headersSent) {
        req.writeHead(500, undefined, ['content-type', 'application/json', 'content-length', '26', 'connection', 'close']);
        this.closeAfterResponse = true;
        req.end(Buffer.from('{"error":"internal_error"}'));
      } else req.destroy();
    }
  }

  onRequestBody(chunk: Buffer): void {
    this.current?.bodyData(chunk);
  }

  onRequestComplete(): void {
    const up = this.#upgradeHead;
    if (up !== undefined) { this.#upgradeReady = true; return; }
    const req = this.current;
    if (req === undefined) return;
    req.bodyEnd();
    // the answer may have ended before the body did
    if (req.responseDone) this.#next();
  }

  keepAliveAfter(req: NativeRequest): boolean {
    // after the client's FIN, only a pipelined request already here keeps it going
    return req.head.keepAlive && !this.ctx.draining && !this.closeAfterResponse && !this.#noMoreRequests;
  }

  /** the client sent its FIN and no byte of another request is buffered */
  get #noMoreRequests(): boolean {
    return this.#clientEnded && this.#pending === null;
  }

  responseEnded(req: NativeRequest): void {
    if (req !== this.current) return;
    // the whole message was read, or the connection ends anyway: on to the next one or close
    if (this.#parser.paused || this.closeAfterResponse) { this.#next(); return; }
    // still inside onRequestHead (onRequestComplete follows), or the answer came before the body
    // ended: the rest of the body is read and dropped, then the connection goes on (idle-bounded)
    if (!req.bodyEnded) {
      req.dropBody();
      this.bodyDropped();
      this.resumeReading();
    }
  }

  /** body bytes nobody wants: the connection is idle-bounded while they come */
  bodyDropped(): void {
    if (this.#wait === Wait.Ending) return;
    this.#wait = Wait.Dropping;
    this.deadline = this.ctx.now() + this.opts.keepAliveMs;
  }

  /** The current request is over: close, or go on with the next (possibly already buffered) one. */
  #next(): void {
    const req = this.current;
    this.current = undefined;
    if (req !== undefined && req.events !== undefined) req.events = undefined;
    if (this.closeAfterResponse || this.ctx.draining || (req !== undefined && !req.head.keepAlive) || this.#noMoreRequests) {
      this.#endSocket();
      return;
    }
    this.#parser.resume();
    this.#wait = Wait.Idle;
    this.deadline = this.ctx.now() + this.opts.keepAliveMs;
    const pending = this.#pending;
    this.#pending = null;
    if (pending !== null && pending.length > 0) this.#feed(pending);
    // after the FIN, bytes that made no whole request never will
    if (this.#clientEnded && this.current === undefined && !this.socket.writableEnded) { this.#endSocket(); return; }
    if (this.#pending === null && !this.#parser.paused) this.resumeReading();
  }

  pauseReading(): void {
    if (!this.#readingPaused) { this.#readingPaused = true; this.socket.pause(); }
  }

  resumeReading(): void {
    if (this.#readingPaused && this.#pending === null) { this.#readingPaused = false; this.socket.resume(); }
  }

  onDrain(): void {
    this.current?.events?.onClientDrain();
  }

  expire(now: number): void {
    switch (this.#wait) {
      case Wait.Exchange:
        this.deadline = 0; // the exchange has its own clocks
        return;
      case Wait.Head:
        this.#respondAndClose(408, 'client_header_timeout', 'request head not complete in time');
        return;
      case Wait.Ending: {
        // a client that never reads could hold a half-closed socket; one that reads slowly is let finish
        const queued = this.socket.writableLength;
        if (queued > 0 && queued < this.#endingQueued) {
          this.#endingQueued = queued;
          this.deadline = now + this.opts.keepAliveMs;
          return;
        }
        this.deadline = 0;
        this.socket.destroy();
        return;
      }
      default:
        this.deadline = 0;
        this.socket.destroy();
    }
  }

  onSocketError(): void {
    // 'close' follows
  }

  onEnd(): void {
    if (this.ctx.clientHalfClose === 'answer') { this.#answerAfterEnd(); return; }
    // abort: the client left; node ends our side too, and the close aborts the exchange
    this.closeAfterResponse = true;
    if (this.current === undefined) this.#endSocket();
    else if (!this.current.bodyEnded) this.current.bodyFail(Object.assign(new Error('client closed before the body ended'), { code: 'ECONNRESET' }));
  }

  /**
   * --client-half-close answer: the client sends no more; answer what it sent, pipelined requests
   * included, then close. 'end' comes only after every byte was read, so a request not begun yet never
   * will be; a body the FIN cut fails its request.
   */
  #answerAfterEnd(): void {
    this.#clientEnded = true;
    if (this.current === undefined) {
      if (!this.socket.writableEnded) this.#endSocket();
    } else if (!this.current.bodyEnded) {
      this.closeAfterResponse = true;
      this.current.bodyFail(Object.assign(new Error('client closed before the body ended'), { code: 'ECONNRESET' }));
    }
  }

  onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.deadline = 0;
    const req = this.current;
    this.current = undefined;
    if (req !== undefined) {
      req.bodyFail(Object.assign(new Error('client connection closed'), { code: 'ECONNRESET' }));
      if (!req.responseDone) req.events?.onClientClose();
    }
    this.owner.forget(this);
  }

  /**
   * Drain: close a keep-alive connection between requests. A connection that has not sent a byte yet
   * is left alone: its first request may be on the wire (closing it now resets that client); it is
   * answered with `Connection: close`, or ends by its head/keep-alive timer.
   */
  closeIfIdle(): void {
    if (this.idle && this.#spoken) this.#endSocket();
  }

  destroy(): void {
    this.socket.destroy();
  }

  #endSocket(): void {
    // already ended (a Connection: close answer, then the client's FIN): a second end() only builds an
    // ERR_STREAM_ALREADY_FINISHED with its stack (2.6 % of a TLS-handshake worker's busy time), and the
    // wait bound runs from the first end
    if (this.#wait === Wait.Ending) return;
    this.socket.end();
    this.#ending();
  }

  /** the last bytes are queued: bound the wait for the client to take them and close */
  #ending(): void {
    this.#wait = Wait.Ending;
    this.#endingQueued = this.socket.writableLength;
    this.deadline = this.ctx.now() + this.opts.keepAliveMs;
  }

  #parseError(err: Http1Error | undefined): void {
    // the parser stays failed: bytes after the refused ones change nothing
    if (this.#refused) return;
    this.#refused = true;
    const status = err?.status ?? 400;
    const code = status === 414 ? 'uri_too_long' : status === 431 ? 'headers_too_large' : status === 505 ? 'http_version_not_supported' : status === 501 ? 'not_implemented' : status === 417 ? 'expectation_failed' : 'bad_request';
    const req = this.current;
    if (req !== undefined) {
      // broken framing inside a body: the exchange hears it as a failed body (an upstream try is
      // aborted); the client is answered here and the connection ends (RFC 9112 section 7.1)
      this.closeAfterResponse = true;
      const answered = req.headersSent;
      if (!answered) req.takeOver(status);
      req.bodyFail(Object.assign(new Error(err?.reason ?? 'bad request body'), { code: err?.code ?? 'HPE_INVALID' }));
      // an answer under way cannot be finished honestly: cutting the connection is the signal left
      if (answered) this.socket.destroy();
      else this.#respondAndClose(status, code, err?.reason ?? 'bad request body');
      return;
    }
    this.#respondAndClose(status, code, err?.reason ?? 'bad request');
  }

  #respondAndClose(status: number, code: string, reason: string): void {
    this.closeAfterResponse = true;
    if (!this.socket.destroyed && this.socket.writable) this.socket.end(simpleResponse(status, 'application/json', JSON.stringify({ error: code, reason }), true), 'latin1');
    this.#ending();
  }

  #startUpgrade(head: RequestHead): void {
    const socket = this.socket;
    detachSocket(socket);
    this.#closed = true;
    this.deadline = 0;
    this.owner.forget(this);
    const early = this.#pending ?? EMPTY;
    this.#pending = null;
    if (this.#readingPaused) { this.#readingPaused = false; socket.resume(); }
    // the tunnel reads the head the way it reads node:http's IncomingMessage
    const req = { method: head.method, url: head.target, rawHeaders: head.rawHeaders, socket, get headers() { return headersObject(head.rawHeaders); } };
    this.owner.upgrade(req as unknown as IncomingMessage, socket, early);
  }
}
