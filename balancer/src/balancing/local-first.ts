// Local first: servers on the balancer's own Consul node, else in its zone, else any; round robin
// inside the chosen group. Groups are fixed at picker creation; a group is skipped when none of its
// servers may be picked. Backups follow the same order, after all primaries.
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from './types.js';
import { RoundRobinGroup } from './round-robin.js';
import { splitTiers } from './tiers.js';

function localityGroups(servers: readonly ServerSpec[], env: PickerEnv): RoundRobinGroup[] {
  const groups: RoundRobinGroup[] = [];
  if (env.localNode !== undefined) {
    const sameNode = servers.filter((s) => s.node === env.localNode);
    if (sameNode.length > 0) groups.push(new RoundRobinGroup(sameNode));
  }
  if (env.localZone !== undefined) {
    const sameZone = servers.filter((s) => s.zone === env.localZone);
    if (sameZone.length > 0) groups.push(new RoundRobinGroup(sameZone));
  }
  if (servers.length > 0) groups.push(new RoundRobinGroup(servers));
  return groups;
}

export function createLocalFirstPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  const tiers = splitTiers(upstream);
  const groups = [...localityGroups(tiers.primary, env), ...localityGroups(tiers.backup, env)];
  return {
    pick(_req: PickRequest, exclude: ReadonlySet<string>) {
      const now = env.now();
      for (let g = 0; g < groups.length; g++) {
        const s = groups[g].pick(peers, exclude, now);
        if (s) return s;
      }
      return undefined;
    },
  };
}
