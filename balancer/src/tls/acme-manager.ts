// placeholder, replaced by the ACME manager
import type pino from 'pino';
import type { ConsulConfig } from '../config.js';
import type { CatalogSnapshot } from '../routing/types.js';
import type { CertStore } from './cert-store.js';
import type { AcmeConfig } from './tls-config.js';
import type { AcmeControl } from './tls-primary.js';

export interface AcmeDeps {
  readonly acme: AcmeConfig;
  readonly certPrefix: string;
  readonly consul: ConsulConfig;
  readonly store: CertStore;
  readonly catalog?: { current(): CatalogSnapshot | undefined; subscribe(l: () => void): () => void };
  readonly log: pino.Logger;
  readonly signal: AbortSignal;
}

export function startAcme(_deps: AcmeDeps): AcmeControl {
  return { status: async () => ({}), forceRenew: async () => false, stop: async () => undefined };
}
