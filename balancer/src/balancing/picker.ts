// The per-upstream pick: one Picker per (upstream, table version); its mutable position state lives
// here, beside the frozen table, never in it. Rules shared by every algorithm: never a `down`,
// unavailable or already-tried (excluded) server; backup servers only when no primary may be picked;
// undefined when nothing may be picked. Picks are synchronous, so per-picker scratch buffers are safe.
import type { IncomingHttpHeaders } from 'node:http';
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import { createConsistentHashPicker } from './chash.js';
import { createEwmaPicker } from './ewma.js';
import { createLocalFirstPicker } from './local-first.js';
import { createRoundRobinPicker } from './round-robin.js';
import { createWeightedRoundRobinPicker } from './weighted-rr.js';

export interface PickRequest {
  readonly clientIp: string;
  readonly headers: IncomingHttpHeaders;
  readonly url: string;
}

export interface PeerState {
  /** not passively ejected, not actively down */
  isAvailable(server: ServerSpec, now: number): boolean;
  /** ms */
  latencyEwma(serverId: string): number | undefined;
  inflight(serverId: string): number;
}

export interface PickerEnv {
  readonly localNode?: string;
  readonly localZone?: string;
  random(): number;
  now(): number;
}

export interface Picker {
  /** `exclude` holds ids of servers already tried for this request */
  pick(req: PickRequest, exclude: ReadonlySet<string>): ServerSpec | undefined;
}

export function createPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  switch (upstream.algorithm) {
    case 'roundrobin': return createRoundRobinPicker(upstream, peers, env);
    case 'wrr': return createWeightedRoundRobinPicker(upstream, peers, env);
    case 'chash': return createConsistentHashPicker(upstream, peers, env);
    case 'ewma': return createEwmaPicker(upstream, peers, env);
    case 'local-first': return createLocalFirstPicker(upstream, peers, env);
    default: return createRoundRobinPicker(upstream, peers, env);
  }
}
