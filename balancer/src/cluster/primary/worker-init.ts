// What every worker is started with, from the config (pure but for a sticky secret drawn when none is
// configured: every worker of one balancer gets the same).
import { randomBytes } from 'node:crypto';
import type { Config } from '../../config.js';
import type { ChallengeLookupOptions } from '../../tls/acme-challenge.js';
import { workerTlsOptions } from '../../tls/tls-primary.js';
import type { WorkerInitOptions } from '../messages.js';

/** a worker waits this much longer for the primary's answer than the primary's own Consul read */
export const CHALLENGE_RELAY_MARGIN_MS = 1_000;

export function workerInitFrom(config: Config, challengeLookup: ChallengeLookupOptions | undefined, randomSecret = () => randomBytes(32).toString('base64url')): WorkerInitOptions {
  return {
    listenHost: config.listen.host,
    listenPort: config.listen.port,
    localNode: config.localNode,
    localZone: config.localZone,
    timeouts: config.timeouts,
    maxConnectionsPerServer: config.maxConnectionsPerServer,
    engine: config.engine,
    maxHeadBytes: config.maxHeadBytes,
    http2: config.http2,
    accessLog: config.accessLog,
    trustForwarded: config.trustForwarded,
    underscoresInHeaders: config.underscoresInHeaders,
    clientHalfClose: config.clientHalfClose,
    l4: config.l4,
    rateShare: 1 / config.workers,
    stickySecret: config.stickySecret ?? randomSecret(),
    // dynamic mode probes once per host, in the primary; reload-mode generations keep their own checkers
    sharedActiveChecks: config.mode === 'dynamic',
    maxQueuePerServer: config.maxQueuePerServer,
    upgradeProtocols: config.upgradeProtocols,
    logLevel: config.logLevel,
    tls: config.tls ? workerTlsOptions(config.tls) : undefined,
    // the primary answers them (acme-challenge messages): no worker opens a Consul connection
    acmeChallenges: challengeLookup ? { timeoutMs: challengeLookup.timeoutMs + CHALLENGE_RELAY_MARGIN_MS } : undefined,
    metrics: { bucketsSeconds: config.metrics.bucketsSeconds, maxServersPerService: config.metrics.maxServersPerService },
  };
}
