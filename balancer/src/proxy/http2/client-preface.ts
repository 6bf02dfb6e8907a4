// h2c with prior knowledge on the plain listener (RFC 9113 section 3.3): a connection whose first 24
// bytes are the client preface is HTTP/2, anything else HTTP/1.1. No `Upgrade: h2c` (removed by
// RFC 9113; gRPC clients without TLS use prior knowledge). A pure classifier for the accept path's
// shared first-bytes peek (proxy/accept-peek.ts); a PROXY protocol header, when one is expected,
// was read and consumed before this runs.
import type { Classified } from '../accept-peek.js';

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export type ClientProtocol = 'h2' | 'http1';

/** 'h2' once the 24 preface bytes came, 'http1' at the first byte that differs, else need-more. */
export function classifyClientPreface(bytes: Buffer): Classified<ClientProtocol> {
  const n = Math.min(bytes.length, CLIENT_PREFACE.length);
  if (bytes.compare(CLIENT_PREFACE, 0, n, 0, n) !== 0) return { state: 'done', value: 'http1' };
  return n === CLIENT_PREFACE.length ? { state: 'done', value: 'h2' } : { state: 'need-more' };
}
