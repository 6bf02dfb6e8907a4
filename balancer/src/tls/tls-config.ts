// The TLS and ACME part of the balancer's configuration, parsed from the flags config.ts declares
// (kept here so config.ts grows by one call). Pure.
import { DEFAULT_TLS_CIPHERS, type TlsListen, type TlsMinVersion } from './tls-settings.js';

export interface AcmeConfig {
  /** ACME directory URL (RFC 8555 section 7.1.1) */
  readonly directoryUrl: string;
  readonly email?: string;
  /** account key, challenge tokens, locks and renewal state; ends in '/' */
  readonly kvPrefix: string;
  /** a lock not refreshed for this long is free again (a killed instance leaves nothing stuck) */
  readonly lockTtlMs: number;
  /** how often names are checked for issuance and renewal */
  readonly checkIntervalMs: number;
  /** first pause after a failed order (doubles, up to 1 h) */
  readonly retryBaseMs: number;
}

export interface TlsConfig {
  readonly listen: readonly TlsListen[];
  readonly certDir?: string;
  /** ends in '/' */
  readonly kvPrefix?: string;
  readonly defaultCert?: string;
  readonly ciphers: string;
  readonly minVersion: TlsMinVersion;
  readonly ticketRotateMs: number;
  readonly handshakeTimeoutMs: number;
  readonly acme?: AcmeConfig;
}

export interface TlsFlagReader {
  str(name: string): string | undefined;
  repeat(name: string): string[];
  duration(name: string, def: number): number;
  source(name: string): string;
  hostPort(text: string, what: string): { host: string; port: number };
  fail(message: string): never;
}

function withSlash(p: string): string {
  const t = p.replace(/^\/+/, '');
  return t.endsWith('/') ? t : `${t}/`;
}

/** "host:port", or "host:port/http1" for a listener that does not offer HTTP/2 in ALPN. */
function tlsListen(text: string, r: TlsFlagReader): TlsListen {
  const http1Only = text.endsWith('/http1');
  const addr = r.hostPort(http1Only ? text.slice(0, -'/http1'.length) : text, r.source('tls-listen'));
  return http1Only ? { ...addr, http1Only } : addr;
}

/** undefined when no TLS flag is given. */
export function parseTlsConfig(r: TlsFlagReader, hasConsul: boolean): TlsConfig | undefined {
  const listen = r.repeat('tls-listen').map((v) => tlsListen(v.trim(), r));
  const directoryUrl = r.str('acme-directory');
  if (listen.length === 0) {
    for (const f of ['tls-cert-dir', 'tls-kv-prefix', 'tls-default-cert', 'acme-directory']) {
      if (r.str(f) !== undefined) r.fail(`${r.source(f)} needs --tls-listen`);
    }
    return undefined;
  }
  const minVersion = r.str('tls-min-version') ?? 'TLSv1.2';
  if (minVersion !== 'TLSv1.2' && minVersion !== 'TLSv1.3') r.fail(`${r.source('tls-min-version')}: expected TLSv1.2 or TLSv1.3 (older versions are refused), got "${minVersion}"`);
  let kvPrefix = r.str('tls-kv-prefix');
  if (kvPrefix !== undefined && !hasConsul) r.fail(`${r.source('tls-kv-prefix')} needs Consul (it is set together with --no-consul)`);
  let acme: AcmeConfig | undefined;
  if (directoryUrl !== undefined) {
    if (!hasConsul) r.fail(`${r.source('acme-directory')} needs Consul: certificates, account and locks are kept in Consul KV`);
    let url: URL;
    try {
      url = new URL(directoryUrl);
    } catch {
      return r.fail(`${r.source('acme-directory')}: not a URL: "${directoryUrl}"`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') r.fail(`${r.source('acme-directory')}: expected an https:// URL, got "${directoryUrl}"`);
    // ACME certificates are served through the KV follower like any other KV certificate
    kvPrefix ??= 'balancer/certs/';
    const lockTtlMs = r.duration('acme-lock-ttl', 120_000);
    if (lockTtlMs < 1_000) r.fail(`${r.source('acme-lock-ttl')}: at least 1s`);
    acme = {
      directoryUrl,
      email: r.str('acme-email'),
      kvPrefix: withSlash(r.str('acme-kv-prefix') ?? 'balancer/acme/'),
      lockTtlMs,
      checkIntervalMs: Math.max(100, r.duration('acme-check-interval', 60_000)),
      retryBaseMs: Math.max(100, r.duration('acme-retry', 60_000)),
    };
  }
  return {
    listen,
    certDir: r.str('tls-cert-dir'),
    kvPrefix: kvPrefix === undefined ? undefined : withSlash(kvPrefix),
    defaultCert: r.str('tls-default-cert')?.toLowerCase(),
    ciphers: r.str('tls-ciphers') ?? DEFAULT_TLS_CIPHERS,
    minVersion,
    ticketRotateMs: r.duration('tls-ticket-rotate', 3_600_000),
    handshakeTimeoutMs: r.duration('tls-handshake-timeout', 10_000),
    acme,
  };
}
