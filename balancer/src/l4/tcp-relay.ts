// One TCP connection relayed between a client and one upstream server, bytes untouched. Half-close
// correct: both sockets allow half-open, so the end of one direction (FIN) is passed on with end()
// and the other direction keeps flowing until it ends too. One idle timer: the client socket's
// inactivity covers both directions (every byte either way is a read or a write on it). An error on
// either side, the idle timeout, a drain or a shutdown destroys both.
import type { Socket } from 'node:net';

export type RelayEndReason = 'closed' | 'idle' | 'error' | 'drained' | 'shutdown';

export interface RelayEnd {
  /** client -> server bytes, and server -> client */
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly reason: RelayEndReason;
  readonly error?: string;
}

export interface Relay {
  /** ends both sockets now (drain timeout, shutdown) */
  close(reason: RelayEndReason): void;
}

export function startRelay(client: Socket, upstream: Socket, idleMs: number, onEnd: (end: RelayEnd) => void): Relay {
  let reason: RelayEndReason | undefined;
  let error: string | undefined;
  let closed = 0;
  const fail = (why: RelayEndReason, err?: Error) => {
    if (reason === undefined) {
      reason = why;
      if (err) error = (err as NodeJS.ErrnoException).code ?? err.message;
    }
    client.destroy();
    upstream.destroy();
  };
  const onClose = () => {
    if (++closed < 2) return;
    onEnd({
      bytesIn: client.bytesRead,
      bytesOut: client.bytesWritten,
      reason: reason ?? 'closed',
      ...(error !== undefined ? { error } : {}),
    });
  };
  client.on('error', (err) => fail('error', err));
  upstream.on('error', (err) => fail('error', err));
  client.once('close', onClose);
  upstream.once('close', onClose);
  // a socket whose both directions ended closes by itself (allowHalfOpen: the end is ours to send)
  client.once('end', () => { if (upstream.writable) upstream.end(); });
  upstream.once('end', () => { if (client.writable) client.end(); });
  if (idleMs > 0) {
    client.setTimeout(idleMs);
    client.on('timeout', () => fail('idle'));
  }
  // pipe keeps backpressure both ways; ends are forwarded above (end: false keeps the order explicit)
  client.pipe(upstream, { end: false });
  upstream.pipe(client, { end: false });
  return { close: (why) => fail(why) };
}
