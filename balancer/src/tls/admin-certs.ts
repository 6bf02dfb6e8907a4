// Certificates put through the admin API. Validated before they are taken; kept in a file of mode
// 0600 (when the balancer has a dump file) so they survive a restart.
import { chmod, readFile } from 'node:fs/promises';
import type pino from 'pino';
import { writeFileAtomic } from '../render/atomic-write.js';
import { CertificateError, validateCertificate, type CertEntry } from './certificate.js';

export const ADMIN_CERT_NAME = /^[A-Za-z0-9*][A-Za-z0-9._*-]{0,252}$/;

interface StoredCert {
  readonly name: string;
  readonly cert: string;
  readonly key: string;
}

export class AdminCerts {
  #byName = new Map<string, CertEntry>();
  #writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly onChange: (entries: readonly CertEntry[]) => void,
    private readonly log: pino.Logger,
    private readonly file?: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads the saved set; a saved certificate that no longer validates is dropped with a warning. */
  async load(): Promise<void> {
    if (!this.file) return;
    let stored: StoredCert[];
    try {
      stored = JSON.parse(await readFile(this.file, 'utf8')) as StoredCert[];
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') this.log.warn({ file: this.file, err: (err as Error).message }, 'admin certificate file ignored');
      return;
    }
    for (const s of Array.isArray(stored) ? stored : []) {
      try {
        this.#byName.set(s.name, validateCertificate({ id: `admin:${s.name}`, source: 'admin', chainText: s.cert, keyText: s.key }, this.now()));
      } catch (err) {
        this.log.warn({ name: s.name, code: (err as CertificateError).code }, `saved admin certificate dropped: ${(err as Error).message}`);
      }
    }
    this.onChange([...this.#byName.values()]);
  }

  /** Throws CertificateError (the previous certificate of the name stays). */
  put(name: string, chainText: string, keyText: string): CertEntry {
    const entry = validateCertificate({ id: `admin:${name}`, source: 'admin', chainText, keyText }, this.now());
    this.#byName.set(name, entry);
    this.#changed();
    return entry;
  }

  delete(name: string): boolean {
    if (!this.#byName.delete(name)) return false;
    this.#changed();
    return true;
  }

  get(name: string): CertEntry | undefined {
    return this.#byName.get(name);
  }

  flush(): Promise<void> {
    return this.#writing;
  }

  #changed(): void {
    this.onChange([...this.#byName.values()]);
    if (!this.file) return;
    const file = this.file;
    const body = JSON.stringify([...this.#byName].map(([name, e]) => ({ name, cert: e.certPem, key: e.keyPem })));
    this.#writing = this.#writing
      .then(async () => {
        await writeFileAtomic(file, body, 0o600);
        await chmod(file, 0o600);
      })
      .catch((err) => this.log.error({ file, err: (err as Error).message }, 'admin certificate file not written'));
  }
}
