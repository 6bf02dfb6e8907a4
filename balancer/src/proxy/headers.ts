// Header rewriting between client and upstream (RFC 9110 section 7.6.1 hop-by-hop rules).
// Works on flat [name, value, name, value, ...] arrays as node and undici hand them over, so
// nothing is parsed into objects on the hot path.

/** Hop-by-hop headers that never cross the proxy (lower case). Expect is answered by node itself. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings',
]);

/** Tokens of a Connection header that are not themselves hop-by-hop names (those are dropped anyway). */
function connectionTokens(value: string, into: Set<string>): void {
  // the common values name no extra header: skip the split
  if (value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close' || v === 'upgrade') return;
  }
  for (const raw of value.split(',')) {
    const token = raw.trim().toLowerCase();
    if (token !== '' && token !== 'close' && token !== 'keep-alive' && token !== 'upgrade') into.add(token);
  }
}

function isHopByHop(lowerName: string): boolean {
  // proxy-* covers Proxy-Connection, Proxy-Authorization and any other proxy-scoped header
  return HOP_BY_HOP.has(lowerName) || lowerName.startsWith('proxy-');
}

export interface ForwardedInfo {
  readonly clientIp: string;
  readonly proto: 'http' | 'https';
  /** local port the client connected to (X-Forwarded-Port); omitted when unknown */
  readonly port?: number;
  /**
   * The client is a proxy we trust (--trust-forwarded): its Forwarded, X-Real-IP and X-Forwarded-*
   * are kept (X-Forwarded-For appended to). Otherwise they are forged as far as we know: dropped,
   * and X-Forwarded-For/-Proto/-Host say what we saw.
   */
  readonly trusted?: boolean;
  /**
   * Fields whose name has a '_' are forwarded (--underscores-in-headers). By default they are dropped,
   * as nginx does (underscores_in_headers off): a CGI/WSGI backend reads `Transfer_Encoding` as
   * Transfer-Encoding, which beside a Content-Length is a TE.CL desync past our framing.
   */
  readonly underscores?: boolean;
}

/**
 * Forwarding headers a client may forge: Forwarded, X-Real-IP, X-Forwarded-* (lower-case name),
 * also spelt with '_' (CGI-style backends read X_Forwarded_For as X-Forwarded-For).
 */
function isForwardingHeader(lower: string): boolean {
  const n = lower.includes('_') ? lower.replaceAll('_', '-') : lower;
  return n === 'forwarded' || n === 'x-real-ip' || n.startsWith('x-forwarded-');
}

/**
 * Headers for the upstream request: hop-by-hop removed (including names listed in Connection),
 * Host kept, X-Forwarded-For set (appended to when the client is trusted), X-Forwarded-Proto and
 * X-Forwarded-Host set (kept from a trusted client), other forwarding headers only from a trusted client.
 * `keepUpgrade` keeps Connection/Upgrade for the raw WebSocket pass-through.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[], fwd: ForwardedInfo, keepUpgrade = false, hostOverride?: string,
): string[] {
  let listed: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      listed ??= new Set();
      connectionTokens(rawHeaders[i + 1], listed);
      if (listed.size === 0) listed = undefined;
    }
  }
  const out: string[] = [];
  const trusted = fwd.trusted === true;
  const underscores = fwd.underscores === true;
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let xfPort: string | undefined;
  let host: string | undefined = hostOverride;
  if (hostOverride !== undefined) out.push('host', hostOverride);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    const lower = name.toLowerCase();
    const value = rawHeaders[i + 1];
    if (lower === 'host') {
      if (host === undefined) { host = value; out.push(name, value); }
      continue;
    }
    if (lower.length >= 9 && (lower.charCodeAt(0) === 120 /* x */ || lower.charCodeAt(0) === 102 /* f */) && isForwardingHeader(lower)) {
      // the '_' spellings are never forwarded: which of two spellings wins is the backend's guess
      if (!trusted || lower.includes('_')) continue;
      if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
      else if (lower === 'x-forwarded-proto') xfProto ??= value;
      else if (lower === 'x-forwarded-host') xfHost ??= value;
      else if (lower === 'x-forwarded-port') xfPort ??= value;
      else out.push(name, value);
      continue;
    }
    if (isHopByHop(lower)) {
      if (keepUpgrade && (lower === 'upgrade' || lower === 'connection')) out.push(name, value);
      continue;
    }
    if (listed !== undefined && listed.has(lower)) continue;
    if (!underscores && lower.includes('_')) continue;
    out.push(name, value);
  }
  out.push('x-forwarded-for', xff === undefined ? fwd.clientIp : `${xff}, ${fwd.clientIp}`);
  out.push('x-forwarded-proto', xfProto ?? fwd.proto);
  if (xfPort !== undefined) out.push('x-forwarded-port', xfPort);
  else if (fwd.port !== undefined && fwd.port > 0) out.push('x-forwarded-port', String(fwd.port));
  if (xfHost !== undefined) out.push('x-forwarded-host', xfHost);
  else if (host !== undefined) out.push('x-forwarded-host', host);
  return out;
}

/** Header bytes as node writes them (latin1), without Buffer#toString's argument handling. */
function latin1(v: Buffer | string): string {
  return typeof v === 'string' ? v : (v as LatinSlicer).latin1Slice(0, v.length);
}
/** Buffer.prototype.latin1Slice exists in every node release but is missing from @types/node. */
type LatinSlicer = Buffer & { latin1Slice(start: number, end: number): string };

/** Could `lowerName` be hop-by-hop or listed in Connection? Cheap length/first-letter filter first. */
function mayDrop(name: string, listed: Set<string> | undefined): boolean {
  if (listed !== undefined) return true;
  switch (name.length) {
    case 2: case 6: case 7: case 10: case 14: case 17: return true;
    default: {
      const c = name.charCodeAt(0) | 0x20;
      return c === 112 /* p */;
    }
  }
}

/**
 * Headers for the client response from undici's raw response headers: hop-by-hop removed,
 * `Connection: close` added when the worker drains so keep-alive clients go away.
 */
export function clientResponseHeaders(raw: readonly Buffer[] | readonly string[], closeConnection: boolean): string[] {
  const out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 10) {
      const n = latin1(name);
      if (n.toLowerCase() === 'connection') {
        listed ??= new Set();
        connectionTokens(latin1(raw[i + 1]), listed);
        if (listed.size === 0) listed = undefined;
      }
    }
  }
  let contentLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    // latin1 keeps the upstream's bytes exactly as they were (node writes header strings as latin1)
    const name = latin1(raw[i]);
    if (mayDrop(name, listed)) {
      const lower = name.toLowerCase();
      if (isHopByHop(lower)) continue;
      if (listed !== undefined && listed.has(lower)) continue;
      if (name.length === 14 && lower === 'content-length') {
        // repeats of one value (the parser refused differing ones) are collapsed (RFC 9110 section 8.6)
        if (contentLength) continue;
        contentLength = true;
      }
    }
    out.push(name, latin1(raw[i + 1]));
  }
  if (closeConnection) out.push('connection', 'close');
  return out;
}

/** Content-Length of a flat header list (-1 when absent or not a plain number). */
export function contentLengthOf(headers: readonly string[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      const n = Number(headers[i + 1]);
      return Number.isSafeInteger(n) && n >= 0 ? n : -1;
    }
  }
  return -1;
}
