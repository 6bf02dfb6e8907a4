// What every request handler of one worker shares: the current compiled table (the single mutable
// reference, replaced whole on swap), the upstream transport, the health figures and the options.
import type pino from 'pino';
import type { ChallengeLookup } from '../tls/acme-challenge.js';
import type { PeerHealth } from '../health/peer-health.js';
import type { CompiledTable } from './compiled-table.js';
import type { DeadlineSweep } from './deadline-sweep.js';
import type { UpstreamTransport } from './transport.js';
import type { CidrMatcher } from './cidr.js';
import type { RequestObserver } from '../metrics/request-metrics.js';
import { normalizeHost as routerNormalizeHost } from '../routing/router.js';
import type { ClientHalfClose } from './client-half-close.js';

export interface ProxyContext {
  /** replaced whole on every swap; a request reads it once at start and again before a retry */
  current: CompiledTable;
  /** the engine's way to a server (pools per server live inside it) */
  readonly transport: UpstreamTransport;
  readonly health: PeerHealth;
  readonly now: () => number;
  readonly log: pino.Logger;
  /** set when the access log is on */
  readonly accessLog: pino.Logger | undefined;
  readonly connectMs: number;
  /** request body: max gap between two chunks, and the whole body within this of the head (0 = none) */
  readonly clientBodyMs: number;
  readonly requestMs: number;
  /** the worker's clock for those two limits (request-body-gate.ts): no timer per request */
  readonly bodyClock: DeadlineSweep;
  /** clients whose Forwarded / X-Forwarded-* / X-Real-IP are kept (--trust-forwarded) */
  readonly trustForwarded: CidrMatcher;
  /** request fields whose name has a '_' are forwarded (--underscores-in-headers); else dropped */
  readonly underscoresInHeaders: boolean;
  /** what a client's FIN after its request means (--client-half-close; client-half-close.ts) */
  readonly clientHalfClose: ClientHalfClose;
  /** true once stopAccepting() began: responses carry `Connection: close` */
  draining: boolean;
  /** requests between arrival and response end (the drain waits for 0) */
  inflight: number;
  /** ACME HTTP-01 tokens (balancer/src/tls): answered before routing */
  readonly acmeChallenge?: ChallengeLookup;
  /** port of the first TLS listener, for `redirect-https` Locations (undefined: 443) */
  readonly httpsPort?: number;
  /** per-request figures: one requestEnd() call per request (balancer/src/metrics) */
  readonly observer: RequestObserver | undefined;
  /** access rules and rate limits of the services (policy/traffic-guard.ts); asked before the pick */
  readonly guard?: import('../policy/traffic-guard.js').TrafficGuard;
}

/** Host header -> lower-case host name without port ('' when absent); the router's rule. */
export function normalizeHost(host: string | undefined): string {
  return host === undefined || host === '' ? '' : routerNormalizeHost(host);
}

/** The Host header from node's raw header list, without building req.headers (a lazy getter). */
export function rawHostHeader(rawHeaders: readonly string[]): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i];
    if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) return rawHeaders[i + 1];
  }
  return undefined;
}

