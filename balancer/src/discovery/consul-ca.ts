// --consul-ca <file> (CONSUL_CACERT, as Consul's CLI names it): the agent's HTTPS certificate is verified
// against this CA alone, not the system store, for every Consul client of the primary (the undici pool
// of ConsulBudget and the HTTP/2 sessions of --consul-watch per-service). Read once at start.
import type { ConsulConfig } from '../config.js';
import { readCaFile } from '../tls/ca-file.js';

/** The config with `consul.ca` filled from `consul.caFile`; a clear error when the file is unreadable or holds no certificate. */
export async function withConsulCa<T extends { readonly consul?: ConsulConfig }>(config: T): Promise<T> {
  const file = config.consul?.caFile;
  if (!config.consul || file === undefined) return config;
  return { ...config, consul: { ...config.consul, ca: await readCaFile('--consul-ca', file, 'ERR_CONSUL_CA') } };
}
