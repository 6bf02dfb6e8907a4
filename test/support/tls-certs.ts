// Certificates made by the tests with the openssl command line: a CA, leaf certificates with SAN
// names (wildcards included), expired ones, and keys that belong to nothing.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Pem {
  /** leaf then the CA */
  readonly cert: string;
  readonly key: string;
  /** leaf alone */
  readonly leaf: string;
}

export interface TestCa {
  readonly dir: string;
  readonly cert: string;
  readonly certPath: string;
  /** a leaf for these DNS names (first is the CN); days < 0 makes it expired */
  issue(names: readonly string[], opts?: { days?: number; extraIps?: readonly string[] }): Promise<Pem>;
  /** a fresh key that matches no certificate */
  strayKey(): Promise<string>;
  close(): Promise<void>;
}

let counter = 0;

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd, timeout: 20_000 });
}

export async function makeTestCa(label = 'test'): Promise<TestCa> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `tls-ca-${label}-`));
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-days', '30', '-subj', `/CN=balancer ${label} test CA`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const caCert = await readFile(path.join(dir, 'ca.pem'), 'utf8');
  return {
    dir,
    cert: caCert,
    certPath: path.join(dir, 'ca.pem'),
    async issue(names, opts = {}) {
      const n = `leaf${++counter}`;
      const san = [...names.map((d) => `DNS:${d}`), ...(opts.extraIps ?? []).map((ip) => `IP:${ip}`)].join(',');
      await writeFile(path.join(dir, `${n}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
      await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${names[0]}`], dir);
      await openssl(['x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(12).toString('hex')}`, '-days', String(opts.days ?? 10),
        '-extfile', `${n}.ext`, '-out', `${n}.pem`], dir);
      const leaf = await readFile(path.join(dir, `${n}.pem`), 'utf8');
      return { leaf, cert: leaf + caCert, key: await readFile(path.join(dir, `${n}.key`), 'utf8') };
    },
    async strayKey() {
      const n = `stray${++counter}`;
      await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${n}.key`], dir);
      return readFile(path.join(dir, `${n}.key`), 'utf8');
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
