// Pure: KV key segments built only from characters every Consul version accepts. Consul 1.21.5 briefly
// refused keys outside [a-zA-Z0-9,_./-?&=] with a 400 (kvs_endpoint.go); later releases relaxed it, and
// our keys must not depend on that. A segment keeps [A-Za-z0-9,_.-] as it is; every other UTF-8 byte is
// written "=XX" (two upper-case hex digits), "=" itself included, so the encoding is reversible. "/" is
// encoded too (it separates segments), and "?", "&" (in the set, but they end a URL path) as well.
// A segment of dots only ("." or "..", which HTTP path cleaning would eat) is encoded whole.
// Engine ID "ABCD:EFGH:IJKL" -> "ABCD=3AEFGH=3AIJKL"; host name "web-1.example" is unchanged.

const KEPT = /^[A-Za-z0-9,_.-]$/;

export function encodeKeySegment(text: string): string {
  const dotsOnly = /^\.*$/.test(text);
  let out = '';
  for (const ch of text) {
    if (KEPT.test(ch) && !(dotsOnly && ch === '.')) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, 'utf8')) out += `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of encodeKeySegment; undefined for text it cannot have produced. */
export function decodeKeySegment(text: string): string | undefined {
  if (!/^(?:[A-Za-z0-9,_.-]|=[0-9A-F]{2})*$/.test(text)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '=') {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(text.charCodeAt(i));
    }
  }
  const decoded = Buffer.from(bytes).toString('utf8');
  return encodeKeySegment(decoded) === text ? decoded : undefined;
}

/** The characters of the strictest Consul key rule (1.21.5). */
export const STRICT_KEY = /^[a-zA-Z0-9,_./\-?&=]*$/;
