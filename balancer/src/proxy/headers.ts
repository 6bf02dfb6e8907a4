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
}

/**
 * Headers for the upstream request: hop-by-hop removed (including names listed in Connection),
 * Host kept, X-Forwarded-For appended, X-Forwarded-Proto and X-Forwarded-Host set.
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
  let xff: string | undefined;
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
    if (lower === 'x-forwarded-for') { xff = xff === undefined ? value : `${xff}, ${value}`; continue; }
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue;
    if (isHopByHop(lower)) {
      if (keepUpgrade && (lower === 'upgrade' || lower === 'connection')) out.push(name, value);
      continue;
    }
    if (listed !== undefined && listed.has(lower)) continue;
    out.push(name, value);
  }
  out.push('x-forwarded-for', xff === undefined ? fwd.clientIp : `${xff}, ${fwd.clientIp}`);
  out.push('x-forwarded-proto', fwd.proto);
  if (host !== undefined) out.push('x-forwarded-host', host);
  return out;
}

/**
 * Headers for the client response from undici's raw response headers: hop-by-hop removed,
 * `Connection: close` added when the worker drains so keep-alive clients go away.
 */
export function clientResponseHeaders(raw: readonly Buffer[] | readonly string[], closeConnection: boolean): string[] {
  const out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString();
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      listed ??= new Set();
      connectionTokens(raw[i + 1].toString(), listed);
      if (listed.size === 0) listed = undefined;
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString();
    const lower = name.toLowerCase();
    if (isHopByHop(lower)) continue;
    if (listed !== undefined && listed.has(lower)) continue;
    const value = raw[i + 1];
    // latin1 keeps the upstream's bytes exactly as they were (node writes header strings as latin1)
    out.push(name, typeof value === 'string' ? value : value.toString('latin1'));
  }
  if (closeConnection) out.push('connection', 'close');
  return out;
}
