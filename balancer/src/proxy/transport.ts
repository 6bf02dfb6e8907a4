// The two small interfaces between the exchange layer (route, pick, retry, health, timeouts as JSON
// errors, forwarding headers, draining, access log: proxy-exchange.ts) and an engine. An engine is a
// client side (one ClientExchange per request a client sent) plus an upstream transport (dispatch one
// request to one server). The `undici` engine implements both over node:http and undici; the `native`
// engine over its own HTTP/1.1 codec and socket pool. Neither side knows routing or retry rules.
import type { IncomingHttpHeaders } from 'node:http';
import type { RouteTable, ServerSpec, UpstreamProtocol, UpstreamTlsSpec } from '../routing/types.js';
import type { ClientOrigin, ConnectionHandle } from './client-origin.js';

/** Flat header list as node and undici hand it over: [name, value, name, value, ...]. */
export type RawHeaders = readonly string[];

/** What the exchange layer is told by a request body (the client side drives it). */
export interface BodySink {
  /** false: stop until BodySource.resume() */
  onBodyData(chunk: Buffer): boolean;
  onBodyEnd(): void;
  onBodyError(err: Error): void;
}

/** The client's request body. Bytes flow only after setSink; nothing is ever buffered whole. */
export interface BodySource {
  /** some bytes were handed out already: the body cannot be sent to another server */
  readonly consumed: boolean;
  /** the client side failed or went away before the body ended */
  readonly failed: boolean;
  setSink(sink: BodySink): void;
  pause(): void;
  resume(): void;
}

/** Callbacks the client side makes into the exchange that serves it. */
export interface ClientEvents {
  /** the response sink drained after a write returned false */
  onClientDrain(): void;
  /** the client connection closed before the response ended */
  onClientClose(): void;
}

/** One client request and the place its response goes. */
export interface ClientExchange {
  readonly method: string;
  /** request-target as sent (origin-form, absolute-form, ...) */
  readonly target: string;
  readonly rawHeaders: RawHeaders;
  /** header object for pickers that hash on a header (built lazily) */
  readonly headers: IncomingHttpHeaders;
  /** where the client connection comes from: its peer, or a trusted PROXY header's (client-origin.ts) */
  readonly origin: ClientOrigin;
  /** TLS socket underneath: X-Forwarded-Proto https */
  readonly encrypted: boolean;
  /** local port of the client socket (X-Forwarded-Port) */
  readonly localPort: number;
  /** null when the request has no body (RFC 9112 section 6.3) */
  readonly body: BodySource | null;
  /**
   * absent: HTTP/1.x. 'grpc' (an HTTP/2 stream with content-type application/grpc): errors the proxy
   * gives are gRPC statuses (error-responses.ts) and the body streams as it comes (no body gate)
   */
  readonly protocol?: 'http2' | 'grpc';
  /** protocol 'grpc': the grpc-status sent to the client (response headers or trailers); undefined = none yet */
  readonly grpcStatus?: number;

  // ---- response sink ----
  readonly headersSent: boolean;
  /** status written (0 before writeHead) */
  readonly statusCode: number;
  /** the exchange that serves this request registers here for drain/close */
  attach(events: ClientEvents): void;
  /** headers: flat, hop-by-hop already removed; `Connection: close` included when draining */
  writeHead(status: number, reason: string | undefined, headers: readonly string[]): void;
  /** an interim 1xx answer (RFC 9110 section 15.2) before writeHead; a client side that cannot send one omits it */
  writeInformational?(status: number, reason: string | undefined, headers: readonly string[]): void;
  /** false: the client is slow, wait for ClientEvents.onClientDrain */
  write(chunk: Buffer): boolean;
  /** ends the response; `chunk` is a last (often the only) body piece, trailers a flat list */
  end(chunk?: Buffer, trailers?: readonly string[]): void;
  /** cut the connection (a mid-body upstream failure: the only honest signal left) */
  destroy(err?: Error): void;
}

/** The request as it goes to one server. */
export interface UpstreamRequest {
  readonly method: string;
  /** origin-form path + query */
  readonly path: string;
  /** flat list, hop-by-hop removed, forwarding headers set */
  readonly headers: readonly string[];
  readonly body: BodySource | null;
  /** the upstream's `proto=` (absent = HTTP/1.1): transport-by-protocol.ts picks the transport by it */
  readonly protocol?: UpstreamProtocol;
  /** proxy_protocol=: connections open with this header and belong to one client (proxy-protocol-upstream.ts) */
  readonly proxyHeader?: BoundUpstream;
  /** proto=h2: how the server's certificate is checked (the upstream's serverTls; http2/upstream-tls.ts) */
  readonly serverTls?: UpstreamTlsSpec;
}

/** What a request to a proxy_protocol= service carries (UpstreamRequest.proxyHeader; proxy-protocol-upstream.ts). */
export interface BoundUpstream {
  /** the header every connection to the server opens with */
  readonly bytes: Buffer;
  /** the client connection the upstream connections belong to */
  readonly client: ConnectionHandle;
}

/**
 * One try against one server, in the spirit of undici's DispatchHandler. Exactly one of
 * onComplete/onError ends a dispatch, and one of them always comes (a transport never hangs nor throws).
 */
export interface UpstreamHandler {
  /** the try is on its way; `abort` cancels it (its onError still comes) */
  onConnect(abort: (err?: Error) => void): void;
  /** a 1xx other than 100 and 101 (103 Early Hints) before the final answer; optional */
  onInformational?(status: number, rawHeaders: readonly string[], statusText: string): void;
  /** false: pause the response body until `resume` */
  onHeaders(status: number, rawHeaders: readonly Buffer[] | readonly string[], resume: () => void, statusText: string): boolean;
  /** false: pause until the `resume` given in onHeaders */
  onData(chunk: Buffer): boolean;
  onComplete(trailers: readonly Buffer[] | readonly string[] | null): void;
  onError(err: Error): void;
}

/** Connection pool figures of one upstream server (undici Pool stats). */
export interface ServerPoolStats {
  readonly connected: number;
  readonly pending: number;
  readonly running: number;
}

export interface UpstreamTransport {
  dispatch(server: ServerSpec, request: UpstreamRequest, handler: UpstreamHandler): void;
  /** after a table swap: drop (after their in-flight work) the pools of servers no longer in the table */
  retain(table: RouteTable): void;
  /** close the pools of these servers (no longer in the table); retain() for a delta */
  drop(serverIds: Iterable<string>): void;
  stats(serverId: string): ServerPoolStats;
  /** wait for in-flight work on every pool, then close them */
  closeGracefully(): Promise<void>;
  /** abort everything now */
  destroy(): Promise<void>;
}

/**
 * Error codes a transport reports (err.code). undici's names are the public vocabulary (they appear
 * as `cause` in JSON 502/504 bodies), so the native transport uses the same ones; OS codes
 * (ECONNREFUSED, ECONNRESET, ...) pass through as they are.
 */
export const ERR = {
  connectTimeout: 'UND_ERR_CONNECT_TIMEOUT',
  headersTimeout: 'UND_ERR_HEADERS_TIMEOUT',
  bodyTimeout: 'UND_ERR_BODY_TIMEOUT',
  socket: 'UND_ERR_SOCKET',
  aborted: 'UND_ERR_ABORTED',
  invalidArg: 'UND_ERR_INVALID_ARG',
  /** the server's answer broke HTTP/1.1 framing */
  badResponse: 'HPE_INVALID_RESPONSE',
  /** the per-server wait queue was full, or a request waited in it too long */
  queueFull: 'ERR_UPSTREAM_QUEUE_FULL',
  queueTimeout: 'ERR_UPSTREAM_QUEUE_TIMEOUT',
  /** HTTP/2: the server refused the stream (REFUSED_STREAM, or past its GOAWAY): it never saw the request */
  refusedStream: 'ERR_H2_REFUSED_STREAM',
  /** TLS to the server: its certificate failed verification (nothing was sent) */
  upstreamCertificate: 'ERR_UPSTREAM_CERTIFICATE',
} as const;

export function transportError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}
