// "Read the first bytes before deciding" for an accepted socket: one edge that peeks, a pure
// classifier that decides. The bytes read are put back (socket.unshift) so whoever takes the socket
// next reads them again: TLS (tls.Server / the TLS listener), the relay, the HTTP engine. Bounded in
// bytes and time; a socket that closes, errs, sends too much or too slowly is refused.
// Users: SNI passthrough (l4/client-hello.ts), the PROXY protocol header, and h2c's client preface
// (proxy/http2/client-preface.ts; after the PROXY header when one is expected).
import type { Socket } from 'node:net';

/** `consumed`: leading bytes the decision used up (a PROXY header): not put back */
export type Classified<T> = { readonly state: 'need-more' } | { readonly state: 'done'; readonly value: T; readonly consumed?: number } | { readonly state: 'bad'; readonly reason: string };

export interface PeekBounds {
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

export type PeekResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** Reads until `classify` decides; the bytes are unshifted back and the socket left paused. */
export function peekFirstBytes<T>(socket: Socket, classify: (bytes: Buffer) => Classified<T>, bounds: PeekBounds): Promise<PeekResult<T>> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    let consumed = 0;
    const finish = (r: PeekResult<T>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onGone);
      socket.off('close', onGone);
      socket.off('error', onGone);
      socket.pause();
      if (r.ok && buf.length > consumed && !socket.destroyed) socket.unshift(consumed === 0 ? buf : buf.subarray(consumed));
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const v = classify(buf);
      if (v.state === 'done') {
        consumed = v.consumed ?? 0;
        finish({ ok: true, value: v.value });
      }
      else if (v.state === 'bad') finish({ ok: false, reason: v.reason });
      else if (buf.length > bounds.maxBytes) finish({ ok: false, reason: `more than ${bounds.maxBytes} bytes without a decision` });
    };
    const onGone = () => finish({ ok: false, reason: 'client went away' });
    const timer = setTimeout(() => finish({ ok: false, reason: `no decision within ${bounds.timeoutMs} ms` }), bounds.timeoutMs);
    socket.on('data', onData);
    socket.once('end', onGone);
    socket.once('close', onGone);
    socket.once('error', onGone);
    socket.resume();
  });
}
