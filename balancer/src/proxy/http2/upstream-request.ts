// An UpstreamRequest (HTTP/1.1-shaped flat header list, Host first or anywhere) as an HTTP/2 request
// header object: :authority from Host, connection-specific fields left out (RFC 9113 section 8.2.2),
// `te: trailers` always (gRPC servers require it; any HTTP/2 server may then send trailers). Pure.
import type { OutgoingHttpHeaders } from 'node:http2';

const LEFT_OUT = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

export function http2RequestHeaders(method: string, path: string, headers: readonly string[], tls: boolean, fallbackAuthority: string): OutgoingHttpHeaders {
  let authority: string | undefined;
  const out: OutgoingHttpHeaders = { ':method': method, ':path': path, ':scheme': tls ? 'https' : 'http' };
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i].toLowerCase();
    const value = headers[i + 1];
    if (name === 'host') { authority ??= value; continue; }
    if (LEFT_OUT.has(name)) continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [String(prev), value];
  }
  out[':authority'] = authority ?? fallbackAuthority;
  out.te = 'trailers';
  return out;
}

/** node's response header object -> flat [name, value, ...] without pseudo-headers. */
export function flatResponseHeaders(h: Record<string, string | string[] | number | undefined>): string[] {
  const out: string[] = [];
  for (const name in h) {
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const v = h[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) out.push(name, one);
    else out.push(name, String(v));
  }
  return out;
}
