// Least connections (HAProxy `leastconn`, nginx `least_conn`): the pickable server with the fewest
// in-flight requests or open TCP connections per unit of weight; ties rotate so equal servers share.
// In-flight counts are PeerHealth's (this worker's); the cursor is picker state.
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from './types.js';
import { pickable, splitTiers } from './tiers.js';

class LeastConnGroup {
  private next = 0;
  constructor(private readonly servers: readonly ServerSpec[]) {}

  pick(peers: PeerState, exclude: ReadonlySet<string>, now: number): ServerSpec | undefined {
    const n = this.servers.length;
    let best: ServerSpec | undefined;
    let bestIndex = 0;
    let bestLoad = Infinity;
    for (let step = 0; step < n; step++) {
      const i = (this.next + step) % n;
      const s = this.servers[i];
      if (!pickable(s, peers, exclude, now)) continue;
      const load = peers.inflight(s.id) / s.weight;
      if (load < bestLoad) {
        best = s;
        bestIndex = i;
        bestLoad = load;
      }
    }
    if (best !== undefined) this.next = (bestIndex + 1) % n;
    return best;
  }
}

export function createLeastConnPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  const tiers = splitTiers(upstream);
  const primary = new LeastConnGroup(tiers.primary);
  const backup = new LeastConnGroup(tiers.backup);
  return {
    pick(_req: PickRequest, exclude: ReadonlySet<string>) {
      const now = env.now();
      return primary.pick(peers, exclude, now) ?? backup.pick(peers, exclude, now);
    },
  };
}
