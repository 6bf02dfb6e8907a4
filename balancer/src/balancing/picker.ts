// The registry of the pickers: which algorithm (and whether the policy picker wraps it) serves an
// upstream. The contract every picker keeps is in types.ts.
import type { UpstreamSpec } from '../routing/types.js';
import type { PeerState, Picker, PickerEnv } from './types.js';
import { hasPickPolicy, PolicyPicker } from './policy-picker.js';
import { createConsistentHashPicker } from './chash.js';
import { createEwmaPicker } from './ewma.js';
import { createLocalFirstPicker } from './local-first.js';
import { createRoundRobinPicker } from './round-robin.js';
import { createWeightedRoundRobinPicker } from './weighted-rr.js';
import { createLeastConnPicker } from './least-conn.js';

/** The upstream's picker: its algorithm, wrapped by the policy picker when it has a traffic policy. */
export function createPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  return hasPickPolicy(upstream) ? new PolicyPicker(upstream, peers, env, createAlgorithmPicker) : createAlgorithmPicker(upstream, peers, env);
}

export function createAlgorithmPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  switch (upstream.algorithm) {
    case 'roundrobin': return createRoundRobinPicker(upstream, peers, env);
    case 'wrr': return createWeightedRoundRobinPicker(upstream, peers, env);
    case 'chash': return createConsistentHashPicker(upstream, peers, env);
    case 'ewma': return createEwmaPicker(upstream, peers, env);
    case 'local-first': return createLocalFirstPicker(upstream, peers, env);
    case 'leastconn': return createLeastConnPicker(upstream, peers, env);
    default: return createRoundRobinPicker(upstream, peers, env);
  }
}
