// PEM text -> typed blocks (RFC 7468). Pure; no crypto here, only the framing.

export interface PemBlock {
  /** the label between BEGIN and END, e.g. CERTIFICATE, PRIVATE KEY, EC PRIVATE KEY */
  readonly label: string;
  /** the whole block, BEGIN line to END line, newline-terminated */
  readonly text: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----/g;

export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) out.push({ label: m[1], text: `${m[0].replace(/\r\n/g, '\n')}\n` });
  return out;
}

export function isKeyLabel(label: string): boolean {
  return label === 'PRIVATE KEY' || label === 'RSA PRIVATE KEY' || label === 'EC PRIVATE KEY';
}

/** Certificates and private keys found in one text (a file may hold a chain, a key, or both). */
export function splitPem(text: string): { certificates: string[]; keys: string[] } {
  const certificates: string[] = [];
  const keys: string[] = [];
  for (const b of pemBlocks(text)) {
    if (b.label === 'CERTIFICATE') certificates.push(b.text);
    else if (isKeyLabel(b.label)) keys.push(b.text);
  }
  return { certificates, keys };
}
