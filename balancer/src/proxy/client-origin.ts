// Where a client connection comes from, decided once per connection at accept: the socket's own
// peer, or the address a PROXY protocol header from a trusted load balancer carried
// (--proxy-protocol-from). Access rules, logs, metrics, X-Forwarded-For, hash by client IP and the
// header we send upstream (proxy_protocol=) all read it from here, never from socket.remoteAddress.
import type { Socket } from 'node:net';

/** Client address without the IPv4-mapped IPv6 prefix. */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return '';
  return remote.startsWith('::ffff:') ? remote.slice(7) : remote;
}

/** The client side of one connection; every request and HTTP/2 stream on it shares it. */
export interface ClientOrigin {
  /** the client's address, IPv4 plain (no ::ffff: prefix) */
  readonly address: string;
  readonly port: number;
  /** the address and port the client connected to (the load balancer's, when a header said so) */
  readonly localAddress: string;
  readonly localPort: number;
  /** true: a PROXY protocol header said so */
  readonly carried: boolean;
  /** the client connection itself: what an upstream connection bound to this client follows */
  readonly connection: ConnectionHandle;
}

/** The little of a client socket an upstream connection bound to it needs (its end). */
export interface ConnectionHandle {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
}

// a symbol property, not a WeakMap: node's HTTP/2 session hands out a Proxy of its socket, which
// forwards property reads to the socket but is not the same key
const ORIGIN = Symbol('clientOrigin');

type WithOrigin = Socket & { [ORIGIN]?: ClientOrigin; _parent?: WithOrigin };

/** The accept path: a trusted PROXY header said where this connection comes from. */
export function recordCarriedOrigin(socket: Socket, carried: { address: string; port: number; localAddress: string; localPort: number }): void {
  (socket as WithOrigin)[ORIGIN] = { ...carried, address: clientAddress(carried.address), localAddress: clientAddress(carried.localAddress), carried: true, connection: socket };
}

/**
 * The origin of a client socket. A TLSSocket made from an accepted socket finds the header its
 * raw socket carried through `_parent` (node sets it for a tls.Server's connections).
 */
export function clientOriginOf(socket: Socket): ClientOrigin {
  const s = socket as WithOrigin;
  const carried = s[ORIGIN] ?? s._parent?.[ORIGIN];
  if (carried !== undefined) return carried.connection === socket ? carried : { ...carried, connection: socket };
  return {
    address: clientAddress(socket.remoteAddress), port: socket.remotePort ?? 0,
    localAddress: clientAddress(socket.localAddress), localPort: socket.localPort ?? 0,
    carried: false, connection: socket,
  };
}
