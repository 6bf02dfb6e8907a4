// Which certificate answers a handshake: exact name, then a one-label wildcard, then the default.
// Pure over plain data; the worker builds one index per certificate snapshot.

/** The part of a certificate selection needs. */
export interface Named {
  readonly id: string;
  readonly names: readonly string[];
  readonly source: string;
  readonly notAfter: string;
}

export interface CertIndex<T extends Named> {
  /** exact names and wildcards (`*.example.com`) -> certificate */
  readonly byName: ReadonlyMap<string, T>;
  readonly defaultCert: T | undefined;
}

/** When two certificates claim one name: admin over KV (ACME included) over directory, then the later expiry, then the id. */
const SOURCE_RANK: Record<string, number> = { admin: 3, kv: 2, dir: 1 };

function better<T extends Named>(a: T, b: T): T {
  const ra = SOURCE_RANK[a.source] ?? 0;
  const rb = SOURCE_RANK[b.source] ?? 0;
  if (ra !== rb) return ra > rb ? a : b;
  if (a.notAfter !== b.notAfter) return a.notAfter > b.notAfter ? a : b;
  return a.id < b.id ? a : b;
}

/** A host name as sent in SNI or Host: lower case, no trailing dot. */
export function normalizeServerName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** `*.example.com` for `a.example.com`; undefined for a name with one label. */
export function wildcardFor(name: string): string | undefined {
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) return undefined;
  return `*${name.slice(dot)}`;
}

function lookup<T extends Named>(byName: ReadonlyMap<string, T>, name: string): T | undefined {
  const exact = byName.get(name);
  if (exact) return exact;
  const wild = wildcardFor(name);
  return wild === undefined ? undefined : byName.get(wild);
}

export function buildCertIndex<T extends Named>(certs: readonly T[], defaultName: string | undefined): CertIndex<T> {
  const byName = new Map<string, T>();
  for (const c of certs) {
    for (const n of c.names) {
      const prev = byName.get(n);
      byName.set(n, prev ? better(prev, c) : c);
    }
  }
  const defaultCert = defaultName === undefined ? undefined : lookup(byName, normalizeServerName(defaultName));
  return { byName, defaultCert };
}

/** The certificate for a handshake; servername undefined or empty = no SNI sent. */
export function selectCertificate<T extends Named>(index: CertIndex<T>, servername: string | undefined): T | undefined {
  if (!servername) return index.defaultCert;
  return lookup(index.byName, normalizeServerName(servername)) ?? index.defaultCert;
}
