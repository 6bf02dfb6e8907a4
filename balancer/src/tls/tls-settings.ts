// TLS protocol settings shared by the config parser, the workers and the benchmark.

/**
 * TLS 1.2 suites of Mozilla's "intermediate" profile (forward secret AEAD only), after the TLS 1.3
 * suites OpenSSL takes from the same string. Override with --tls-ciphers.
 */
export const DEFAULT_TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';

export interface TlsListen {
  readonly host: string;
  readonly port: number;
  readonly http1Only?: boolean;
}

/** ALPN protocols a TLS listener offers, most preferred first (RFC 7301: the server picks). */
export function alpnProtocols(listen: TlsListen): string[] {
  return listen.http1Only === true ? ['http/1.1'] : ['h2', 'http/1.1'];
}

/** What a worker needs to run its TLS listeners (serialisable, part of the init message). */
export interface WorkerTlsOptions {
  /** http1Only: ALPN offers http/1.1 alone (`--tls-listen host:port/http1`); otherwise h2 first */
  readonly listen: readonly TlsListen[];
  readonly ciphers: string;
  readonly minVersion: TlsMinVersion;
  /** a handshake not finished after this is dropped */
  readonly handshakeTimeoutMs: number;
}

/** Session ticket keys: 16 bytes name, 16 HMAC, 16 AES (node's setTicketKeys format). */
export const TICKET_KEY_BYTES = 48;
