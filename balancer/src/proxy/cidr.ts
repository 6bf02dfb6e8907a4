// CIDR ranges (IPv4 and IPv6) and a matcher for client addresses, for --trust-forwarded. Pure: text in,
// bytes compared. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are compared as the IPv4 address they
// carry, on both sides, so "10.0.0.0/8" matches a dual-stack listener's "::ffff:10.1.2.3".

export interface CidrRange {
  /** 4 or 16 bytes, host bits zeroed */
  readonly bytes: Uint8Array;
  readonly prefix: number;
  /** the range as given, for messages */
  readonly text: string;
}

function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    // no leading zeros: "010" is octal to some parsers and decimal to others
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out[i] = Number(p);
  }
  return out;
}

function parseIPv6(text: string): Uint8Array | undefined {
  let t = text;
  let tail: Uint8Array | undefined;
  const lastColon = t.lastIndexOf(':');
  if (t.includes('.', lastColon)) {
    // embedded IPv4 in the last 32 bits
    tail = parseIPv4(t.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    t = `${t.slice(0, lastColon + 1)}0:0`;
  }
  const halves = t.split('::');
  if (halves.length > 2) return undefined;
  const group = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = group(halves[0]);
  const rest = halves.length === 2 ? group(halves[1]) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(groups[i])) return undefined;
    const v = parseInt(groups[i], 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  }
  if (tail !== undefined) out.set(tail, 12);
  return out;
}

/** ::ffff:a.b.c.d -> a.b.c.d as 4 bytes; any other address unchanged. */
function unmapIPv4(bytes: Uint8Array): Uint8Array {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return bytes;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return bytes;
  return bytes.slice(12);
}

/** An IP address as bytes (4 for IPv4 and IPv4-mapped IPv6, else 16); undefined when it is none. */
export function parseIp(text: string): Uint8Array | undefined {
  let t = text;
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  const bytes = t.includes(':') ? parseIPv6(t) : parseIPv4(t);
  return bytes === undefined ? undefined : unmapIPv4(bytes);
}

/** "10.0.0.0/8", "fd00::/8", "127.0.0.1" (one host), "::1"; undefined when malformed. */
export function parseCidr(text: string): CidrRange | undefined {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addrText = slash < 0 ? t : t.slice(0, slash);
  if (addrText.includes('%')) return undefined;
  const raw = addrText.includes(':') ? parseIPv6(addrText) : parseIPv4(addrText);
  if (raw === undefined) return undefined;
  const bytes = unmapIPv4(raw);
  const bits = bytes.length * 8;
  let prefix = bits;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return undefined;
    prefix = Number(p);
    // a mapped range keeps its meaning on the IPv4 side: ::ffff:10.0.0.0/104 is 10.0.0.0/8
    if (raw.length === 16 && bytes.length === 4) prefix -= 96;
    if (prefix < 0 || prefix > bits) return undefined;
  }
  const masked = bytes.slice();
  for (let i = 0; i < masked.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    masked[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return { bytes: masked, prefix, text: t };
}

export class CidrError extends Error {
  readonly code = 'ERR_CIDR' as const;
}

/** Comma or space separated CIDR list; throws CidrError naming the first bad entry. */
export function parseCidrList(text: string | readonly string[]): CidrRange[] {
  const items = typeof text === 'string' ? text.split(/[\s,]+/) : text.flatMap((t) => t.split(/[\s,]+/));
  const out: CidrRange[] = [];
  for (const item of items) {
    if (item === '') continue;
    const range = parseCidr(item);
    if (range === undefined) throw new CidrError(`"${item}" is not an IPv4 or IPv6 address or CIDR range`);
    out.push(range);
  }
  return out;
}

function inRange(addr: Uint8Array, range: CidrRange): boolean {
  if (addr.length !== range.bytes.length) return false;
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i] & mask) !== range.bytes[i]) return false;
  }
  return true;
}

/** Does an address fall in any of the ranges? Addresses are parsed once per distinct string. */
export class CidrMatcher {
  readonly #ranges: readonly CidrRange[];
  /** the last answers, bounded: clients repeat their address on every request */
  readonly #cache = new Map<string, boolean>();

  constructor(ranges: readonly CidrRange[]) {
    this.#ranges = ranges;
  }

  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  has(address: string): boolean {
    if (this.#ranges.length === 0) return false;
    const cached = this.#cache.get(address);
    if (cached !== undefined) return cached;
    const bytes = parseIp(address);
    const hit = bytes !== undefined && this.#ranges.some((r) => inRange(bytes, r));
    if (this.#cache.size >= 1024) this.#cache.clear();
    this.#cache.set(address, hit);
    return hit;
  }
}
