// TLS to a proto=h2 server: ALPN h2, and the certificate checked the way a client checks a site's,
// unless the service opts out (tls_skip_verify=true). The trusted CAs are --upstream-ca's PEM when
// given, else node's system store; the name checked is tls_server_name= when given, else the server's
// address (node checks a DNS name against the DNS SANs, an IP against the IP SANs). Pure.
import net from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { UpstreamTlsSpec } from '../../routing/types.js';
import { ERR, transportError } from '../transport.js';

export function upstreamTlsOptions(host: string, spec: UpstreamTlsSpec | undefined, ca: string | undefined): ConnectionOptions {
  const servername = spec?.serverName ?? (net.isIP(host) === 0 ? host : undefined);
  return {
    ALPNProtocols: ['h2'],
    rejectUnauthorized: spec?.skipVerify !== true,
    ...(servername !== undefined ? { servername } : {}),
    ...(ca !== undefined ? { ca } : {}),
  };
}

/** Same settings, same sessions: the pool key part of a TLS server's settings. */
export function upstreamTlsKey(spec: UpstreamTlsSpec | undefined): string {
  return `${spec?.serverName ?? ''}|${spec?.skipVerify === true ? 'any' : 'verify'}`;
}

/** Node's certificate verification failures (OpenSSL verify codes and the host-name check). */
const CERTIFICATE_CODES = new Set([
  'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'INVALID_CA', 'INVALID_PURPOSE', 'HOSTNAME_MISMATCH', 'IP_ADDRESS_MISMATCH',
]);

export function isCertificateError(err: { code?: unknown } | undefined): boolean {
  return typeof err?.code === 'string' && CERTIFICATE_CODES.has(err.code);
}

/** A session error as the exchange reads it: a certificate refusal is ERR_UPSTREAM_CERTIFICATE (nothing was sent). */
export function sessionFailure(err: Error & { code?: string }, server: string): Error & { code?: string } {
  return isCertificateError(err) ? transportError(ERR.upstreamCertificate, `HTTP/2 upstream ${server} certificate refused: ${err.code} ${err.message}`) : err;
}
