// Health and load figures per server id, beside the table: passive ejection, active rise/fall,
// latency EWMA, in-flight count. Implements the PeerState the pickers read.
import type { PeerState } from '../balancing/picker.js';
import type { RouteTable, ServerSpec } from '../routing/types.js';

export interface AttemptResult {
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly error?: string;
}

export interface ActiveStatus {
  readonly up: boolean;
  readonly successes: number;
  readonly failures: number;
}

export interface PeerServerStatus {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly backup: boolean;
  readonly status: 'ok' | 'err' | 'ejected' | 'down';
  readonly lastError?: string;
  readonly failCount: number;
  readonly lastModified: number;
  readonly active: ActiveStatus | null;
  readonly activeCheck?: { readonly up: boolean; readonly consecutive: number; readonly lastError?: string };
  readonly inflight: number;
  readonly ewmaMs?: number;
}

export interface PeerUpstreamStatus {
  readonly name: string;
  readonly algorithm: string;
  readonly servers: readonly PeerServerStatus[];
}

export interface PeerHealthOptions {
  /** EWMA decay time constant in ms */
  readonly ewmaDecayMs?: number;
}

export class PeerHealth implements PeerState {
  constructor(options: PeerHealthOptions = {}) { void options; }
  isAvailable(server: ServerSpec, now: number): boolean { void server; void now; return true; }
  latencyEwma(serverId: string): number | undefined { void serverId; return undefined; }
  inflight(serverId: string): number { void serverId; return 0; }
  onAttemptStart(id: string): void { void id; }
  onAttemptEnd(id: string, result: AttemptResult, now: number): void { void id; void result; void now; }
  onActiveResult(id: string, ok: boolean, now: number, error?: string): void { void id; void ok; void now; void error; }
  retain(table: RouteTable, now?: number): void { void table; void now; }
  status(table: RouteTable, now: number): PeerUpstreamStatus[] { void table; void now; return []; }
}
