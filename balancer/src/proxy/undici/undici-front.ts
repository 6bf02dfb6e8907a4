// The `undici` engine's client side: a node:http server whose request handler wraps each request in
// a NodeHttpClient for the exchange layer; upgrades go to the raw tunnel.
import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo, Socket } from 'node:net';
import type { ClientFront } from '../engine.js';
import { handleProxyRequest } from '../proxy-exchange.js';
import type { ProxyContext } from '../proxy-context.js';
import { upgradeRequestFrom, UpgradeTunnels } from '../upgrade-tunnel.js';
import { NodeHttpClient } from './node-http-client.js';

export interface UndiciFrontOptions {
  readonly clientKeepAliveMs: number;
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
  const server = http.createServer({ keepAliveTimeout: opts.clientKeepAliveMs, requestTimeout: 0 }, (req, res) => {
    try {
      handleProxyRequest(ctx, new NodeHttpClient(req, res));
    } catch (err) {
      // a bug must cost one request, not the worker
      log.error({ err, url: req.url }, 'proxy handler failed');
      if (!res.headersSent) { res.writeHead(500, { 'content-type': 'application/json', connection: 'close' }); res.end('{"error":"internal_error"}'); }
      else res.destroy();
    }
  });
  server.keepAliveTimeout = opts.clientKeepAliveMs;
  server.headersTimeout = Math.max(opts.headersMs, 10_000);
  // catches a body still trickling after the answer went out (the exchange is over, node reads on);
  // node wants requestTimeout >= headersTimeout
  if (opts.requestMs !== undefined && opts.requestMs > 0) server.requestTimeout = Math.max(opts.requestMs, server.headersTimeout);
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => tunnels.handle(ctx, upgradeRequestFrom(req), socket, head));
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  let listening = false;

  return {
    listen(host: string, port: number): Promise<AddressInfo> {
      return new Promise((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        server.once('error', onError);
        server.listen({ host, port }, () => {
          server.off('error', onError);
          listening = true;
          server.on('error', (err) => log.error({ err }, 'proxy listener error'));
          resolve(server.address() as AddressInfo);
        });
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
