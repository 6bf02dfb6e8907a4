// TLS in the primary: the certificate sources (directory, Consul KV, admin API, ACME through KV)
// feed one CertStore; the distributor sends its snapshots and the shared ticket keys to the workers.
import type pino from 'pino';
import type { ConsulConfig } from '../config.js';
import type { ConsulBudget } from '../discovery/consul-budget.js';
import { watchSlot } from '../discovery/watch-slot.js';
import type { CatalogSnapshot } from '../routing/types.js';
import type { ChallengeLookupOptions } from './acme-challenge.js';
import type { AcmeControl } from './acme-control.js';
import { AdminCerts } from './admin-certs.js';
import { CertDistributor, type WorkerChannels } from './cert-distributor.js';
import { CertStore } from './cert-store.js';
import { DirSource } from './dir-source.js';
import { KvSource } from './kv-source.js';
import type { TlsConfig } from './tls-config.js';
import type { WorkerTlsOptions } from './tls-settings.js';

export interface TlsPrimaryDeps {
  readonly config: TlsConfig;
  readonly consul?: ConsulConfig;
  /**
   * the primary's Consul connection budget: the KV certificate watch holds one of its slots, ACME's
   * KV calls go through its capped pool (without it, each had a connection outside the budget)
   */
  readonly budget?: ConsulBudget;
  readonly workers: WorkerChannels;
  readonly logger: pino.Logger;
  readonly signal: AbortSignal;
  /** admin certificates are kept beside the dump file (mode 0600) */
  readonly dumpFile?: string;
  /** the catalog (ACME names come from tls=acme services) */
  readonly catalog?: { current(): CatalogSnapshot | undefined; subscribe(l: () => void): () => void };
}

export interface TlsHandle {
  readonly store: CertStore;
  readonly admin: AdminCerts;
  readonly distributor: CertDistributor;
  readonly acme?: AcmeControl;
  stop(): Promise<void>;
}

export function workerTlsOptions(config: TlsConfig): WorkerTlsOptions {
  return { listen: config.listen, ciphers: config.ciphers, minVersion: config.minVersion, handshakeTimeoutMs: config.handshakeTimeoutMs };
}

export function challengeLookupOptions(config: TlsConfig | undefined, consul: ConsulConfig | undefined): ChallengeLookupOptions | undefined {
  if (!config?.acme || !consul) return undefined;
  return { consulUrl: consul.baseUrl, consulToken: consul.token, kvPrefix: config.acme.kvPrefix, timeoutMs: 3_000 };
}

/** Loads what is there (directory scanned, first KV answer, bounded) before the workers start. */
export async function startTls(deps: TlsPrimaryDeps): Promise<TlsHandle> {
  const { config, logger } = deps;
  const log = logger.child({ component: 'tls' });
  const store = new CertStore(config.defaultCert, log);
  const distributor = new CertDistributor({ store, workers: deps.workers, log, ticketRotateMs: config.ticketRotateMs });
  const admin = new AdminCerts((e) => store.setSource('admin', e), log, deps.dumpFile ? `${deps.dumpFile}.certs.json` : undefined);
  await admin.load();
  let dir: DirSource | undefined;
  if (config.certDir) {
    dir = new DirSource({ dir: config.certDir, log: log.child({ source: 'dir' }), onChange: (e) => store.setSource('dir', e) });
    await dir.start();
  }
  let kv: KvSource | undefined;
  // blocking on a slot of the budget while one is left, else polling in its read share
  const slot = config.kvPrefix && deps.consul && deps.budget ? watchSlot(deps.budget) : undefined;
  if (slot && !slot.blocking) log.info({ maxConns: deps.budget?.maxConns }, 'no consul connection left for the certificate KV watch: polling it');
  if (config.kvPrefix && deps.consul) {
    kv = new KvSource({
      endpoint: { baseUrl: deps.consul.baseUrl, token: deps.consul.token, dispatcher: deps.budget?.dispatcher },
      slot,
      prefix: config.kvPrefix,
      waitMs: deps.consul.waitMs,
      log: log.child({ source: 'kv' }),
      onChange: (e) => store.setSource('kv', e),
    }, deps.signal);
    await kv.first(5_000);
  }
  let acme: AcmeControl | undefined;
  if (config.acme && deps.consul && config.kvPrefix) {
    const { startAcme } = await import('./acme-manager.js');
    acme = startAcme({
      acme: config.acme, certPrefix: config.kvPrefix, consul: deps.consul, store, dispatcher: deps.budget?.dispatcher,
      read: deps.budget ? (s, fn) => deps.budget!.read(s, fn) : undefined,
      catalog: deps.catalog, log: logger.child({ component: 'acme' }), signal: deps.signal,
    });
  }
  return {
    store, admin, distributor, acme,
    async stop() {
      dir?.stop();
      distributor.stop();
      await acme?.stop();
      await kv?.done;
      slot?.release();
      await admin.flush();
    },
  };
}
