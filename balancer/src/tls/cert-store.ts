// The primary's certificate set: each source (directory, Consul KV, admin API) hands over its whole
// current list of validated certificates; the store merges them into one snapshot, logs the diff
// and tells its subscribers. The only mutable reference is the current snapshot.
import type pino from 'pino';
import { certSnapshotOf, diffCertSnapshots, diffText, EMPTY_CERT_SNAPSHOT, type CertSnapshot } from './cert-snapshot.js';
import { certInfo, type CertEntry, type CertInfo, type CertSource } from './certificate.js';
import { buildCertIndex, selectCertificate } from './sni.js';

export type CertChangeListener = (prev: CertSnapshot, next: CertSnapshot) => void;

export class CertStore {
  #bySource = new Map<CertSource, readonly CertEntry[]>();
  #snapshot: CertSnapshot = EMPTY_CERT_SNAPSHOT;
  readonly #listeners = new Set<CertChangeListener>();

  constructor(private readonly defaultName: string | undefined, private readonly log: pino.Logger) {
    this.#snapshot = certSnapshotOf([], defaultName);
  }

  current(): CertSnapshot {
    return this.#snapshot;
  }

  /** Replaces everything one source provides. */
  setSource(source: CertSource, entries: readonly CertEntry[]): void {
    this.#bySource.set(source, entries);
    const prev = this.#snapshot;
    const next = certSnapshotOf([...this.#bySource.values()].flat(), this.defaultName);
    if (next.version === prev.version) return;
    this.#snapshot = next;
    const diff = diffCertSnapshots(prev, next);
    this.log.info({ version: next.version, previous: prev.version, certificates: next.certs.length, diff: diffText(diff) }, 'certificates changed');
    for (const l of this.#listeners) {
      try {
        l(prev, next);
      } catch (err) {
        this.log.warn({ err }, 'certificate listener failed');
      }
    }
  }

  subscribe(listener: CertChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  list(): CertInfo[] {
    return this.#snapshot.certs.map(certInfo);
  }

  /** The certificate a handshake for this name would get now (exact, wildcard, default). */
  servingFor(name: string): CertInfo | undefined {
    const c = selectCertificate(buildCertIndex(this.#snapshot.certs, this.defaultName), name);
    return c ? certInfo(c) : undefined;
  }

  /** The raw entry serving a name (ACME renewal reads notBefore/notAfter; never leaves the process). */
  entryFor(name: string): CertEntry | undefined {
    return buildCertIndex(this.#snapshot.certs, undefined).byName.get(name.toLowerCase());
  }
}
