// What the metrics show of the certificates: for every name a handshake can ask for, when the
// certificate that would answer it expires. Pure over the store's snapshot (directory, KV with ACME,
// admin alike); one figure per name, the one SNI picks when certificates overlap.
import type { CertEntry } from './certificate.js';
import { buildCertIndex } from './sni.js';

export interface NameExpiry {
  readonly name: string;
  readonly notAfterMs: number;
  readonly source: string;
}

export function certificateExpiries(certs: readonly CertEntry[]): NameExpiry[] {
  const out: NameExpiry[] = [];
  for (const [name, c] of buildCertIndex(certs, undefined).byName) {
    const notAfterMs = Date.parse(c.notAfter);
    if (Number.isFinite(notAfterMs)) out.push({ name, notAfterMs, source: c.source });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
