// Pure validation of a network host (IPv4, IPv6, DNS name) and a TCP port, shared by every producer of
// an upstream address in both programs (admin API, Consul instances, registrator labels, dump file).
// A value that passes here is safe to hand to undici/http (no "/", "#", "?", space, "@" can reach a URL)
// and reads the same in every parser: a name whose last label is numeric ("10.0.0.256", "0x7f") is
// refused because URL parsers take it for an IPv4 address.
import { isIPv4, isIPv6 } from 'node:net';

export type HostKind = 'ipv4' | 'ipv6' | 'dns';

export type HostCheck =
  | { readonly ok: true; readonly host: string; readonly kind: HostKind }
  | { readonly ok: false; readonly reason: string };

export type PortCheck = { readonly ok: true; readonly port: number } | { readonly ok: false; readonly reason: string };

export type HostPortCheck =
  | { readonly ok: true; readonly host: string; readonly port: number; readonly kind: HostKind }
  | { readonly ok: false; readonly reason: string };

const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
// letters, digits, hyphen; underscore too because Docker and Consul names carry it (my_app_1)
const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/;
// what a WHATWG URL parser reads as an IPv4 part: decimal, 0x hex, octal
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|\d+)$/i;

/** Shows a value in a reason without letting a huge or control-laden string into a log line. */
export function quoteForReason(value: string, max = 80): string {
  const cut = value.length > max ? value.slice(0, max - 3) + '...' : value;
  return JSON.stringify(cut);
}

/**
 * A host as given (IPv6 may be in brackets; the result never is). Accepts an IPv4 dotted quad, an IPv6
 * address without zone index, or a DNS name (labels 1-63 of [A-Za-z0-9_-], no leading/trailing
 * hyphen, total <= 253, one optional trailing dot, last label not numeric).
 */
export function checkHost(value: unknown): HostCheck {
  if (typeof value !== 'string') return { ok: false, reason: `host must be a string, got ${value === null ? 'null' : typeof value}` };
  if (value.length === 0) return { ok: false, reason: 'host is empty' };
  if (value.length > MAX_NAME_LENGTH + 2) return { ok: false, reason: `host ${quoteForReason(value)} is longer than ${MAX_NAME_LENGTH} characters` };
  let host = value;
  const bracketed = host.startsWith('[') && host.endsWith(']');
  if (bracketed) host = host.slice(1, -1);
  if (host.includes(':') || bracketed) {
    if (host.includes('%')) return { ok: false, reason: `host ${quoteForReason(value)}: IPv6 zone indexes are not supported` };
    if (!isIPv6(host)) return { ok: false, reason: `host ${quoteForReason(value)} is not a valid IPv6 address` };
    return { ok: true, host: host.toLowerCase(), kind: 'ipv6' };
  }
  if (isIPv4(host)) return { ok: true, host, kind: 'ipv4' };
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return { ok: false, reason: `host ${quoteForReason(value)} is not a valid DNS name (length)` };
  const labels = name.split('.');
  for (const label of labels) {
    if (label.length === 0) return { ok: false, reason: `host ${quoteForReason(value)} has an empty label` };
    if (label.length > MAX_LABEL_LENGTH) return { ok: false, reason: `host ${quoteForReason(value)} has a label longer than ${MAX_LABEL_LENGTH} characters` };
    if (!LABEL.test(label)) {
      const bad = [...label].find((c) => !/[A-Za-z0-9_-]/.test(c));
      return {
        ok: false,
        reason: bad !== undefined
          ? `host ${quoteForReason(value)} contains ${JSON.stringify(bad)}, not allowed in a host name`
          : `host ${quoteForReason(value)}: a label may not start or end with "-"`,
      };
    }
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1])) {
    return { ok: false, reason: `host ${quoteForReason(value)} is neither a valid IPv4 address nor a DNS name (numeric last label)` };
  }
  return { ok: true, host, kind: 'dns' };
}

/** An integer port 1-65535, as a number or a decimal string without sign, spaces or leading zeros. */
export function checkPort(value: unknown): PortCheck {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string') {
    if (!/^[1-9][0-9]{0,4}$/.test(value)) return { ok: false, reason: `port ${quoteForReason(value)} is not an integer 1-65535` };
    n = Number(value);
  } else return { ok: false, reason: `port must be an integer 1-65535, got ${value === null ? 'null' : typeof value}` };
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    return { ok: false, reason: `port ${typeof value === 'string' ? quoteForReason(value) : String(n)} is not an integer 1-65535` };
  }
  return { ok: true, port: n };
}

/** Both checks; the reason names the first problem found. */
export function checkHostPort(host: unknown, port: unknown): HostPortCheck {
  const h = checkHost(host);
  if (!h.ok) return h;
  const p = checkPort(port);
  if (!p.ok) return p;
  return { ok: true, host: h.host, port: p.port, kind: h.kind };
}

/**
 * Splits "host:port", "[v6]:port", or (with defaultPort) a bare "host" / "[v6]", and checks both parts.
 * A bare IPv6 address without brackets is refused: its last group would read as a port.
 */
export function parseHostPort(address: unknown, defaultPort?: number): HostPortCheck {
  if (typeof address !== 'string') return { ok: false, reason: `address must be a string, got ${address === null ? 'null' : typeof address}` };
  let hostText: string;
  let portText: string | undefined;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0) return { ok: false, reason: `address ${quoteForReason(address)}: "[" without "]"` };
    hostText = address.slice(0, close + 1);
    const rest = address.slice(close + 1);
    if (rest && !rest.startsWith(':')) return { ok: false, reason: `address ${quoteForReason(address)}: expected ":<port>" after "]"` };
    portText = rest ? rest.slice(1) : undefined;
  } else {
    const colon = address.lastIndexOf(':');
    hostText = colon < 0 ? address : address.slice(0, colon);
    portText = colon < 0 ? undefined : address.slice(colon + 1);
    if (hostText.includes(':')) return { ok: false, reason: `address ${quoteForReason(address)}: an IPv6 address must be in brackets, as in [::1]:80` };
  }
  if (portText === undefined) {
    if (defaultPort === undefined) return { ok: false, reason: `address ${quoteForReason(address)} has no port` };
    return checkHostPort(hostText, defaultPort);
  }
  return checkHostPort(hostText, portText);
}
