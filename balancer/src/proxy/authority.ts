// The authority a request names (Host header, absolute-form request-target, HTTP/2 :authority):
// `uri-host [":" port]` (RFC 9112 section 3.2, RFC 3986 sections 3.2.2-3.2.3), no userinfo (RFC 9110
// section 4.2.4). Pure; what it returns is what the proxy routes on and forwards as Host and
// X-Forwarded-Host, so a backend never reads a host we did not route on (`smug:80@evil` is `evil`
// to WHATWG URL parsers).
//
// Stricter than RFC 3986 on purpose (each case in test/unit/balancer-authority.test.ts):
// - reg-name: ALPHA / DIGIT / "-" / "." / "_" / "~" only. Percent-encoding would give one host two
//   spellings (the table would have to decode); sub-delims ("," ";" "!" "$" "&" "'" "(" ")" "*" "+"
//   "=") are list and parameter syntax no DNS name or service tag uses. IDNs arrive as punycode.
// - no empty label (leading dot, ".."); one trailing dot (an absolute DNS name) is dropped, as nginx does.
// - at most 253 characters of host (the longest DNS name).
// - IP-literal: IPv6 only, as node's net.isIPv6 reads it; no zone identifier (RFC 6874: it means
//   something only on the sender's host) and no IPvFuture. The host keeps its brackets (the router's keys do).
// - port: 1*5 DIGIT, 1..65535 (0 is no port one can connect to); an empty port (`host:`) is the default
//   port (RFC 3986 section 6.2.3) and is dropped; leading zeros are dropped (`:080` is 80).
// - empty authority (`Host:` with an empty value, allowed for a target without authority): host ''.
import { isIPv6 } from 'node:net';

export interface Authority {
  /** lower-cased host, without a trailing dot; IPv6 in brackets; '' for an empty authority */
  readonly host: string;
  /** the port when one was given (and not empty) */
  readonly port?: number;
  /** what is forwarded as Host: host, then ":" port when a port was given */
  readonly hostHeader: string;
}

/** longest DNS name (RFC 1035 section 2.3.4, 255 octets on the wire) */
const MAX_HOST_CHARS = 253;

/** ALPHA / DIGIT / "-" / "." / "_" / "~" */
const REG_NAME = (() => {
  const t = new Uint8Array(128);
  for (let c = 0x30; c <= 0x39; c++) t[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) t[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) t[c] = 1;
  for (const c of '-._~') t[c.charCodeAt(0)] = 1;
  return t;
})();

/** `uri-host [":" port]` as described above, or null when it is not one. */
export function parseAuthority(value: string): Authority | null {
  const len = value.length;
  if (len === 0) return { host: '', hostHeader: '' };
  let hostEnd: number;
  let host: string;
  if (value.charCodeAt(0) === 0x5b /* [ */) {
    const close = value.indexOf(']');
    if (close < 0) return null;
    const literal = value.slice(1, close);
    // isIPv6 would accept a zone ("fe80::1%eth0"); RFC 3986's IPv6address has none
    if (literal.includes('%') || !isIPv6(literal)) return null;
    host = `[${literal.toLowerCase()}]`;
    hostEnd = close + 1;
    if (hostEnd < len && value.charCodeAt(hostEnd) !== 0x3a /* : */) return null;
  } else {
    hostEnd = value.indexOf(':');
    if (hostEnd < 0) hostEnd = len;
    let end = hostEnd;
    if (end > 1 && value.charCodeAt(end - 1) === 0x2e /* . */) end--; // absolute DNS name
    if (end === 0 || end > MAX_HOST_CHARS) return null;
    let prevDot = true; // a leading dot is an empty label
    for (let i = 0; i < end; i++) {
      const c = value.charCodeAt(i);
      if (c >= 128 || REG_NAME[c] !== 1) return null;
      const dot = c === 0x2e;
      if (dot && prevDot) return null;
      prevDot = dot;
    }
    if (prevDot) return null; // "a.." (two trailing dots)
    host = value.slice(0, end).toLowerCase();
  }
  if (hostEnd === len) return { host, hostHeader: host };
  // hostEnd is a ":"
  const digits = len - hostEnd - 1;
  if (digits === 0) return { host, hostHeader: host };
  if (digits > 5) return null;
  let port = 0;
  for (let i = hostEnd + 1; i < len; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return null;
    port = port * 10 + d;
  }
  if (port === 0 || port > 65535) return null;
  return { host, port, hostHeader: `${host}:${port}` };
}

/** Does the target start like an absolute-form http(s) URI (the only absolute-form we serve)? */
export function isAbsoluteForm(target: string): boolean {
  const c = target.charCodeAt(0) | 0x20;
  return c === 0x68 /* h */ && /^https?:\/\//i.test(target);
}

/**
 * The authority of an absolute-form request-target (`http://host[:port]/path?query`, RFC 9112
 * section 3.2.2) and its origin-form rest; null when the target is not absolute-form http(s) or its
 * authority is not valid (userinfo included).
 */
export function splitAbsoluteForm(target: string): { authority: Authority; url: string } | null {
  let start: number;
  if (target.length > 7 && target.slice(0, 7).toLowerCase() === 'http://') start = 7;
  else if (target.length > 8 && target.slice(0, 8).toLowerCase() === 'https://') start = 8;
  else return null;
  let end = start;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 0x2f /* / */ || c === 0x3f /* ? */ || c === 0x23 /* # */) break;
    end++;
  }
  if (end === start) return null; // "http:///path": no host
  const authority = parseAuthority(target.slice(start, end));
  if (authority === null || authority.host === '') return null;
  let rest = target.slice(end);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  if (rest === '' || rest.charCodeAt(0) === 0x3f) rest = `/${rest}`;
  return { authority, url: rest };
}
