// Certificates of a directory: every file may hold a chain, a key or both; a chain is paired with
// the key (in its own file or any key file) that matches its leaf. Names come from the certificate,
// never from the file name. Pure over file contents.
import { CertificateError, validateCertificate, type CertEntry } from './certificate.js';
import { splitPem } from './pem.js';

export interface DirFile {
  readonly path: string;
  readonly text: string;
}

export interface DirProblem {
  readonly path: string;
  readonly code: string;
  readonly message: string;
}

export function pairDirectory(files: readonly DirFile[], nowMs: number): { entries: CertEntry[]; problems: DirProblem[] } {
  const entries: CertEntry[] = [];
  const problems: DirProblem[] = [];
  const keyFiles: DirFile[] = [];
  const certFiles: { file: DirFile; hasKey: boolean }[] = [];
  for (const f of files) {
    const { certificates, keys } = splitPem(f.text);
    if (certificates.length > 0) certFiles.push({ file: f, hasKey: keys.length > 0 });
    else if (keys.length > 0) keyFiles.push(f);
    else problems.push({ path: f.path, code: 'ERR_CERT_NO_PEM', message: `${f.path}: no PEM certificate or key` });
  }
  for (const { file, hasKey } of certFiles) {
    const candidates = hasKey ? [''] : keyFiles.map((k) => k.text);
    if (candidates.length === 0) {
      problems.push({ path: file.path, code: 'ERR_CERT_NO_KEY', message: `${file.path}: no private key in the file and no key file in the directory` });
      continue;
    }
    let last: CertificateError | undefined;
    let found: CertEntry | undefined;
    for (const keyText of candidates) {
      try {
        found = validateCertificate({ id: `dir:${file.path}`, source: 'dir', chainText: file.text, keyText }, nowMs);
        break;
      } catch (err) {
        if (!(err instanceof CertificateError)) throw err;
        last = err;
        // only a wrong key is worth trying the next key file for
        if (err.code !== 'ERR_CERT_KEY_MISMATCH') break;
      }
    }
    if (found) entries.push(found);
    else if (last) problems.push({ path: file.path, code: last.code, message: last.message });
  }
  return { entries, problems };
}
