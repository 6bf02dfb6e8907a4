// The per-upstream pick: one Picker per (upstream, table version); its mutable position state lives
// here, beside the frozen table, never in it.
import type { IncomingHttpHeaders } from 'node:http';
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';

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
  void upstream; void peers; void env;
  return { pick: () => undefined };
}
