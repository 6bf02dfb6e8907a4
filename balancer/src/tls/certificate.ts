// Certificate validation before use: the chain parses and is in order, the key matches the leaf,
// the leaf is valid now and names at least one DNS name in its subjectAltName. Pure (node's crypto
// parses; nothing is read or logged). Keys never appear in errors.
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { splitPem } from './pem.js';

/** A certificate chain or key larger than this is refused unread (a real chain is a few KB). */
export const MAX_PEM_BYTES = 64 * 1024;
/** At most this many certificates in one chain. */
export const MAX_CHAIN_LENGTH = 8;
/** At most this many names taken from one certificate. */
export const MAX_NAMES = 100;
/** A certificate issued a moment ago on a host whose clock runs a little ahead is still taken. */
export const NOT_BEFORE_SKEW_MS = 5 * 60_000;

export type CertSource = 'dir' | 'kv' | 'admin';

/** A validated certificate with its key, as the primary keeps it and the workers receive it. */
export interface CertEntry {
  /** `<source>:<key>`: the file path, the KV name or the admin name it came from */
  readonly id: string;
  readonly source: CertSource;
  /** DNS names of the leaf's subjectAltName, lower case, wildcards as `*.example.com` */
  readonly names: readonly string[];
  /** leaf first, then the chain */
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-256 of the leaf, colon-separated hex (as openssl prints it) */
  readonly fingerprint: string;
  readonly serial: string;
  readonly subject: string;
  readonly issuer: string;
  /** ISO 8601 */
  readonly notBefore: string;
  readonly notAfter: string;
}

/** What GET /certs shows: everything except the key. */
export type CertInfo = Omit<CertEntry, 'keyPem'>;

export class CertificateError extends Error {
  constructor(
    readonly code:
      | 'ERR_CERT_TOO_LARGE' | 'ERR_CERT_NO_CERTIFICATE' | 'ERR_CERT_NO_KEY' | 'ERR_CERT_MANY_KEYS' | 'ERR_CERT_PARSE'
      | 'ERR_CERT_KEY_PARSE' | 'ERR_CERT_KEY_MISMATCH' | 'ERR_CERT_CHAIN_ORDER' | 'ERR_CERT_CHAIN_LENGTH'
      | 'ERR_CERT_EXPIRED' | 'ERR_CERT_NOT_YET_VALID' | 'ERR_CERT_NO_NAMES',
    message: string,
  ) {
    super(message);
    this.name = 'CertificateError';
  }
}

export function certInfo(e: CertEntry): CertInfo {
  const { keyPem: _key, ...info } = e;
  return info;
}

/** DNS names of a subjectAltName string ("DNS:a.example, IP Address:1.2.3.4, DNS:*.b.example"). */
export function dnsNames(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const out = new Set<string>();
  for (const part of subjectAltName.split(',')) {
    const m = /^\s*DNS:(.+?)\s*$/.exec(part);
    if (m) out.add(m[1].toLowerCase().replace(/\.$/, ''));
  }
  return [...out];
}

function fingerprintOf(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

/**
 * Validates a certificate chain and its key. `chainText` may contain the key too (one combined
 * file); `keyText` may be empty then. Throws CertificateError.
 */
export function validateCertificate(
  input: { readonly id: string; readonly source: CertSource; readonly chainText: string; readonly keyText: string },
  nowMs: number,
): CertEntry {
  if (input.chainText.length > MAX_PEM_BYTES || input.keyText.length > MAX_PEM_BYTES) {
    throw new CertificateError('ERR_CERT_TOO_LARGE', `${input.id}: larger than ${MAX_PEM_BYTES} bytes`);
  }
  const fromChain = splitPem(input.chainText);
  const fromKey = splitPem(input.keyText);
  const pems = fromChain.certificates;
  const keyPems = [...fromChain.keys, ...fromKey.keys];
  if (pems.length === 0) throw new CertificateError('ERR_CERT_NO_CERTIFICATE', `${input.id}: no PEM CERTIFICATE block`);
  if (pems.length > MAX_CHAIN_LENGTH) throw new CertificateError('ERR_CERT_CHAIN_LENGTH', `${input.id}: ${pems.length} certificates, at most ${MAX_CHAIN_LENGTH}`);
  if (keyPems.length === 0) throw new CertificateError('ERR_CERT_NO_KEY', `${input.id}: no PEM PRIVATE KEY block`);
  if (keyPems.length > 1) throw new CertificateError('ERR_CERT_MANY_KEYS', `${input.id}: ${keyPems.length} private keys, expected one`);
  const chain: X509Certificate[] = [];
  for (let i = 0; i < pems.length; i++) {
    try {
      chain.push(new X509Certificate(pems[i]));
    } catch (err) {
      throw new CertificateError('ERR_CERT_PARSE', `${input.id}: certificate ${i + 1} does not parse (${(err as Error).message})`);
    }
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPems[0]);
  } catch {
    // the parser's message may quote key material: never pass it on
    throw new CertificateError('ERR_CERT_KEY_PARSE', `${input.id}: the private key does not parse`);
  }
  const leaf = chain[0];
  if (!leaf.checkPrivateKey(key)) throw new CertificateError('ERR_CERT_KEY_MISMATCH', `${input.id}: the private key does not match the certificate`);
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i].checkIssued(chain[i + 1])) {
      throw new CertificateError('ERR_CERT_CHAIN_ORDER', `${input.id}: certificate ${i + 2} did not issue certificate ${i + 1} (chain out of order)`);
    }
  }
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (!(notAfter > nowMs)) throw new CertificateError('ERR_CERT_EXPIRED', `${input.id}: expired on ${new Date(notAfter).toISOString()}`);
  if (notBefore > nowMs + NOT_BEFORE_SKEW_MS) throw new CertificateError('ERR_CERT_NOT_YET_VALID', `${input.id}: not valid before ${new Date(notBefore).toISOString()}`);
  const names = dnsNames(leaf.subjectAltName);
  if (names.length === 0) throw new CertificateError('ERR_CERT_NO_NAMES', `${input.id}: no DNS name in subjectAltName`);
  if (names.length > MAX_NAMES) throw new CertificateError('ERR_CERT_NO_NAMES', `${input.id}: ${names.length} names, at most ${MAX_NAMES}`);
  return {
    id: input.id,
    source: input.source,
    names,
    certPem: pems.join(''),
    keyPem: keyPems[0],
    fingerprint: fingerprintOf(leaf.raw),
    serial: leaf.serialNumber,
    subject: leaf.subject.replace(/\n/g, ', '),
    issuer: leaf.issuer.replace(/\n/g, ', '),
    notBefore: new Date(notBefore).toISOString(),
    notAfter: new Date(notAfter).toISOString(),
  };
}
