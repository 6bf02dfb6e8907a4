// Shared by every algorithm: the primary/backup split and the "may this server be picked" test.
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { PeerState } from './types.js';

/** Primaries and backups of an upstream, admin-down servers removed once at picker creation. */
export interface Tiers {
  readonly primary: readonly ServerSpec[];
  readonly backup: readonly ServerSpec[];
}

export function splitTiers(upstream: UpstreamSpec): Tiers {
  const primary: ServerSpec[] = [];
  const backup: ServerSpec[] = [];
  for (const s of upstream.servers) {
    if (s.down) continue;
    (s.backup ? backup : primary).push(s);
  }
  return { primary, backup };
}

/**
 * Not admin-down, not already tried for this request, and available per health. Backups are used when
 * no primary passes this test, tried ones included (as nginx moves to backups once primaries are used up).
 */
export function pickable(s: ServerSpec, peers: PeerState, exclude: ReadonlySet<string>, now: number): boolean {
  return !s.down && (exclude.size === 0 || !exclude.has(s.id)) && peers.isAvailable(s, now);
}
