// The certificate set as the workers get it: an immutable, versioned snapshot, sent once in full and
// then as deltas against the version the worker has; every change is logged as a readable diff.
// Pure.
import { createHash } from 'node:crypto';
import type { CertEntry } from './certificate.js';

export interface CertSnapshot {
  /** content hash of ids, fingerprints and the default name ('' = the empty set) */
  readonly version: string;
  readonly certs: readonly CertEntry[];
  /** --tls-default-cert: the name whose certificate answers handshakes without (matching) SNI */
  readonly defaultName?: string;
}

export interface CertDelta {
  /** version the delta applies to; undefined = a full snapshot (replace everything) */
  readonly base?: string;
  readonly version: string;
  /** certificates added or replaced (by id) */
  readonly upsert: readonly CertEntry[];
  /** ids removed */
  readonly remove: readonly string[];
  readonly defaultName?: string;
}

export const EMPTY_CERT_SNAPSHOT: CertSnapshot = Object.freeze({ version: '', certs: Object.freeze([]) as readonly CertEntry[] });

export function certSnapshotOf(certs: readonly CertEntry[], defaultName: string | undefined): CertSnapshot {
  const sorted = [...certs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (sorted.length === 0 && defaultName === undefined) return EMPTY_CERT_SNAPSHOT;
  const h = createHash('sha256');
  for (const c of sorted) h.update(`${c.id}\0${c.fingerprint}\0${c.names.join(',')}\n`);
  h.update(`default\0${defaultName ?? ''}`);
  return Object.freeze({ version: h.digest('hex').slice(0, 16), certs: Object.freeze(sorted), defaultName });
}

export function fullDelta(s: CertSnapshot): CertDelta {
  return { version: s.version, upsert: s.certs, remove: [], defaultName: s.defaultName };
}

export function certDelta(prev: CertSnapshot, next: CertSnapshot): CertDelta {
  const before = new Map(prev.certs.map((c) => [c.id, c.fingerprint]));
  const after = new Set(next.certs.map((c) => c.id));
  return {
    base: prev.version,
    version: next.version,
    upsert: next.certs.filter((c) => before.get(c.id) !== c.fingerprint),
    remove: prev.certs.filter((c) => !after.has(c.id)).map((c) => c.id),
    defaultName: next.defaultName,
  };
}

/** The snapshot after a delta, or undefined when the delta is against another version (ask for a full one). */
export function applyCertDelta(current: CertSnapshot, delta: CertDelta): CertSnapshot | undefined {
  if (delta.base !== undefined && delta.base !== current.version) return undefined;
  const byId = new Map(delta.base === undefined ? [] : current.certs.map((c) => [c.id, c]));
  for (const id of delta.remove) byId.delete(id);
  for (const c of delta.upsert) byId.set(c.id, c);
  const next = certSnapshotOf([...byId.values()], delta.defaultName);
  return next.version === delta.version ? next : undefined;
}

export interface CertDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly replaced: readonly string[];
  readonly defaultChanged?: { readonly from?: string; readonly to?: string };
}

function short(c: CertEntry): string {
  return `${c.id} [${c.names.join(' ')}] sha256=${c.fingerprint.replace(/:/g, '').slice(0, 12)} until ${c.notAfter}`;
}

/** Readable difference, one line per certificate (never the key). */
export function diffCertSnapshots(prev: CertSnapshot, next: CertSnapshot): CertDiff {
  const before = new Map(prev.certs.map((c) => [c.id, c]));
  const after = new Map(next.certs.map((c) => [c.id, c]));
  const added: string[] = [];
  const removed: string[] = [];
  const replaced: string[] = [];
  for (const [id, c] of after) {
    const old = before.get(id);
    if (!old) added.push(short(c));
    else if (old.fingerprint !== c.fingerprint) replaced.push(`${short(old)} -> sha256=${c.fingerprint.replace(/:/g, '').slice(0, 12)} until ${c.notAfter}`);
  }
  for (const [id, c] of before) if (!after.has(id)) removed.push(short(c));
  const diff: CertDiff = { added, removed, replaced };
  return prev.defaultName === next.defaultName ? diff : { ...diff, defaultChanged: { from: prev.defaultName, to: next.defaultName } };
}

export function diffText(d: CertDiff): string {
  const lines = [...d.added.map((l) => `+ ${l}`), ...d.replaced.map((l) => `~ ${l}`), ...d.removed.map((l) => `- ${l}`)];
  if (d.defaultChanged) lines.push(`default ${d.defaultChanged.from ?? '(none)'} -> ${d.defaultChanged.to ?? '(none)'}`);
  return lines.join('\n');
}
