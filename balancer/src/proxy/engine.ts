// What an engine gives the worker runtime besides its upstream transport: the client-facing front
// (listener, accepted sockets, upgrade tunnels). The runtime owns table swaps, health and draining.
import type { AddressInfo, Socket } from 'node:net';

export interface ClientFront {
  listen(host: string, port: number): Promise<AddressInfo>;
  /** serve a socket accepted elsewhere (a TLSSocket from a tls.Server, a socket from a test) */
  handleSocket(socket: Socket): void;
  /** stop accepting new connections (listener closed) */
  stopListening(): void;
  /** close keep-alive client connections that are idle right now (called repeatedly while draining) */
  closeIdle(): void;
  /** WebSocket/Upgrade tunnels open right now (a drain waits for them) */
  readonly openTunnels: number;
  /** destroy every client connection and tunnel now */
  closeAll(): void;
}
