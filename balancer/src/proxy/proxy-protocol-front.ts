// The plain listener with --proxy-protocol-from: every accepted socket passes the PROXY protocol
// gate (proxy-protocol-accept.ts) first, then goes to the front underneath (h2c preface, HTTP/1.1)
// as a socket accepted elsewhere. Sockets handed over (TLS) passed the TLS listener's own gate.
import net, { type AddressInfo, type Socket } from 'node:net';
import { listenOn } from './listen-on.js';
import type pino from 'pino';
import type { ClientFront } from './engine.js';
import type { AcceptGate } from './proxy-protocol-accept.js';

export function frontWithProxyProtocol(inner: ClientFront, gate: AcceptGate | undefined, log: pino.Logger): ClientFront {
  if (gate === undefined) return inner;
  let server: net.Server | undefined;
  const pending = new Set<Socket>();
  const accept = (socket: Socket): void => {
    pending.add(socket);
    socket.on('error', () => undefined); // a reset during the gate: its 'close' ends it
    socket.once('close', () => pending.delete(socket));
    void gate(socket).then((ok) => {
      pending.delete(socket);
      if (ok && !socket.destroyed) inner.handleSocket(socket);
    });
  };
  return {
    listen(host: string, port: number): Promise<AddressInfo> {
      const s = net.createServer({ noDelay: true, pauseOnConnect: true }, accept);
      server = s;
      return listenOn(s, host, port, log);
    },
    handleSocket: (socket) => inner.handleSocket(socket),
    stopListening(): void {
      server?.close();
      server = undefined;
      inner.stopListening();
    },
    closeIdle: () => inner.closeIdle(),
    get openTunnels(): number {
      return inner.openTunnels;
    },
    closeAll(): void {
      server?.close();
      server = undefined;
      for (const s of pending) s.destroy();
      inner.closeAll();
    },
  };
}
