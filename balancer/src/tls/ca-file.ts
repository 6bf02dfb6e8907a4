// A PEM CA file given by a flag (--consul-ca, --upstream-ca), read once at start: a clear error naming
// the flag and the file when it is unreadable or holds no certificate, rather than a TLS failure on
// every connection later.
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { StartupError } from '../cluster/startup-error.js';

export async function readCaFile(flag: string, file: string, code: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new StartupError(code, `${flag} ${file}: ${(err as Error).message}`);
  }
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) throw new StartupError(code, `${flag} ${file}: no PEM certificate in it`);
  try {
    // the first certificate must parse; node's TLS would otherwise fail on every connection instead
    new X509Certificate(pem);
  } catch (err) {
    throw new StartupError(code, `${flag} ${file}: not a certificate (${(err as Error).message})`);
  }
  return pem;
}
