// The HTTP/2 client side of one worker: node:http2 server sessions on sockets accepted elsewhere (a
// TLS socket that negotiated ALPN h2, or a plain one that began with the h2c preface). Each stream
// becomes an Http2ClientExchange handed to the same exchange layer as an HTTP/1.1 request.
// Why node:http2: a maintained nghttp2 codec with flow control, HPACK and the 2019 / 2023 / 2024
// flood fixes (CVE-2019-9512..9518, CVE-2023-44487, the CONTINUATION flood); we own routing, limits
// and the reset budget. See limits.ts for which bound lives where.
import http2, { type Http2Session, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { ProxyContext } from '../proxy-context.js';
import type { ClientExchange } from '../transport.js';
import { clientOriginOf } from '../client-origin.js';
import { Http2ClientExchange, type StreamFacts } from './client-stream.js';
import { nodeServerOptions, type Http2Limits } from './limits.js';
import { isRefusal, parseHttp2RequestHead } from './request-head.js';
import { ResetBudget } from './reset-budget.js';

const { NGHTTP2_PROTOCOL_ERROR, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_FLAG_END_STREAM } = http2.constants;

function ignore(): void {}

export interface Http2Front {
  handleSocket(socket: Socket): void;
  /** GOAWAY on every session; each closes once its streams ended (the worker drains) */
  goAway(): void;
  closeAll(): void;
  /** sessions open right now */
  readonly sessions: number;
}

interface SessionState {
  readonly facts: StreamFacts;
  readonly budget: ResetBudget;
  open: number;
}

export function createHttp2Front(ctx: ProxyContext, limits: Http2Limits, handle: (ctx: ProxyContext, client: ClientExchange) => void): Http2Front {
  const log = ctx.log;
  const server = http2.createServer(nodeServerOptions(limits));
  const sessions = new Map<Http2Session, SessionState>();

  server.on('session', (session: ServerHttp2Session) => {
    const socket = session.socket;
    const state: SessionState = {
      // the session is the connection HTTP/2 streams share (its socket is a Proxy that refuses listeners)
      facts: { origin: { ...clientOriginOf(socket), connection: session }, encrypted: (socket as { encrypted?: boolean }).encrypted === true, localPort: socket.localPort ?? 0 },
      budget: new ResetBudget(limits.resetBurst, limits.resetRate, ctx.now()),
      open: 0,
    };
    sessions.set(session, state);
    session.on('close', () => sessions.delete(session));
    session.on('error', (err: Error) => log.debug({ err: err.message }, 'HTTP/2 client session error'));
    if (limits.idleMs > 0) session.setTimeout(limits.idleMs, () => { if (state.open === 0) session.close(); });
    // a session handed over while draining is served what it already sent, then told to go
    if (ctx.draining) session.close();
    session.on('stream', (stream: ServerHttp2Stream, _headers: unknown, flags: number, rawHeaders: string[]) => onStream(session, state, stream, flags, rawHeaders));
  });

  /** The client reset one of its streams before our answer ended; false: the session was cut. */
  function countReset(session: ServerHttp2Session, state: SessionState): boolean {
    if (state.budget.take(ctx.now()) || session.destroyed) return true;
    log.warn({ client: state.facts.origin.address }, 'HTTP/2 client over its stream reset budget: GOAWAY ENHANCE_YOUR_CALM');
    // with an error the code is the GOAWAY's (destroy(undefined, code) would send NO_ERROR)
    session.destroy(new Error('HTTP/2 stream reset budget spent'), NGHTTP2_ENHANCE_YOUR_CALM);
    return false;
  }

  function onStream(session: ServerHttp2Session, state: SessionState, stream: ServerHttp2Stream, flags: number, rawHeaders: string[]): void {
    // a stream closed with an error code emits 'error': never uncaught (the 'close' tells the rest)
    stream.on('error', ignore);
    if (stream.destroyed) {
      // HEADERS and RST_STREAM in one read: node hands the stream over already reset (rapid reset's
      // usual shape); no route, no upstream, but it counts
      if (stream.rstCode !== 0) countReset(session, state);
      return;
    }
    const head = parseHttp2RequestHead(rawHeaders);
    if (isRefusal(head)) {
      // RFC 9113 section 8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR
      log.debug({ reason: head.malformed }, 'malformed HTTP/2 request refused');
      stream.close(NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    state.open++;
    const exchange = new Http2ClientExchange(stream, head, (flags & NGHTTP2_FLAG_END_STREAM) !== 0, state.facts, limits);
    stream.once('close', () => {
      state.open--;
      if (exchange.resetByClient) countReset(session, state);
    });
    try {
      handle(ctx, exchange);
    } catch (err) {
      log.error({ err }, 'HTTP/2 stream handler failed');
      exchange.destroy();
    }
  }

  return {
    handleSocket(socket: Socket): void {
      server.emit('connection', socket);
    },
    goAway(): void {
      for (const session of sessions.keys()) if (!session.closed) session.close();
    },
    closeAll(): void {
      for (const session of sessions.keys()) session.destroy();
      sessions.clear();
    },
    get sessions(): number {
      return sessions.size;
    },
  };
}
