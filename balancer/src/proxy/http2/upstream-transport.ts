// HTTP/2 to upstream servers (services tagged proto=h2 (TLS, ALPN h2, the certificate verified:
// upstream-tls.ts), proto=h2c or proto=grpc (cleartext)): one multiplexed node:http2 session per server, more (up to maxSessionsPerServer) only
// while every open one is at the peer's SETTINGS_MAX_CONCURRENT_STREAMS. A session that received
// GOAWAY takes no new stream (node closes it once its streams ended); streams the server never saw
// (REFUSED_STREAM, or above the GOAWAY's last stream id, which nghttp2 reports as REFUSED_STREAM)
// fail with ERR_H2_REFUSED_STREAM, which the exchange may retry for any method. Flow control end to
// end: a paused response stream stops our WINDOW_UPDATEs to the server; a request body write that
// returns false pauses the client's body until 'drain'.
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import net from 'node:net';
import type pino from 'pino';
import type { RouteTable, ServerSpec } from '../../routing/types.js';
import { ERR, transportError, type BodySink, type ServerPoolStats, type UpstreamHandler, type UpstreamRequest, type UpstreamTransport } from '../transport.js';
import { flatResponseHeaders, http2RequestHeaders } from './upstream-request.js';
import { isCertificateError, sessionFailure, upstreamTlsKey, upstreamTlsOptions } from './upstream-tls.js';
import type { UpstreamTlsSpec } from '../../routing/types.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR } = http2.constants;


export interface Http2TransportOptions {
  readonly connectMs: number;
  readonly headersMs: number;
  /** response body idle (no DATA for this long); not for gRPC, whose streams may be quiet for hours */
  readonly idleMs: number;
  /** a session with no stream for this long is closed */
  readonly keepAliveMs: number;
  readonly maxSessionsPerServer: number;
  /** --upstream-ca: the PEM proto=h2 servers' certificates must chain to; absent = the system store */
  readonly ca?: string;
}

/** Before the server's SETTINGS arrive: RFC 9113 recommends at least 100. */
const ASSUMED_MAX_STREAMS = 100;

interface SessionEntry {
  readonly session: ClientHttp2Session;
  readonly serverId: string;
  active: number;
  connected: boolean;
  /** GOAWAY came or we closed it: no new streams */
  closing: boolean;
  error: (Error & { code?: string }) | undefined;
}

class ServerSessions {
  readonly sessions: SessionEntry[] = [];
  /** a certificate refusal is logged once until a session connects again (not once per request) */
  #certificateWarned = false;

  constructor(
    readonly server: ServerSpec, readonly tls: boolean, readonly serverTls: UpstreamTlsSpec | undefined,
    readonly opts: Http2TransportOptions, readonly log: pino.Logger,
  ) {}

  acquire(): SessionEntry {
    let least: SessionEntry | undefined;
    for (const e of this.sessions) {
      if (e.closing || e.session.closed || e.session.destroyed) continue;
      if (e.active < (e.session.remoteSettings?.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS)) return e;
      if (least === undefined || e.active < least.active) least = e;
    }
    if (least !== undefined && this.sessions.length >= this.opts.maxSessionsPerServer) return least; // nghttp2 queues it
    return this.open();
  }

  open(): SessionEntry {
    const { host, port } = this.server;
    const authority = `${this.tls ? 'https' : 'http'}://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    const session = http2.connect(authority, {
      settings: { enablePush: false },
      ...(this.tls ? upstreamTlsOptions(host, this.serverTls, this.opts.ca) : {}),
    });
    const entry: SessionEntry = { session, serverId: this.server.id, active: 0, connected: false, closing: false, error: undefined };
    this.sessions.push(entry);
    const timer = setTimeout(() => {
      entry.error = transportError(ERR.connectTimeout, `HTTP/2 connect to ${host}:${port} timed out`);
      session.destroy(entry.error);
    }, this.opts.connectMs);
    session.once('connect', () => { clearTimeout(timer); entry.connected = true; this.#certificateWarned = false; });
    session.on('error', (err: Error & { code?: string }) => {
      entry.error ??= sessionFailure(err, this.server.id);
      if (!isCertificateError(err)) this.log.debug({ server: this.server.id, err: err.message }, 'upstream HTTP/2 session error');
      else if (!this.#certificateWarned) {
        this.#certificateWarned = true;
        this.log.warn({ server: this.server.id, code: err.code, err: err.message }, 'upstream TLS certificate refused (tls_skip_verify=true accepts any, --upstream-ca trusts a CA, tls_server_name= sets the name checked)');
      }
    });
    session.on('goaway', () => { entry.closing = true; });
    session.once('close', () => {
      clearTimeout(timer);
      entry.closing = true;
      const i = this.sessions.indexOf(entry);
      if (i >= 0) this.sessions.splice(i, 1);
    });
    session.setTimeout(this.opts.keepAliveMs, () => { if (entry.active === 0) { entry.closing = true; session.close(); } });
    return entry;
  }

  /** No new streams; each session closes once its streams ended. */
  close(): Promise<void> {
    return Promise.all(this.sessions.map((e) => new Promise<void>((resolve) => {
      e.closing = true;
      if (e.session.destroyed) { resolve(); return; }
      e.session.once('close', () => resolve());
      e.session.close();
    }))).then(() => undefined);
  }

  destroy(): void {
    for (const e of [...this.sessions]) e.session.destroy();
  }

  stats(): ServerPoolStats {
    let connected = 0;
    let running = 0;
    for (const e of this.sessions) { if (e.connected) connected++; running += e.active; }
    return { connected, pending: 0, running };
  }
}

/** One try of one request on one stream; exactly one of onComplete / onError. */
class UpstreamStream implements BodySink {
  #settled = false;
  #responded = false;
  #trailers: string[] | null = null;
  #headersTimer: NodeJS.Timeout | undefined;
  #cause: (Error & { code?: string }) | undefined;

  constructor(
    readonly entry: SessionEntry, readonly stream: ClientHttp2Stream, readonly request: UpstreamRequest,
    readonly handler: UpstreamHandler, readonly opts: Http2TransportOptions, readonly grpc: boolean,
  ) {
    entry.active++;
    stream.on('response', (h: IncomingHttpHeaders, flags: number) => this.#onResponse(h, flags));
    stream.on('data', (chunk: Buffer) => { if (!this.#settled && !handler.onData(chunk)) stream.pause(); });
    stream.on('trailers', (t: IncomingHttpHeaders) => { this.#trailers = flatResponseHeaders(t); });
    stream.on('end', () => this.#complete());
    // 'close' says what happened; a stream cancelled with its session carries the session's error as
    // its cause, and the session's own 'error' comes only after the stream's 'close'
    stream.on('error', (err: Error & { cause?: unknown }) => { if (err.cause instanceof Error) this.#cause ??= err.cause; });
    stream.on('close', () => this.#onClose());
    // gRPC: the server may answer only after the client's stream ended (client streaming), so the
    // headers timeout counts from the end of the request body; before it, grpc-timeout is the bound
    if (!grpc || request.body === null) this.#startHeadersTimer();
    handler.onConnect((err) => this.#fail(err ?? transportError(ERR.aborted, 'aborted')));
    if (request.body !== null && !this.#settled) request.body.setSink(this);
  }

  // ---- BodySink: the client's request body into the stream ----
  onBodyData(chunk: Buffer): boolean {
    if (this.#settled || this.stream.destroyed) return true;
    if (this.stream.write(chunk)) return true;
    this.stream.once('drain', () => this.request.body?.resume());
    return false;
  }

  onBodyEnd(): void {
    if (!this.stream.destroyed) this.stream.end();
    if (this.grpc && !this.#responded) this.#startHeadersTimer();
  }

  #startHeadersTimer(): void {
    if (this.opts.headersMs <= 0 || this.#settled || this.#headersTimer !== undefined) return;
    this.#headersTimer = setTimeout(() => this.#fail(transportError(ERR.headersTimeout, 'HTTP/2 upstream sent no response headers in time')), this.opts.headersMs);
  }

  onBodyError(err: Error): void {
    this.#fail(err);
  }

  #onResponse(h: IncomingHttpHeaders, flags: number): void {
    if (this.#settled) return;
    const status = Number(h[':status']);
    if (status >= 100 && status < 200) return; // informational: the final answer follows
    clearTimeout(this.#headersTimer);
    this.#responded = true;
    const stream = this.stream;
    if (!this.handler.onHeaders(status, flatResponseHeaders(h), () => stream.resume(), '')) stream.pause();
    // a trailers-only answer (gRPC status, a 204): complete now, so the client gets one HEADERS frame
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) this.#complete();
    else if (!this.grpc && this.opts.idleMs > 0) stream.setTimeout(this.opts.idleMs, () => this.#fail(transportError(ERR.bodyTimeout, 'HTTP/2 upstream body idle')));
  }

  #complete(): void {
    if (this.#settled || !this.#responded) return;
    this.#settle();
    this.handler.onComplete(this.#trailers);
  }

  #onClose(): void {
    if (this.#settled) { this.#release(); return; }
    const code = this.stream.rstCode;
    const sessionErr = this.entry.error ?? (this.#cause !== undefined ? sessionFailure(this.#cause, this.entry.serverId) : undefined);
    let err: Error;
    if (!this.#responded && code === NGHTTP2_REFUSED_STREAM) err = transportError(ERR.refusedStream, 'HTTP/2 upstream refused the stream (never processed)');
    else if (!this.#responded && sessionErr !== undefined) err = sessionErr;
    else err = transportError(ERR.socket, `HTTP/2 upstream stream closed (code ${code ?? NGHTTP2_NO_ERROR})`);
    this.#settle();
    this.#release();
    this.handler.onError(err);
  }

  #fail(err: Error): void {
    if (this.#settled) return;
    this.#settle();
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    this.handler.onError(err);
  }

  #settle(): void {
    this.#settled = true;
    clearTimeout(this.#headersTimer);
  }

  #released = false;
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.entry.active--;
  }
}

export class Http2Transport implements UpstreamTransport {
  /** server id -> its pools, one per (cleartext | TLS with these certificate checks) */
  readonly #pools = new Map<string, Map<string, ServerSessions>>();
  readonly #closing = new Set<Promise<void>>();

  constructor(readonly opts: Http2TransportOptions, readonly log: pino.Logger) {}

  dispatch(server: ServerSpec, request: UpstreamRequest, handler: UpstreamHandler): void {
    const tls = request.protocol === 'h2';
    const key = poolKey(tls, request.serverTls);
    let pools = this.#pools.get(server.id);
    if (pools === undefined) {
      pools = new Map();
      this.#pools.set(server.id, pools);
    }
    let pool = pools.get(key);
    if (pool === undefined) {
      pool = new ServerSessions(server, tls, tls ? request.serverTls : undefined, this.opts, this.log);
      pools.set(key, pool);
    }
    const entry = pool.acquire();
    let stream: ClientHttp2Stream;
    try {
      const headers = http2RequestHeaders(request.method, request.path, request.headers, tls, `${server.host}:${server.port}`);
      stream = entry.session.request(headers, { endStream: request.body === null });
    } catch (err) {
      // a header node refuses for HTTP/2, or a session that closed in between: nothing was sent (the
      // latter may go to another server, as a refused stream)
      const code = (err as { code?: string }).code;
      const closed = code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION';
      handler.onError(transportError(closed ? ERR.refusedStream : ERR.invalidArg, (err as Error).message));
      return;
    }
    new UpstreamStream(entry, stream, request, handler, this.opts, request.protocol === 'grpc');
  }

  retain(table: RouteTable): void {
    const keep = new Set<string>();
    for (const name in table.upstreams) for (const s of table.upstreams[name].servers) keep.add(s.id);
    const gone: string[] = [];
    for (const id of this.#pools.keys()) if (!keep.has(id)) gone.push(id);
    this.drop(gone);
  }

  drop(serverIds: Iterable<string>): void {
    for (const id of serverIds) {
      const pools = this.#pools.get(id);
      if (pools === undefined) continue;
      this.#pools.delete(id);
      for (const pool of pools.values()) {
        const closing = pool.close();
        this.#closing.add(closing);
        void closing.finally(() => this.#closing.delete(closing));
      }
    }
  }

  stats(serverId: string): ServerPoolStats {
    let connected = 0;
    let running = 0;
    for (const pool of this.#pools.get(serverId)?.values() ?? []) {
      const s = pool.stats();
      connected += s.connected;
      running += s.running;
    }
    return { connected, pending: 0, running };
  }

  async closeGracefully(): Promise<void> {
    const pools = [...this.#pools.values()].flatMap((m) => [...m.values()]);
    this.#pools.clear();
    await Promise.allSettled([...pools.map((p) => p.close()), ...this.#closing]);
  }

  async destroy(): Promise<void> {
    for (const m of this.#pools.values()) for (const p of m.values()) p.destroy();
    this.#pools.clear();
  }
}

/** cleartext, or TLS with these certificate checks (a tag change opens new sessions) */
function poolKey(tls: boolean, serverTls: UpstreamTlsSpec | undefined): string {
  return tls ? `tls|${upstreamTlsKey(serverTls)}` : 'h2c';
}
