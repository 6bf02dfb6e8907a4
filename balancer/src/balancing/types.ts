// What every picker is and is given: one Picker per (upstream, table version); its mutable position
// state lives there, beside the frozen table, never in it. Rules shared by every algorithm: never a
// `down`, unavailable or already-tried (excluded) server; backup servers only when no primary may be
// picked; undefined when nothing may be picked. Picks are synchronous, so per-picker scratch buffers
// are safe. The pickers (and picker.ts, which chooses among them) sit above this file.
import type { IncomingHttpHeaders } from 'node:http';
import type { ServerSpec } from '../routing/types.js';

export interface PickRequest {
  readonly clientIp: string;
  readonly headers: IncomingHttpHeaders;
  readonly url: string;
  /** a canary draw made by this request's first pick (kept for retries, set in a cookie); policy pickers only */
  canaryBucket?: number;
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
  /** key of the opaque sticky-cookie server ids; the same in every worker */
  readonly stickySecret?: string;
  /** panic mode entered or left (logged and counted by the runtime) */
  onPanic?(event: PanicEvent): void;
}

export interface Picker {
  /** `exclude` holds ids of servers already tried for this request */
  pick(req: PickRequest, exclude: ReadonlySet<string>): ServerSpec | undefined;
  /** Set-Cookie values the answer from `server` must carry (sticky / canary cookies); policy pickers only */
  responseCookies?(req: PickRequest, server: ServerSpec): string[] | undefined;
  /** panic figures; policy pickers with a panic threshold only */
  readonly panic?: { readonly panicking: boolean; readonly entered: number; readonly picks: number };
}

export interface PanicEvent {
  readonly upstream: string;
  readonly panicking: boolean;
  readonly sharePercent: number;
  readonly thresholdPercent: number;
}
