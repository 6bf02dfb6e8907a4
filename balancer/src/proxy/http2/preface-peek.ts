// h2c with prior knowledge on the plain listener (RFC 9113 section 3.3): a connection whose first 24
// bytes are the client preface is HTTP/2, anything else HTTP/1.1. No `Upgrade: h2c` (removed by
// RFC 9113; gRPC clients without TLS use prior knowledge). classifyFirstBytes is pure; peekFirstBytes
// is the edge that reads the first bytes and puts them back for whoever serves the socket.
// (Local until the shared accept-path classifier, proxy/accept-peek.ts, lands; see PROXY-SEAMS.md.)
import type { Socket } from 'node:net';

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export type FirstBytes = 'h2' | 'http1' | 'more';

export function classifyFirstBytes(bytes: Buffer): FirstBytes {
  const n = Math.min(bytes.length, CLIENT_PREFACE.length);
  if (bytes.compare(CLIENT_PREFACE, 0, n, 0, n) !== 0) return 'http1';
  return n === CLIENT_PREFACE.length ? 'h2' : 'more';
}

/**
 * Reads until the kind is known (at most 24 bytes matter), then pauses the socket, puts the bytes
 * back and calls `decide`; the socket is destroyed if nothing decisive came within `timeoutMs`.
 */
export function peekFirstBytes(socket: Socket, timeoutMs: number, decide: (kind: 'h2' | 'http1') => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => { cleanup(); socket.destroy(); }, timeoutMs);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const kind = classifyFirstBytes(seen);
    if (kind === 'more') return;
    cleanup();
    socket.pause();
    socket.unshift(seen);
    decide(kind);
  };
  const onGone = (): void => { cleanup(); socket.destroy(); };
  function cleanup(): void {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onGone);
    socket.off('end', onGone);
  }
  socket.on('data', onData);
  socket.on('error', onGone);
  socket.on('end', onGone);
}
