// Panic mode (Envoy semantics): when the share of pickable servers of an upstream falls below the
// threshold, health is ignored and picks spread over all of its servers (admin-down ones still
// excluded, already-tried ones too), so the last healthy servers are not crushed by the whole load.
// The share is measured over primaries and backups that are not admin-down, re-measured at most
// every PANIC_RECHECK_MS so a pick costs no scan of the servers.
import type { ServerSpec } from '../routing/types.js';
import type { PanicEvent, PeerState } from './types.js';

export const PANIC_RECHECK_MS = 100;
export const DEFAULT_PANIC_THRESHOLD_PERCENT = 50;

/** Percentage (0-100) of the non-down servers that health lets us pick; 100 for an empty list. */
export function pickableShare(servers: readonly ServerSpec[], peers: PeerState, now: number): number {
  let total = 0;
  let up = 0;
  for (let i = 0; i < servers.length; i++) {
    const s = servers[i];
    if (s.down) continue;
    total++;
    if (peers.isAvailable(s, now)) up++;
  }
  return total === 0 ? 100 : (up * 100) / total;
}

/** Threshold 0 = off; otherwise panic strictly below it. */
export function inPanic(sharePercent: number, thresholdPercent: number): boolean {
  return thresholdPercent > 0 && sharePercent < thresholdPercent;
}

/** Health as seen in panic: every server available; latency and in-flight figures unchanged. */
export function panicPeers(peers: PeerState): PeerState {
  return {
    isAvailable: () => true,
    latencyEwma: (id) => peers.latencyEwma(id),
    inflight: (id) => peers.inflight(id),
  };
}

/** The cached panic verdict of one upstream. */
export class PanicState {
  panicking = false;
  entered = 0;
  picks = 0;
  private checkedAt = -Infinity;

  constructor(
    private readonly upstream: string,
    private readonly servers: readonly ServerSpec[],
    private readonly thresholdPercent: number,
    private readonly onChange: ((e: PanicEvent) => void) | undefined,
  ) {}

  /** the verdict for a pick at `now` */
  check(peers: PeerState, now: number): boolean {
    if (now - this.checkedAt >= PANIC_RECHECK_MS || now < this.checkedAt) {
      this.checkedAt = now;
      const share = pickableShare(this.servers, peers, now);
      const next = inPanic(share, this.thresholdPercent);
      if (next !== this.panicking) {
        this.panicking = next;
        if (next) this.entered++;
        this.onChange?.({ upstream: this.upstream, panicking: next, sharePercent: share, thresholdPercent: this.thresholdPercent });
      }
    }
    if (this.panicking) this.picks++;
    return this.panicking;
  }
}
