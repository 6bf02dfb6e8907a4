// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), pure: encode the
// client's address for a backend, decode one sent by a trusted load balancer in front. Only what a
// TCP stream needs: v1 TCP4/TCP6/UNKNOWN; v2 PROXY/LOCAL over TCP/IPv4 and TCP/IPv6, TLVs skipped.
import { isIP } from 'node:net';
import { parseIp } from '../proxy/cidr.js';

/** v2: \r\n\r\n\0\r\nQUIT\n */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** v1: the longest header, "PROXY TCP6 <39> <39> 65535 65535\r\n" (spec section 2.1) */
export const V1_MAX_BYTES = 107;
/** v2: 16 bytes of header plus what its length says; we accept at most this much */
export const V2_MAX_BYTES = 16 + 536;

export interface ProxyAddresses {
  readonly source: string;
  readonly sourcePort: number;
  readonly destination: string;
  readonly destinationPort: number;
}

export type ProxyHeader = { readonly kind: 'proxy'; readonly addresses: ProxyAddresses } | { readonly kind: 'local' } | { readonly kind: 'unknown' };

export type ProxyDecode =
  | { readonly state: 'need-more' }
  | { readonly state: 'done'; readonly header: ProxyHeader; readonly length: number }
  | { readonly state: 'bad'; readonly reason: string };

/** The address without an IPv4-mapped prefix, and its family (4 or 6; 0 = not an address). */
function plain(address: string): { addr: string; family: 0 | 4 | 6 } {
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  const f = isIP(a);
  return { addr: a, family: f === 4 ? 4 : f === 6 ? 6 : 0 };
}

/** Both addresses in one family: an IPv4 one beside an IPv6 one is written IPv4-mapped. */
function sameFamily(a: ProxyAddresses): { s: ReturnType<typeof plain>; d: ReturnType<typeof plain> } {
  const s = plain(a.source);
  const d = plain(a.destination);
  if (s.family === 4 && d.family === 6) return { s: { addr: `::ffff:${s.addr}`, family: 6 }, d };
  if (s.family === 6 && d.family === 4) return { s, d: { addr: `::ffff:${d.addr}`, family: 6 } };
  return { s, d };
}

/** v1 text header; UNKNOWN when an address is not one. */
export function encodeV1(a: ProxyAddresses): Buffer {
  const { s, d } = sameFamily(a);
  if (s.family === 0 || s.family !== d.family) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.from(`PROXY TCP${s.family} ${s.addr} ${d.addr} ${a.sourcePort} ${a.destinationPort}\r\n`, 'latin1');
}

/** v2 binary header (command PROXY, TCP); LOCAL with no address when an address is not one. */
export function encodeV2(a: ProxyAddresses): Buffer {
  const { s, d } = sameFamily(a);
  if (s.family === 0 || s.family !== d.family) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const sb = parseIp(s.addr)!;
  const db = parseIp(d.addr)!;
  const len = sb.length * 2 + 4;
  const out = Buffer.alloc(16 + len);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = s.family === 4 ? 0x11 : 0x21; // TCP over IPv4 / IPv6
  out.writeUInt16BE(len, 14);
  out.set(sb, 16);
  out.set(db, 16 + sb.length);
  out.writeUInt16BE(a.sourcePort, 16 + sb.length * 2);
  out.writeUInt16BE(a.destinationPort, 18 + sb.length * 2);
  return out;
}

const V1_LINE = /^PROXY (TCP4|TCP6) (\S+) (\S+) (\d{1,5}) (\d{1,5})\r\n$/;

/** A header at the start of `buf` (v1 or v2), its length, or why it is not one. */
export function decodeProxyHeader(buf: Buffer): ProxyDecode {
  if (buf.length === 0) return { state: 'need-more' };
  if (buf[0] === 0x0d) return decodeV2(buf);
  if (buf[0] === 0x50 /* P */) return decodeV1(buf);
  return { state: 'bad', reason: 'no PROXY protocol header' };
}

function decodeV1(buf: Buffer): ProxyDecode {
  const prefix = 'PROXY ';
  const head = buf.toString('latin1', 0, Math.min(buf.length, prefix.length));
  if (!prefix.startsWith(head)) return { state: 'bad', reason: 'no PROXY protocol header' };
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return buf.length >= V1_MAX_BYTES ? { state: 'bad', reason: 'v1 header longer than 107 bytes' } : { state: 'need-more' };
  if (lf + 1 > V1_MAX_BYTES || buf[lf - 1] !== 0x0d) return { state: 'bad', reason: 'v1 header not ended by CRLF within 107 bytes' };
  const line = buf.toString('latin1', 0, lf + 1);
  if (line.startsWith('PROXY UNKNOWN')) return { state: 'done', header: { kind: 'unknown' }, length: lf + 1 };
  const m = V1_LINE.exec(line);
  if (!m) return { state: 'bad', reason: 'malformed v1 header' };
  const family = m[1] === 'TCP4' ? 4 : 6;
  const [sp, dp] = [Number(m[4]), Number(m[5])];
  if (isIP(m[2]) !== family || isIP(m[3]) !== family || sp > 65535 || dp > 65535 || /^0\d/.test(m[4]) || /^0\d/.test(m[5])) return { state: 'bad', reason: 'malformed v1 addresses' };
  return { state: 'done', header: { kind: 'proxy', addresses: { source: m[2], sourcePort: sp, destination: m[3], destinationPort: dp } }, length: lf + 1 };
}

function decodeV2(buf: Buffer): ProxyDecode {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n))) return { state: 'bad', reason: 'no PROXY protocol header' };
  if (buf.length < 16) return { state: 'need-more' };
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) return { state: 'bad', reason: 'v2 header with an unknown version' };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { state: 'bad', reason: 'v2 header with an unknown command' };
  const len = buf.readUInt16BE(14);
  if (16 + len > V2_MAX_BYTES) return { state: 'bad', reason: 'v2 header too long' };
  if (buf.length < 16 + len) return { state: 'need-more' };
  const total = 16 + len;
  if (cmd === 0) return { state: 'done', header: { kind: 'local' }, length: total };
  const fam = buf[13];
  if (fam === 0x11 || fam === 0x12) {
    if (len < 12) return { state: 'bad', reason: 'v2 IPv4 addresses truncated' };
    const ip = (o: number) => `${buf[o]}.${buf[o + 1]}.${buf[o + 2]}.${buf[o + 3]}`;
    return { state: 'done', header: { kind: 'proxy', addresses: { source: ip(16), destination: ip(20), sourcePort: buf.readUInt16BE(24), destinationPort: buf.readUInt16BE(26) } }, length: total };
  }
  if (fam === 0x21 || fam === 0x22) {
    if (len < 36) return { state: 'bad', reason: 'v2 IPv6 addresses truncated' };
    const ip = (o: number) => {
      const g: string[] = [];
      for (let i = 0; i < 8; i++) g.push(buf.readUInt16BE(o + i * 2).toString(16));
      return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:::+/, '::');
    };
    return { state: 'done', header: { kind: 'proxy', addresses: { source: ip(16), destination: ip(32), sourcePort: buf.readUInt16BE(48), destinationPort: buf.readUInt16BE(50) } }, length: total };
  }
  // UNSPEC or UNIX: the connection's own addresses stand (spec section 2.2)
  return { state: 'done', header: { kind: 'unknown' }, length: total };
}
