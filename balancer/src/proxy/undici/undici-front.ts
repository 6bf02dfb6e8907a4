// The `undici` engine's client side: a node:http server whose request handler wraps each request in
// a NodeHttpClient for the exchange layer; upgrades go to the raw tunnel.
import http, { ServerResponse, type IncomingMessage } from 'node:http';
import { listenOn } from '../listen-on.js';
import type { Duplex } from 'node:stream';
import type { AddressInfo, Socket } from 'node:net';
import type { ClientFront } from '../engine.js';
import { handleProxyRequest } from '../proxy-exchange.js';
import type { ProxyContext } from '../proxy-context.js';
import { upgradeRequestFrom, UpgradeTunnels } from '../upgrade-tunnel.js';
import { NodeHttpClient } from './node-http-client.js';
import { simpleResponse } from '../../http1/serialize.js';

export interface UndiciFrontOptions {
  readonly clientKeepAliveMs: number;
  /** a request head must be complete within this long of its first byte (node's headersTimeout) */
  readonly clientHeaderMs: number;
  /** upstream response head timeout (tunnels wait this long for a 101) */
  readonly headersMs: number;
  /** whole request within this long (0 = none): node's own check, a backstop behind the body gate */
  readonly requestMs?: number;
  /** allowed Upgrade protocols (lower case) and the idle limit of open tunnels */
  readonly upgradeProtocols: readonly string[];
  readonly tunnelIdleMs: number;
}

export function createUndiciFront(ctx: ProxyContext, opts: UndiciFrontOptions): ClientFront {
  const log = ctx.log;
  const tunnels = new UpgradeTunnels({ protocols: opts.upgradeProtocols, headersMs: opts.headersMs, idleMs: opts.tunnelIdleMs });
  // node checks head and request deadlines on an interval (30 s by default): a fraction of the
  // header timeout keeps a 408 close to it. requestTimeout catches a body still trickling after the
  // answer went out (the exchange is over, node reads on); node wants it >= headersTimeout.
  const requestTimeout = opts.requestMs !== undefined && opts.requestMs > 0 ? Math.max(opts.requestMs, opts.clientHeaderMs) : 0;
  const server = http.createServer({
    keepAliveTimeout: opts.clientKeepAliveMs,
    headersTimeout: opts.clientHeaderMs,
    requestTimeout,
    connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(opts.clientHeaderMs / 4))),
  }, (req, res) => {
    try {
      handleProxyRequest(ctx, new NodeHttpClient(req, res));
    } catch (err) {
      // a bug must cost one request, not the worker
      log.error({ err, url: req.url }, 'proxy handler failed');
      if (!res.headersSent) { res.writeHead(500, { 'content-type': 'application/json', connection: 'close' }); res.end('{"error":"internal_error"}'); }
      else res.destroy();
    }
  });
  // --client-half-close: node aborts the request at the client's FIN (abort) unless httpAllowHalfOpen,
  // which answers it, then ends the connection (answer); its sockets are half-open either way
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = ctx.clientHalfClose === 'answer';
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.httpVersionMinor === 0) { serveIgnoringUpgrade(ctx, req, socket as Socket, head); return; }
    tunnels.handle(ctx, upgradeRequestFrom(req), socket, head);
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex & { _httpMessage?: { headersSent?: boolean } | null }) => {
    // as node's own handler: answer only when no answer of ours has begun on this socket
    const inFlight = socket._httpMessage;
    if (!socket.writable || err.code === 'ECONNRESET' || inFlight?.headersSent === true) { socket.destroy(); return; }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // the same answer as the native engine's; with a request in hand it is the whole-request limit
      const body = inFlight == null // no request in hand (node clears it after each answer)
        ? '{"error":"client_header_timeout","reason":"request head not complete in time"}'
        : '{"error":"request_timeout","reason":"request not complete in time"}';
      socket.end(simpleResponse(408, 'application/json', body, true));
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      // a head (or trailer section) over the limit is a 431, as on the native engine (node's own handler says so too)
      socket.end(simpleResponse(431, 'application/json', '{"error":"headers_too_large","reason":"request head too large"}', true));
    } else socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    // node's server is half-open: a client that never closes its side is let go after this
    (socket as Socket).setTimeout(opts.clientKeepAliveMs);
  });
  let listening = false;

  return {
    listen(host: string, port: number): Promise<AddressInfo> {
      return listenOn(server, host, port, log).then((address) => {
        listening = true;
        return address;
      });
    },
    handleSocket(socket: Socket): void {
      // node:http's own connection path: the same parser, timeouts and keep-alive handling
      server.emit('connection', socket);
    },
    stopListening(): void {
      if (listening) server.close();
      listening = false;
    },
    closeIdle(): void {
      server.closeIdleConnections();
    },
    get openTunnels(): number {
      return tunnels.size;
    },
    closeAll(): void {
      if (listening) server.close();
      listening = false;
      server.closeAllConnections();
      tunnels.destroyAll();
    },
  };
}

/**
 * node:http hands an HTTP/1.0 request with `Connection: upgrade` to 'upgrade' (its parser stops
 * there), but a server MUST ignore Upgrade in HTTP/1.0 (RFC 9110 section 7.8): it is served as a
 * plain request on a response of our own, and the connection closes after it (HTTP/1.0, and the
 * parser is gone). One with a body is refused: node read no body for it.
 */
function serveIgnoringUpgrade(ctx: ProxyContext, req: IncomingMessage, socket: Socket, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  if (head.length > 0 || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) {
    socket.end(simpleResponse(400, 'application/json', '{"error":"bad_request","reason":"an HTTP/1.0 request with Upgrade and a body"}', true));
    return;
  }
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => { res.detachSocket(socket); socket.end(); });
  res.once('close', () => { if (!socket.destroyed && !res.writableFinished) socket.destroy(); });
  try {
    handleProxyRequest(ctx, new NodeHttpClient(req, res));
  } catch (err) {
    ctx.log.error({ err, url: req.url }, 'proxy handler failed');
    socket.destroy();
  }
}
