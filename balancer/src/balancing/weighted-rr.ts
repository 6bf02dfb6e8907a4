// nginx smooth weighted round robin: every pick adds each candidate's weight to its current weight,
// takes the largest, and subtracts the total from the winner. For weights 5,1,1 this yields
// a a b a c a a. Only servers that may be picked take part, so an ejected server neither gains nor
// hoards credit. Current weights are picker state (one Float64Array per tier, no per-pick allocation).
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from './types.js';
import { pickable, splitTiers } from './tiers.js';

class SmoothWeightedGroup {
  private readonly current: Float64Array;
  constructor(private readonly servers: readonly ServerSpec[]) {
    this.current = new Float64Array(servers.length);
  }

  pick(peers: PeerState, exclude: ReadonlySet<string>, now: number): ServerSpec | undefined {
    let best = -1;
    let total = 0;
    const servers = this.servers;
    const current = this.current;
    for (let i = 0; i < servers.length; i++) {
      const s = servers[i];
      if (!pickable(s, peers, exclude, now)) continue;
      current[i] += s.weight;
      total += s.weight;
      if (best < 0 || current[i] > current[best]) best = i;
    }
    if (best < 0) return undefined;
    current[best] -= total;
    return servers[best];
  }
}

export function createWeightedRoundRobinPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  const tiers = splitTiers(upstream);
  const primary = new SmoothWeightedGroup(tiers.primary);
  const backup = new SmoothWeightedGroup(tiers.backup);
  return {
    pick(_req: PickRequest, exclude: ReadonlySet<string>) {
      const now = env.now();
      return primary.pick(peers, exclude, now) ?? backup.pick(peers, exclude, now);
    },
  };
}
