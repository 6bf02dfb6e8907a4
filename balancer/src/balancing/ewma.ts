// Least latency ("speed first"): power of two random choices among the servers that may be picked,
// keeping the one with the lower score latencyEwma x (inflight + 1) — peak-EWMA's cost function; the
// EWMA itself (peak-sensitive, time-decayed) is kept by PeerHealth. A server without a latency yet is
// scored 0 (optimistic) so new instances get traffic and a figure quickly; ties go to fewer in-flight.
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from './types.js';
import { pickable, splitTiers } from './tiers.js';

class TwoChoicesGroup {
  /** indices of the servers that may be picked in the current pick (reused, no per-pick allocation) */
  private readonly scratch: Uint32Array;
  constructor(private readonly servers: readonly ServerSpec[]) {
    this.scratch = new Uint32Array(servers.length);
  }

  pick(peers: PeerState, env: PickerEnv, exclude: ReadonlySet<string>, now: number): ServerSpec | undefined {
    let count = 0;
    for (let i = 0; i < this.servers.length; i++) {
      if (pickable(this.servers[i], peers, exclude, now)) this.scratch[count++] = i;
    }
    if (count === 0) return undefined;
    if (count === 1) return this.servers[this.scratch[0]];
    const a = Math.min(count - 1, Math.floor(env.random() * count));
    let b = Math.min(count - 2, Math.floor(env.random() * (count - 1)));
    if (b >= a) b++;
    const sa = this.servers[this.scratch[a]];
    const sb = this.servers[this.scratch[b]];
    return better(sa, sb, peers);
  }
}

function better(a: ServerSpec, b: ServerSpec, peers: PeerState): ServerSpec {
  const ia = peers.inflight(a.id);
  const ib = peers.inflight(b.id);
  const ca = (peers.latencyEwma(a.id) ?? 0) * (ia + 1);
  const cb = (peers.latencyEwma(b.id) ?? 0) * (ib + 1);
  if (ca !== cb) return ca < cb ? a : b;
  return ib < ia ? b : a;
}

export function createEwmaPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  const tiers = splitTiers(upstream);
  const primary = new TwoChoicesGroup(tiers.primary);
  const backup = new TwoChoicesGroup(tiers.backup);
  return {
    pick(_req: PickRequest, exclude: ReadonlySet<string>) {
      const now = env.now();
      return primary.pick(peers, env, exclude, now) ?? backup.pick(peers, env, exclude, now);
    },
  };
}
