// Socket event wiring shared by the native engine's client and upstream connections: one set of
// module-level listeners for every socket (no closures per connection), each forwarding to the
// connection the socket is tagged with. Detaching (an upgrade hands the socket to a tunnel) removes
// them and the tag, so nothing of the connection runs for that socket again.
import type net from 'node:net';

export interface SocketEvents {
  onData(chunk: Buffer): void;
  onDrain(): void;
  /** the peer ended its side */
  onEnd(): void;
  onClose(): void;
  /** 'close' follows an error */
  onSocketError(err: Error): void;
}

type Tagged = net.Socket & { nativeConn?: SocketEvents };

function onData(this: Tagged, chunk: Buffer): void { this.nativeConn?.onData(chunk); }
function onDrain(this: Tagged): void { this.nativeConn?.onDrain(); }
function onEnd(this: Tagged): void { this.nativeConn?.onEnd(); }
function onClose(this: Tagged): void { this.nativeConn?.onClose(); }
function onError(this: Tagged, err: Error): void { this.nativeConn?.onSocketError(err); }

export function attachSocket(socket: net.Socket, conn: SocketEvents): void {
  (socket as Tagged).nativeConn = conn;
  socket.on('data', onData);
  socket.on('drain', onDrain);
  socket.on('end', onEnd);
  socket.on('close', onClose);
  socket.on('error', onError);
}

export function detachSocket(socket: net.Socket): void {
  socket.removeListener('data', onData);
  socket.removeListener('drain', onDrain);
  socket.removeListener('end', onEnd);
  socket.removeListener('close', onClose);
  socket.removeListener('error', onError);
  (socket as Tagged).nativeConn = undefined;
}
