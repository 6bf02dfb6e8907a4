// An HTTP/2 request header block (node's flat raw list, pseudo-headers first) as the exchange layer
// reads an HTTP/1.1 head: method, origin-form target, and a header list whose first field is Host
// (from :authority). The rules of RFC 9113 section 8.2-8.3 are checked here too, although nghttp2
// already refuses most of them before node hands us the stream: this function is the one that says
// what an HTTP/2 request means on an HTTP/1.1 hop, and it must not depend on nghttp2 staying strict.
// Pure.
import { parseAuthority } from '../authority.js';

export interface Http2RequestHead {
  readonly method: string;
  /** :path as sent (origin-form, or '*' for OPTIONS) */
  readonly target: string;
  readonly scheme: string;
  /** flat [name, value, ...]: `host` first (from :authority, else the Host field), cookie crumbs joined */
  readonly rawHeaders: string[];
  /** the client sent `te: trailers`: it can take trailers (gRPC always does) */
  readonly acceptsTrailers: boolean;
  /** content-type application/grpc[+proto|...]: errors are gRPC errors, the body streams as it comes */
  readonly grpc: boolean;
}

export interface Http2RequestRefusal {
  /** why, for the log; the stream is reset with PROTOCOL_ERROR (RFC 9113 section 8.1.1: malformed) */
  readonly malformed: string;
}

/** Connection-specific fields (RFC 9113 section 8.2.2): a request that carries one is malformed. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);


export function parseHttp2RequestHead(raw: readonly string[]): Http2RequestHead | Http2RequestRefusal {
  let method: string | undefined;
  let path: string | undefined;
  let scheme: string | undefined;
  let authority: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  let acceptsTrailers = false;
  let grpc = false;
  let regular = false;
  const out: string[] = ['host', ''];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regular) return { malformed: `pseudo-header ${name} after a regular field` };
      switch (name) {
        case ':method': if (method !== undefined) return { malformed: 'two :method' }; method = value; break;
        case ':path': if (path !== undefined) return { malformed: 'two :path' }; path = value; break;
        case ':scheme': if (scheme !== undefined) return { malformed: 'two :scheme' }; scheme = value; break;
        case ':authority': if (authority !== undefined) return { malformed: 'two :authority' }; authority = value; break;
        default: return { malformed: `unknown pseudo-header ${name}` };
      }
      continue;
    }
    regular = true;
    if (name !== name.toLowerCase()) return { malformed: `upper-case field name ${name}` };
    if (CONNECTION_SPECIFIC.has(name)) return { malformed: `connection-specific field ${name}` };
    if (name === 'te') {
      if (value.trim().toLowerCase() !== 'trailers') return { malformed: 'te other than trailers' };
      acceptsTrailers = true;
      continue;
    }
    if (name === 'host') {
      if (host !== undefined) return { malformed: 'two host fields' };
      host = value;
      continue;
    }
    if (name === 'cookie') {
      // RFC 9113 section 8.2.3: crumbs are joined with "; " before an HTTP/1.1 hop
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'content-type' && value.startsWith('application/grpc') && (value.length === 16 || value.charCodeAt(16) === 43 /* + */ || value.charCodeAt(16) === 59 /* ; */)) grpc = true;
    out.push(name, value);
  }
  if (method === undefined || method === '') return { malformed: 'no :method' };
  if (method === 'CONNECT') return { malformed: 'CONNECT is not proxied' };
  if (scheme === undefined || scheme === '') return { malformed: 'no :scheme' };
  if (path === undefined || path === '') return { malformed: 'no :path' };
  if (path !== '*' && path.charCodeAt(0) !== 47 /* / */) return { malformed: ':path not origin-form' };
  if (path === '*' && method !== 'OPTIONS') return { malformed: ':path * on a method other than OPTIONS' };
  // section 8.3.1: :authority wins; a Host that names another authority is malformed
  if (authority !== undefined && host !== undefined && host.toLowerCase() !== authority.toLowerCase()) return { malformed: 'host differs from :authority' };
  const hostValue = authority ?? host;
  if (hostValue === undefined || hostValue === '') return { malformed: 'no :authority and no host' };
  // the one authority rule of the proxy (proxy/authority.ts), as for an HTTP/1.1 Host
  if (parseAuthority(hostValue) === null) return { malformed: 'bad :authority' };
  out[1] = hostValue;
  if (cookie !== undefined) out.push('cookie', cookie);
  return { method, target: path, scheme, rawHeaders: out, acceptsTrailers, grpc };
}

export function isRefusal(h: Http2RequestHead | Http2RequestRefusal): h is Http2RequestRefusal {
  return (h as Http2RequestRefusal).malformed !== undefined;
}
