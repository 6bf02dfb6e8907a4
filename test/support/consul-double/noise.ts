// Writes a live cluster makes that no catalog or health answer names, so the raft index moves under
// the catalog's feet: KV writes (the registrator's presence record every 10 s per host, ACME, config)
// and node coordinates, which the servers collect and apply in one raft write per
// coordinate_update_period (agent/consul/coordinate_endpoint.go batchUpdate, 5 s). Builtins only.
import type { ConsulState } from './state.js';

/** agent/consul/config.go CoordinateUpdatePeriod */
export const COORDINATE_UPDATE_PERIOD_MS = 5000;

/** Coordinate.Update queues; the servers apply the queue in one batch per period. */
export class CoordinateBatcher {
  private readonly pending = new Map<string, unknown>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly state: ConsulState, periodMs = COORDINATE_UPDATE_PERIOD_MS) {
    this.timer = setInterval(() => this.flush(), periodMs);
    this.timer.unref();
  }

  update(node: string, coord: unknown): void {
    this.pending.set(node, coord);
  }

  flush(): void {
    if (this.pending.size === 0) return;
    const updates = [...this.pending].map(([node, coord]) => ({ node, coord }));
    this.pending.clear();
    this.state.coordinateBatch(updates);
  }

  close(): void {
    clearInterval(this.timer);
  }
}

export interface NoiseOptions {
  /**
   * KV writes per second under `consul-double/noise/` (0: none). Default 1: ten registrator hosts,
   * each writing its presence record every 10 s.
   */
  kvWritesPerSec: number;
  /**
   * whether the agent's node sends its coordinate (agent.go sendCoordinate, every 15 s at least; with
   * more members, often enough that every batch period has one): one raft write per 5 s batch
   */
  coordinates: boolean;
}

export const DEFAULT_NOISE: NoiseOptions = { kvWritesPerSec: 1, coordinates: true };

export class IndexNoise {
  private kvTimer?: NodeJS.Timeout;
  private readonly coordTimer?: NodeJS.Timeout;
  private n = 0;

  constructor(private readonly state: ConsulState, batcher: CoordinateBatcher, opts: NoiseOptions) {
    this.setKvRate(opts.kvWritesPerSec);
    if (opts.coordinates) {
      // one update per batch period is what a cluster of a few nodes sends; the batch makes it one write
      this.coordTimer = setInterval(() => batcher.update(state.agentNode, randomCoordinate()), COORDINATE_UPDATE_PERIOD_MS);
      this.coordTimer.unref();
    }
  }

  /** Change the KV write rate (writes per second; 0 stops). */
  setKvRate(perSec: number): void {
    if (this.kvTimer) clearInterval(this.kvTimer);
    this.kvTimer = undefined;
    if (!(perSec > 0)) return;
    this.kvTimer = setInterval(() => {
      this.n++;
      this.state.kvPut(`consul-double/noise/host-${this.n % 10}`, Buffer.from(String(Date.now())), 0, undefined);
    }, Math.max(1, Math.round(1000 / perSec)));
    this.kvTimer.unref();
  }

  close(): void {
    if (this.kvTimer) clearInterval(this.kvTimer);
    if (this.coordTimer) clearInterval(this.coordTimer);
  }
}

/** A Vivaldi coordinate in the shape of lib/coordinate (8 dimensions). */
export function randomCoordinate(): { Vec: number[]; Error: number; Adjustment: number; Height: number } {
  return { Vec: Array.from({ length: 8 }, () => (Math.random() - 0.5) * 0.01), Error: 0.2 + Math.random() * 0.3, Adjustment: 0, Height: 1e-5 };
}
