// One keep-alive TCP connection to an upstream server, running one request at a time: head and a
// small body in one write (corked), body streamed with backpressure, the answer parsed by the codec
// and handed to the exchange's handler. Timeouts (connect, response head, body idle, keep-alive
// idle) are one deadline field on the transport's shared clock (deadline-sweep.ts), moved by field
// stores: no socket timer re-armed per request or refreshed per read and write.
import net from 'node:net';
import { ResponseParser, type ResponseHead, type ResponseParserEvents } from '../../http1/response-parser.js';
import { serializeRequestHead } from '../../http1/serialize.js';
import { contentLengthOf } from '../headers.js';
import { ERR, transportError, type BodySink, type UpstreamHandler, type UpstreamRequest } from '../transport.js';
import type { DeadlineSweep, Expiring } from '../deadline-sweep.js';
import { writeChunk } from './chunk-write.js';
import { attachSocket, type SocketEvents } from './socket-events.js';

export interface UpstreamConnectionOwner {
  /** the request finished; `reusable`: the socket may serve another one */
  release(conn: UpstreamConnection, reusable: boolean): void;
  /** the socket closed (idle or not) */
  closed(conn: UpstreamConnection): void;
  /** the clock of this owner's connections: each is a member from construction until its socket closed */
  readonly sweep: DeadlineSweep;
}

export interface UpstreamTimeouts {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  /** idle keep-alive socket lifetime */
  readonly keepAliveMs: number;
}

const enum Phase { Connecting, Idle, Sending, Receiving, Closed }

/**
 * Bytes a request body may queue on the socket before write() says wait. Node's 16 KiB default is
 * below one 64 KiB read of the client socket: every body chunk returned false, so the client socket
 * was paused and resumed (and a 'drain' emitted) per chunk even when the kernel took it at once.
 * Two reads' worth: a pause now means the server really reads slower than the client sends.
 */
const BODY_WRITE_HIGH_WATER = 128 * 1024;


export class UpstreamConnection implements ResponseParserEvents, BodySink, Expiring, SocketEvents {
  readonly socket: net.Socket;
  readonly #parser: ResponseParser;
  #phase = Phase.Connecting;
  #handler: UpstreamHandler | null = null;
  #request: UpstreamRequest | null = null;
  #chunkedBody = false;
  #bodyDone = true;
  #head: ResponseHead | null = null;
  #paused = false;
  #keepAlive = false;
  /** requests served on this socket */
  requests = 0;
  /** the idle pool may not hand it out any more */
  dead = false;
  readonly abortBound: (err?: Error) => void;
  readonly resumeBound: () => void;
  #queued: (() => void) | null = null;
  /** inside #parser.execute(): a completed answer waits in #completed until it returned */
  #executing = false;
  #completed: string[] | null = null;
  /** see Expiring: what it means follows the phase (connect, response head, body idle, keep-alive idle) */
  deadline: number;

  constructor(readonly owner: UpstreamConnectionOwner, host: string, port: number, readonly timeouts: UpstreamTimeouts, preamble?: Buffer) {
    this.#parser = new ResponseParser(this);
    this.abortBound = (err?: Error): void => this.abort(err);
    this.resumeBound = (): void => this.resumeResponse();
    // node passes these options on to the Duplex (net.createConnection docs); @types/node omits the field
    const options: net.NetConnectOpts & { writableHighWaterMark: number } = { host, port, noDelay: true, writableHighWaterMark: BODY_WRITE_HIGH_WATER };
    const socket = net.connect(options);
    this.socket = socket;
    if (preamble !== undefined) socket.write(preamble); // goes out first, once connected
    this.deadline = Date.now() + timeouts.connectMs;
    owner.sweep.add(this);
    attachSocket(socket, this);
    socket.once('connect', () => {
      if (this.#phase !== Phase.Connecting) return;
      this.#phase = Phase.Idle;
      const start = this.#queued;
      this.#queued = null;
      start?.();
    });
  }

  get busy(): boolean {
    return this.#handler !== null;
  }

  get connected(): boolean {
    return this.#phase !== Phase.Connecting && this.#phase !== Phase.Closed;
  }

  /** Run one request; the handler hears about it exactly once through onComplete or onError. */
  run(request: UpstreamRequest, handler: UpstreamHandler): void {
    this.#handler = handler;
    this.#request = request;
    this.requests++;
    handler.onConnect(this.abortBound);
    if (this.#handler === null) return; // aborted inside onConnect
    if (this.#phase === Phase.Connecting) this.#queued = () => this.#send();
    else this.#send();
  }

  #send(): void {
    const request = this.#request;
    if (request === null || this.#handler === null) return;
    const socket = this.socket;
    const body = request.body;
    let framing = '';
    this.#chunkedBody = false;
    if (body !== null && contentLengthOf(request.headers) < 0) {
      framing = 'transfer-encoding: chunked\r\n';
      this.#chunkedBody = true;
    }
    this.#phase = Phase.Sending;
    this.#parser.start(request.method);
    this.#head = null;
    // a response head within headersMs of the request (and of each body write while it streams)
    this.deadline = Date.now() + this.timeouts.headersMs;
    if (body === null) {
      this.#bodyDone = true;
      socket.write(serializeRequestHead(request.method, request.path, request.headers, framing), 'latin1');
      return;
    }
    // head and whatever body is already in hand leave in one write
    socket.cork();
    socket.write(serializeRequestHead(request.method, request.path, request.headers, framing), 'latin1');
    if (body !== null) {
      this.#bodyDone = false;
      body.setSink(this);
      body.resume();
    } else this.#bodyDone = true;
    socket.uncork();
  }

  // ---- request body (BodySink) ----
  onBodyData(chunk: Buffer): boolean {
    if (this.#handler === null || chunk.length === 0) return true;
    if (this.#head === null) this.deadline = Date.now() + this.timeouts.headersMs;
    if (this.#chunkedBody) return writeChunk(this.socket, chunk);
    return this.socket.write(chunk);
  }

  onBodyEnd(): void {
    this.#bodyDone = true;
    if (this.#handler !== null && this.#head === null) this.deadline = Date.now() + this.timeouts.headersMs;
    if (this.#handler !== null && this.#chunkedBody) this.socket.write('0\r\n\r\n', 'latin1');
  }

  onBodyError(err: Error): void {
    this.abort(err);
  }

  onDrain(): void {
    if (this.#handler !== null && !this.#bodyDone) {
      if (this.#head === null) this.deadline = Date.now() + this.timeouts.headersMs;
      this.#request?.body?.resume();
    }
  }

  // ---- response (ResponseParserEvents) ----
  onData(chunk: Buffer): void {
    if (this.#handler === null) {
      // bytes on an idle connection: the server is out of step, never reuse it
      this.dead = true;
      this.socket.destroy();
      return;
    }
    this.#phase = Phase.Receiving;
    if (this.#head !== null) this.deadline = Date.now() + this.timeouts.idleMs; // body idle
    this.#executing = true;
    const n = this.#parser.execute(chunk);
    this.#executing = false;
    if (n < 0) {
      this.#completed = null;
      this.#fail(transportError(ERR.badResponse, this.#parser.error?.reason ?? 'invalid response'), true);
      return;
    }
    const trailers = this.#completed;
    if (trailers !== null) {
      this.#completed = null;
      // bytes beyond the answer in the same chunk (a body on HEAD/204/304, past Content-Length):
      // the server is out of step, and what it wrote next must never reach the next request
      // (RFC 9112 section 6.3): the socket is not reused
      if (n < chunk.length) this.#keepAlive = false;
      this.#completeResponse(trailers);
    }
  }

  onInformational(status: number, reason: string, rawHeaders: string[]): void {
    // 100 Continue is ours to answer (we never send Expect upstream); 103 Early Hints and others are relayed
    if (status !== 100) this.#handler?.onInformational?.(status, rawHeaders, reason);
  }

  onResponseHead(head: ResponseHead): void {
    const handler = this.#handler;
    if (handler === null) return;
    if (head.status === 101) {
      this.#fail(transportError(ERR.badResponse, '101 to a request that asked for no upgrade'), true);
      return;
    }
    this.#head = head;
    this.#keepAlive = head.keepAlive;
    this.deadline = Date.now() + this.timeouts.idleMs;
    if (!handler.onHeaders(head.status, head.rawHeaders, this.resumeBound, head.reason)) this.#pause();
  }

  onResponseBody(chunk: Buffer): void {
    const handler = this.#handler;
    if (handler !== null && !handler.onData(chunk)) this.#pause();
  }

  onResponseComplete(trailers: string[]): void {
    // inside execute(): whether bytes follow the answer is known once it returned (see onData)
    if (this.#executing) { this.#completed = trailers; return; }
    this.#completeResponse(trailers);
  }

  #completeResponse(trailers: string[]): void {
    const handler = this.#handler;
    if (handler === null) return;
    this.#handler = null;
    this.#request = null;
    const reusable = this.#keepAlive && this.#bodyDone && !this.dead;
    this.#resumeSocket();
    if (!reusable) this.dead = true;
    this.#phase = reusable ? Phase.Idle : Phase.Closed;
    if (reusable) this.deadline = Date.now() + this.timeouts.keepAliveMs;
    else { this.deadline = 0; this.socket.destroy(); }
    this.owner.release(this, reusable);
    handler.onComplete(trailers.length === 0 ? null : trailers);
  }

  #pause(): void {
    if (!this.#paused) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  #resumeSocket(): void {
    if (this.#paused) {
      this.#paused = false;
      this.socket.resume();
    }
  }

  resumeResponse(): void {
    if (this.#handler !== null) this.#resumeSocket();
  }

  // ---- failures ----
  abort(err?: Error): void {
    if (this.#handler === null) return;
    this.#fail(err ?? transportError(ERR.aborted, 'request aborted'), true);
  }

  expire(): void {
    this.deadline = 0;
    if (this.#handler === null) {
      // idle keep-alive socket (or one still connecting for nobody): close it
      this.dead = true;
      this.socket.destroy();
      return;
    }
    if (this.#phase === Phase.Connecting) this.#fail(transportError(ERR.connectTimeout, 'connect timeout'), true);
    else if (this.#head === null) this.#fail(transportError(ERR.headersTimeout, 'response headers timeout'), true);
    else this.#fail(transportError(ERR.bodyTimeout, 'response body idle timeout'), true);
  }

  onSocketError(err: Error): void {
    this.dead = true;
    if (this.#handler !== null) this.#fail(err, true);
  }

  onEnd(): void {
    this.dead = true;
    if (this.#handler !== null && this.#head !== null && this.#parser.finish()) return; // close-delimited body completed
    if (this.#handler !== null) this.#fail(transportError(ERR.socket, 'upstream closed the connection'), true);
    else this.socket.destroy();
  }

  onClose(): void {
    this.dead = true;
    this.deadline = 0;
    this.owner.sweep.delete(this);
    const wasOpen = this.#phase !== Phase.Closed;
    this.#phase = Phase.Closed;
    if (this.#handler !== null) {
      if (this.#head !== null && this.#parser.finish()) return;
      this.#fail(transportError(ERR.socket, 'upstream connection closed'), false);
    }
    if (wasOpen || !this.#ownerToldClosed) { this.#ownerToldClosed = true; this.owner.closed(this); }
  }

  #ownerToldClosed = false;

  #fail(err: Error, destroy: boolean): void {
    const handler = this.#handler;
    this.#handler = null;
    this.#request = null;
    this.dead = true;
    this.#queued = null;
    this.deadline = 0;
    if (destroy) this.socket.destroy();
    if (!this.#ownerToldClosed) { this.#ownerToldClosed = true; this.owner.closed(this); }
    handler?.onError(err);
  }

  destroy(): void {
    this.dead = true;
    if (this.#handler !== null) this.#fail(transportError(ERR.aborted, 'pool destroyed'), true);
    else this.socket.destroy();
  }
}
