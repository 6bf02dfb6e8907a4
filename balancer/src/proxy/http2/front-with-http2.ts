// One ClientFront for both protocols: sockets whose TLS handshake chose ALPN h2 go to the HTTP/2
// front, the others to the engine's HTTP/1.1 front; with h2c on, the plain listener peeks at the
// first bytes of each connection (the client preface) to choose. Draining sends GOAWAY on HTTP/2
// sessions; the runtime then waits for their streams like for any request in flight.
import net, { type AddressInfo, type Socket } from 'node:net';
import { listenOn } from '../listen-on.js';
import type { TLSSocket } from 'node:tls';
import type pino from 'pino';
import type { ClientFront } from '../engine.js';
import type { Http2Front } from './client-front.js';
import { peekFirstBytes } from '../accept-peek.js';
import { CLIENT_PREFACE, classifyClientPreface } from './client-preface.js';

export interface FrontChoiceOptions {
  /** h2c with prior knowledge on the plain listener */
  readonly h2c: boolean;
  /** how long the peek waits for the first bytes (the HTTP/1.1 head timeout) */
  readonly peekMs: number;
}

export function frontWithHttp2(http1: ClientFront, http2: Http2Front, opts: FrontChoiceOptions, log: pino.Logger): ClientFront {
  let server: net.Server | undefined;
  const serve = (socket: Socket): void => {
    void peekFirstBytes(socket, classifyClientPreface, { maxBytes: CLIENT_PREFACE.length, timeoutMs: opts.peekMs }).then((r) => {
      if (!r.ok) { socket.destroy(); return; }
      // node:http2 reads the bytes put back itself; the HTTP/1.1 front needs the socket flowing again
      if (r.value === 'h2') http2.handleSocket(socket);
      else { http1.handleSocket(socket); socket.resume(); }
    });
  };
  return {
    listen(host: string, port: number): Promise<AddressInfo> {
      if (!opts.h2c) return http1.listen(host, port);
      const s = net.createServer({ noDelay: true }, serve);
      server = s;
      return listenOn(s, host, port, log);
    },
    handleSocket(socket: Socket): void {
      if ((socket as TLSSocket).alpnProtocol === 'h2') http2.handleSocket(socket);
      // a plain socket accepted elsewhere (past the PROXY protocol gate: paused, bytes put back)
      else if (opts.h2c && (socket as TLSSocket).encrypted !== true) serve(socket);
      else { http1.handleSocket(socket); socket.resume(); }
    },
    stopListening(): void {
      http1.stopListening();
      server?.close();
      server = undefined;
    },
    closeIdle(): void {
      http1.closeIdle();
      http2.goAway();
    },
    get openTunnels(): number {
      return http1.openTunnels;
    },
    closeAll(): void {
      http1.closeAll();
      server?.close();
      server = undefined;
      http2.closeAll();
    },
  };
}
