// The `undici` engine's client side: one node:http request/response pair seen as a ClientExchange.
// Listeners are module-level functions finding their exchange through a symbol on the response,
// so a request costs one small object and no closures.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { serializeResponseHead } from '../../http1/serialize.js';
import type { BodySink, BodySource, ClientEvents, ClientExchange } from '../transport.js';
import { clientOriginOf, type ClientOrigin } from '../client-origin.js';

const kClient = Symbol('nodeHttpClient');
type TaggedResponse = ServerResponse & { [kClient]?: NodeHttpClient };
type TaggedRequest = IncomingMessage & { [kClient]?: IncomingBody };
/** node's own writer of a head before the response's (writeContinue, writeEarlyHints use it): queued behind an earlier pipelined response */
type RawWriter = ServerResponse & { _writeRaw(data: string, encoding: BufferEncoding): boolean };

/** Does the request carry a body (RFC 9112 section 6.3)? */
function requestHasBody(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 14 && name.toLowerCase() === 'content-length') return raw[i + 1] !== '0';
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
  }
  return false;
}

function onResponseClose(this: TaggedResponse): void {
  this[kClient]?.events?.onClientClose();
}

function onResponseDrain(this: TaggedResponse): void {
  this[kClient]?.events?.onClientDrain();
}

function onBodyData(this: TaggedRequest, chunk: Buffer): void {
  const body = this[kClient];
  if (body?.sink !== undefined && !body.sink.onBodyData(chunk)) this.pause();
}
function onBodyEnd(this: TaggedRequest): void {
  this[kClient]?.sink?.onBodyEnd();
}
function onBodyError(this: TaggedRequest, err: Error): void {
  this[kClient]?.sink?.onBodyError(err);
}
function onBodyClose(this: TaggedRequest): void {
  if (!this.complete) this[kClient]?.sink?.onBodyError(Object.assign(new Error('client closed before the body ended'), { code: 'ECONNRESET' }));
}

/** The IncomingMessage as a BodySource; `stream` lets the undici transport hand it to undici as is. */
export class IncomingBody implements BodySource {
  sink: BodySink | undefined;
  constructor(readonly stream: IncomingMessage) {}

  get consumed(): boolean {
    return this.stream.readableDidRead;
  }

  get failed(): boolean {
    return this.stream.destroyed;
  }

  setSink(sink: BodySink): void {
    this.sink = sink;
    const req = this.stream as TaggedRequest;
    req[kClient] = this;
    req.on('data', onBodyData);
    req.once('end', onBodyEnd);
    req.once('error', onBodyError);
    req.once('close', onBodyClose);
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  /**
   * The answer went out before the body ended (an upstream answering early): nobody wants the rest.
   * Read on and drop it, so node parses the next request on the connection (it dumps only a body
   * nobody began to read; this one is ours, possibly paused by backpressure that nothing will relieve).
   * node's requestTimeout bounds a body still trickling (undici-front.ts).
   */
  dropRest(): void {
    this.sink = undefined;
    if (!this.stream.complete && !this.stream.destroyed) this.stream.resume();
  }
}

export class NodeHttpClient implements ClientExchange {
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: readonly string[];
  readonly origin: ClientOrigin;
  readonly encrypted: boolean;
  readonly localPort: number;
  readonly body: IncomingBody | null;
  events: ClientEvents | undefined;
  #drainListening = false;

  constructor(readonly req: IncomingMessage, readonly res: ServerResponse) {
    this.method = req.method ?? 'GET';
    this.target = req.url ?? '/';
    this.rawHeaders = req.rawHeaders;
    const socket = req.socket;
    this.origin = clientOriginOf(socket);
    this.encrypted = (socket as { encrypted?: boolean }).encrypted === true;
    this.localPort = socket.localPort ?? 0;
    this.body = requestHasBody(req) ? new IncomingBody(req) : null;
  }

  get headers(): IncomingHttpHeaders {
    return this.req.headers;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get statusCode(): number {
    return this.res.headersSent ? this.res.statusCode : 0;
  }

  attach(events: ClientEvents): void {
    this.events = events;
    (this.res as TaggedResponse)[kClient] = this;
    this.res.on('close', onResponseClose);
  }

  writeHead(status: number, reason: string | undefined, headers: readonly string[]): void {
    if (reason === undefined) this.res.writeHead(status, headers as string[]);
    else this.res.writeHead(status, reason, headers as string[]);
  }

  writeInformational(status: number, reason: string | undefined, headers: readonly string[]): void {
    // HTTP/1.0 clients get no 1xx (RFC 9110 section 15.2); never after the final head. Any 1xx with
    // any fields, so not writeEarlyHints (103 with Link only)
    if (this.res.headersSent || this.req.httpVersionMinor === 0 || status < 102 || status > 199) return;
    (this.res as RawWriter)._writeRaw(serializeResponseHead(status, reason, headers, ''), 'latin1');
  }

  write(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    if (!this.#drainListening) {
      this.#drainListening = true;
      this.res.on('drain', onResponseDrain);
    }
    return false;
  }

  end(chunk?: Buffer, trailers?: readonly string[]): void {
    if (trailers !== undefined) {
      const pairs: [string, string][] = [];
      for (let i = 0; i + 1 < trailers.length; i += 2) pairs.push([trailers[i], trailers[i + 1]]);
      // node sends trailers only on a chunked response; elsewhere they are dropped, as HTTP allows
      this.res.addTrailers(pairs);
    }
    if (chunk === undefined) this.res.end();
    else this.res.end(chunk);
    this.body?.dropRest();
  }

  destroy(err?: Error): void {
    this.res.destroy(err);
  }
}

/** A BodySource that is not a node stream, as a Readable for undici (pause/resume follow backpressure). */
export function bodyAsReadable(source: BodySource): Readable {
  const readable = new Readable({ read() { source.resume(); } });
  source.setSink({
    onBodyData(chunk: Buffer): boolean {
      if (readable.push(chunk)) return true;
      source.pause();
      return false;
    },
    onBodyEnd(): void { readable.push(null); },
    onBodyError(err: Error): void { readable.destroy(err); },
  });
  return readable;
}
