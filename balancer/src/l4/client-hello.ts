// The TLS ClientHello's server name (SNI, RFC 6066 section 3), read without terminating TLS (pure):
// bytes in, a verdict out. The hello may span several handshake records (RFC 8446 section 5.1) and
// arrive in any number of small pieces; it is bounded (MAX_HELLO_BYTES). Anything that is not a
// well-formed ClientHello is 'bad' (the connection is then closed); a hello without a host_name is
// 'done' with no name. Offsets and lengths are checked before every read.

/** handshake bytes accepted for one ClientHello (large post-quantum key shares fit easily) */
export const MAX_HELLO_BYTES = 16_384;
const RECORD_HEADER = 5;
const HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME_EXT = 0x0000;
const HOST_NAME = 0x00;
const HOST = /^[a-z0-9]([a-z0-9-]{0,62})?(\.[a-z0-9]([a-z0-9-]{0,62})?)*$/;

export type HelloVerdict =
  | { readonly state: 'need-more' }
  | { readonly state: 'done'; readonly serverName?: string }
  | { readonly state: 'bad'; readonly reason: string };

const NEED_MORE: HelloVerdict = Object.freeze({ state: 'need-more' });

function bad(reason: string): HelloVerdict {
  return { state: 'bad', reason };
}

/** The verdict on the bytes a client sent so far (call again with more when 'need-more'). */
export function readClientHello(buf: Buffer): HelloVerdict {
  // gather the handshake bytes of consecutive handshake records
  const parts: Buffer[] = [];
  let have = 0;
  let off = 0;
  let needed = -1;
  while (true) {
    if (buf.length - off < RECORD_HEADER) return buf.length - off === 0 || buf[off] === HANDSHAKE ? NEED_MORE : bad('not a TLS handshake record');
    if (buf[off] !== HANDSHAKE) return bad('not a TLS handshake record');
    if (buf[off + 1] !== 0x03 || buf[off + 2] > 0x04) return bad('unknown TLS record version');
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16_384) return bad('bad TLS record length');
    const bodyEnd = off + RECORD_HEADER + len;
    const available = Math.min(bodyEnd, buf.length);
    parts.push(buf.subarray(off + RECORD_HEADER, available));
    have += available - off - RECORD_HEADER;
    if (needed < 0 && have >= 4) {
      const hs = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (hs[0] !== CLIENT_HELLO) return bad('first handshake message is not a ClientHello');
      needed = 4 + hs.readUIntBE(1, 3);
      if (needed > MAX_HELLO_BYTES) return bad(`ClientHello larger than ${MAX_HELLO_BYTES} bytes`);
    }
    if (needed >= 0 && have >= needed) return parseHello((parts.length === 1 ? parts[0] : Buffer.concat(parts)).subarray(4, needed));
    if (available < bodyEnd) return NEED_MORE;
    off = bodyEnd;
    if (have > MAX_HELLO_BYTES) return bad(`ClientHello larger than ${MAX_HELLO_BYTES} bytes`);
  }
}

function parseHello(h: Buffer): HelloVerdict {
  let p = 0;
  const need = (n: number) => p + n <= h.length;
  if (!need(2 + 32 + 1)) return bad('ClientHello too short');
  if (h[0] !== 0x03) return bad('unknown ClientHello version');
  p = 34;
  const sid = h[p];
  p += 1;
  if (sid > 32 || !need(sid + 2)) return bad('bad session id');
  p += sid;
  const suites = h.readUInt16BE(p);
  p += 2;
  if (suites === 0 || suites % 2 !== 0 || !need(suites + 1)) return bad('bad cipher suites');
  p += suites;
  const comp = h[p];
  p += 1;
  if (comp === 0 || !need(comp)) return bad('bad compression methods');
  p += comp;
  if (p === h.length) return { state: 'done' }; // no extensions at all
  if (!need(2)) return bad('bad extensions');
  const extEnd = p + 2 + h.readUInt16BE(p);
  p += 2;
  if (extEnd !== h.length) return bad('extensions length does not match the hello');
  let serverName: string | undefined;
  while (p < extEnd) {
    if (p + 4 > extEnd) return bad('truncated extension');
    const type = h.readUInt16BE(p);
    const len = h.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return bad('truncated extension');
    if (type === SERVER_NAME_EXT) {
      if (serverName !== undefined) return bad('two server_name extensions');
      const name = parseServerName(h.subarray(p, p + len));
      if (typeof name !== 'string' && name !== undefined) return name;
      serverName = name ?? '';
    }
    p += len;
  }
  return serverName ? { state: 'done', serverName } : { state: 'done' };
}

/** The host_name of a server_name extension body; undefined when it names none. */
function parseServerName(e: Buffer): string | undefined | HelloVerdict {
  if (e.length < 2 || e.readUInt16BE(0) !== e.length - 2) return bad('bad server_name list');
  let p = 2;
  let host: string | undefined;
  while (p < e.length) {
    if (p + 3 > e.length) return bad('bad server_name entry');
    const type = e[p];
    const len = e.readUInt16BE(p + 1);
    p += 3;
    if (len === 0 || p + len > e.length) return bad('bad server_name entry');
    if (type === HOST_NAME) {
      if (host !== undefined) return bad('two host_name entries');
      let name = e.toString('latin1', p, p + len).toLowerCase();
      if (name.endsWith('.')) name = name.slice(0, -1);
      if (name.length > 253 || !HOST.test(name)) return bad('host_name is not a DNS name');
      host = name;
    }
    p += len;
  }
  return host;
}
