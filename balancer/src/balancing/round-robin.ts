// Plain round robin (weights ignored; `wrr` honours them). The cursor is picker state.
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from './types.js';
import { pickable, splitTiers } from './tiers.js';

/** A round-robin cursor over one fixed group of servers; reused by local-first. */
export class RoundRobinGroup {
  private next = 0;
  constructor(readonly servers: readonly ServerSpec[]) {}

  pick(peers: PeerState, exclude: ReadonlySet<string>, now: number): ServerSpec | undefined {
    const n = this.servers.length;
    for (let step = 0; step < n; step++) {
      const i = (this.next + step) % n;
      const s = this.servers[i];
      if (pickable(s, peers, exclude, now)) {
        this.next = (i + 1) % n;
        return s;
      }
    }
    return undefined;
  }
}

export function createRoundRobinPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  const tiers = splitTiers(upstream);
  const primary = new RoundRobinGroup(tiers.primary);
  const backup = new RoundRobinGroup(tiers.backup);
  return {
    pick(_req: PickRequest, exclude: ReadonlySet<string>) {
      const now = env.now();
      return primary.pick(peers, exclude, now) ?? backup.pick(peers, exclude, now);
    },
  };
}
