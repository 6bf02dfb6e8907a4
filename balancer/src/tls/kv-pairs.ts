// Consul KV entries under --tls-kv-prefix -> certificates: `<prefix><name>/cert` holds the chain,
// `<prefix><name>/key` the key (the key may also sit in the cert value). Pure.
import { CertificateError, validateCertificate, type CertEntry } from './certificate.js';

export interface KvEntryJson {
  readonly Key: string;
  readonly Value: string | null;
  readonly ModifyIndex: number;
}

export interface KvCertProblem {
  readonly name: string;
  readonly code: string;
  readonly message: string;
}

const NAME = /^[A-Za-z0-9*][A-Za-z0-9._*-]{0,252}$/;

/** name -> {cert, key} texts from a recurse answer (other keys are ignored). */
export function groupCertKeys(prefix: string, entries: readonly KvEntryJson[]): Map<string, { cert?: string; key?: string }> {
  const out = new Map<string, { cert?: string; key?: string }>();
  for (const e of entries) {
    if (!e.Key.startsWith(prefix)) continue;
    const rest = e.Key.slice(prefix.length);
    const slash = rest.lastIndexOf('/');
    if (slash <= 0) continue;
    const name = rest.slice(0, slash);
    const part = rest.slice(slash + 1);
    if ((part !== 'cert' && part !== 'key') || !NAME.test(name)) continue;
    const text = e.Value === null ? '' : Buffer.from(e.Value, 'base64').toString('utf8');
    const slot = out.get(name) ?? {};
    slot[part] = text;
    out.set(name, slot);
  }
  return out;
}

export function kvCertificates(prefix: string, entries: readonly KvEntryJson[], nowMs: number): { entries: CertEntry[]; problems: KvCertProblem[]; names: Set<string> } {
  const grouped = groupCertKeys(prefix, entries);
  const out: CertEntry[] = [];
  const problems: KvCertProblem[] = [];
  for (const [name, { cert, key }] of grouped) {
    try {
      out.push(validateCertificate({ id: `kv:${name}`, source: 'kv', chainText: cert ?? '', keyText: key ?? '' }, nowMs));
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err;
      problems.push({ name, code: err.code, message: err.message });
    }
  }
  return { entries: out, problems, names: new Set(grouped.keys()) };
}
