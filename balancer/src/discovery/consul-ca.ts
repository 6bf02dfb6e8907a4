// --consul-ca <file> (CONSUL_CACERT, as Consul's CLI names it): the agent's HTTPS certificate is verified
// against this CA alone, not the system store, for every Consul client of the primary (the undici pool
// of ConsulBudget and the HTTP/2 sessions of --consul-watch per-service). Read once at start.
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import type { ConsulConfig } from '../config.js';
import { StartupError } from '../cluster/startup-error.js';

/** The config with `consul.ca` filled from `consul.caFile`; a clear error when the file is unreadable or holds no certificate. */
export async function withConsulCa<T extends { readonly consul?: ConsulConfig }>(config: T): Promise<T> {
  const file = config.consul?.caFile;
  if (!config.consul || file === undefined) return config;
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    throw new StartupError('ERR_CONSUL_CA', `--consul-ca ${file}: ${(err as Error).message}`);
  }
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) throw new StartupError('ERR_CONSUL_CA', `--consul-ca ${file}: no PEM certificate in it`);
  try {
    // the first certificate must parse; node's TLS would otherwise fail on every connection instead
    new X509Certificate(pem);
  } catch (err) {
    throw new StartupError('ERR_CONSUL_CA', `--consul-ca ${file}: not a certificate (${(err as Error).message})`);
  }
  return { ...config, consul: { ...config.consul, ca: pem } };
}
