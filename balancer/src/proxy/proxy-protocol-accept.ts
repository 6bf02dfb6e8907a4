// The PROXY protocol header on accept (--proxy-protocol-from), for the HTTP listeners (plain and
// --tls-listen, before TLS and before the h2c preface): a peer in the list must open with a v1/v2
// header (as nginx `listen ... proxy_protocol` and HAProxy `accept-proxy` require it; a header-less
// connection from it is closed), whose address becomes the connection's origin (client-origin.ts).
// Anyone else opening with a header is closed too: it would otherwise claim any address it likes
// the day the list grows. Bounded: a header is at most V2_MAX_BYTES, within `timeoutMs` of accept.
import type { Socket } from 'node:net';
import type pino from 'pino';
import { peekFirstBytes, type Classified } from './accept-peek.js';
import { CidrMatcher, parseCidrList } from './cidr.js';
import { clientAddress, recordCarriedOrigin } from './client-origin.js';
import { decodeProxyHeader, V2_MAX_BYTES, V2_SIGNATURE, type ProxyHeader } from '../l4/proxy-protocol.js';

const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');

/** true while `bytes` are a beginning of `sig` (or `sig` is a beginning of them) */
function startsLike(bytes: Buffer, sig: Buffer): boolean {
  const n = Math.min(bytes.length, sig.length);
  return bytes.compare(sig, 0, n, 0, n) === 0;
}

/**
 * Pure: the first bytes of a connection from a trusted peer (a header, whose length is consumed)
 * or from another one (`null`: no header, nothing consumed; a header is refused).
 */
export function classifyPreamble(bytes: Buffer, trusted: boolean): Classified<ProxyHeader | null> {
  if (trusted) {
    const v = decodeProxyHeader(bytes);
    return v.state === 'done' ? { state: 'done', value: v.header, consumed: v.length } : v;
  }
  for (const sig of [V1_SIGNATURE, V2_SIGNATURE]) {
    if (!startsLike(bytes, sig)) continue;
    if (bytes.length >= sig.length) return { state: 'bad', reason: 'PROXY protocol header from a peer not in --proxy-protocol-from' };
    return { state: 'need-more' };
  }
  return { state: 'done', value: null };
}

/** Reads the preamble of an accepted socket; false: the socket was closed (it is destroyed). */
export type AcceptGate = (socket: Socket) => Promise<boolean>;

/** The gate for --proxy-protocol-from; undefined when the list is empty (nothing is read). */
export function proxyProtocolGate(trustedPeers: readonly string[], timeoutMs: number, log: pino.Logger): AcceptGate | undefined {
  const trusted = new CidrMatcher(parseCidrList(trustedPeers));
  if (trusted.empty) return undefined;
  return async (socket) => {
    const peer = clientAddress(socket.remoteAddress);
    const fromTrusted = trusted.has(peer);
    const r = await peekFirstBytes(socket, (bytes) => classifyPreamble(bytes, fromTrusted), { maxBytes: V2_MAX_BYTES, timeoutMs });
    if (!r.ok) {
      log.debug({ peer, reason: r.reason }, 'PROXY protocol: connection closed');
      socket.destroy();
      return false;
    }
    const h = r.value;
    // LOCAL (a health check of the load balancer itself) and UNKNOWN: the connection's own addresses stand
    if (h?.kind === 'proxy') {
      const a = h.addresses;
      recordCarriedOrigin(socket, { address: a.source, port: a.sourcePort, localAddress: a.destination, localPort: a.destinationPort });
    }
    return true;
  };
}
