// Consistent hashing on a ring with VNODES_PER_WEIGHT x weight points per server (ketama-like), so a
// server leaving moves only the keys that were on its points (~1/N of them). Points are derived from
// the server id, hence the same servers in a new table map keys the same way. When the owner of a key
// may not be picked, the walk continues to the next ring point of another server. Backups have their
// own ring, used when no primary may be picked. A request without the key (missing header or cookie)
// is hashed on the client IP instead.
import type { HashKey, ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from './types.js';
import { hash32 } from './hash.js';
import { pickable, splitTiers } from './tiers.js';

export const VNODES_PER_WEIGHT = 160;
/** bound on ring size (memory and build time) for very large weights: points per weight shrink instead */
export const MAX_RING_POINTS = 160_000;

class HashRing {
  private readonly points: Uint32Array;
  private readonly owners: Uint32Array;
  /** per-server memo of the pickable test within one pick: stamp = pick number, verdict 1/0 */
  private readonly stamp: Float64Array;
  private readonly verdict: Uint8Array;
  private pickNo = 0;

  constructor(private readonly servers: readonly ServerSpec[]) {
    const pairs: [number, number][] = [];
    const totalWeight = servers.reduce((sum, s) => sum + Math.max(1, s.weight), 0);
    // Points per weight unit shrink with the total; once even one point per unit would exceed the
    // bound (weights in the millions, e.g. a `weight=999999999` tag), points are shared out in
    // proportion to the weights instead, so the ring never exceeds MAX_RING_POINTS + one per server.
    const perWeight = Math.min(VNODES_PER_WEIGHT, MAX_RING_POINTS / Math.max(1, totalWeight));
    servers.forEach((s, idx) => {
      const count = perWeight >= 1
        ? Math.floor(perWeight) * Math.max(1, s.weight)
        : Math.max(1, Math.round(perWeight * Math.max(1, s.weight)));
      for (let v = 0; v < count; v++) pairs.push([hash32(`${s.id}#${v}`), idx]);
    });
    // ties broken by server id order so equal tables build equal rings
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.points = Uint32Array.from(pairs, (p) => p[0]);
    this.owners = Uint32Array.from(pairs, (p) => p[1]);
    this.stamp = new Float64Array(servers.length);
    this.verdict = new Uint8Array(servers.length);
  }

  pick(key: number, peers: PeerState, exclude: ReadonlySet<string>, now: number): ServerSpec | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    const pickNo = ++this.pickNo;
    let distinctChecked = 0;
    const start = this.firstAtOrAfter(key);
    for (let step = 0; step < n && distinctChecked < this.servers.length; step++) {
      const idx = this.owners[(start + step) % n];
      if (this.stamp[idx] !== pickNo) {
        this.stamp[idx] = pickNo;
        this.verdict[idx] = pickable(this.servers[idx], peers, exclude, now) ? 1 : 0;
        distinctChecked++;
      }
      if (this.verdict[idx] === 1) return this.servers[idx];
    }
    return undefined;
  }

  private firstAtOrAfter(key: number): number {
    let lo = 0;
    let hi = this.points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.points.length ? 0 : lo;
  }
}

/** The request's hash key text, or the client IP when the configured source is absent. */
export function hashKeyText(key: HashKey, req: PickRequest): string {
  switch (key.source) {
    case 'ip':
      return req.clientIp;
    case 'uri':
      return req.url;
    case 'header': {
      const v = req.headers[key.name ?? ''];
      const text = Array.isArray(v) ? v[0] : v;
      return text ? text : req.clientIp;
    }
    case 'cookie': {
      const v = cookieValue(req.headers.cookie, key.name ?? '');
      return v ?? req.clientIp;
    }
  }
}

/** Value of one cookie in a Cookie header, without splitting the whole header into objects. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header || !name) return undefined;
  let from = 0;
  while (from < header.length) {
    const at = header.indexOf(name, from);
    if (at < 0) return undefined;
    const before = at === 0 ? ';' : header[at - 1];
    const after = header[at + name.length];
    const boundary = at === 0 || before === ';' || before === ' ';
    if (boundary && after === '=') {
      const start = at + name.length + 1;
      const end = header.indexOf(';', start);
      return header.slice(start, end < 0 ? header.length : end).trim();
    }
    from = at + name.length;
  }
  return undefined;
}

export function createConsistentHashPicker(upstream: UpstreamSpec, peers: PeerState, env: PickerEnv): Picker {
  const tiers = splitTiers(upstream);
  const key: HashKey = upstream.hashKey ?? { source: 'ip' };
  const primary = new HashRing(tiers.primary);
  const backup = new HashRing(tiers.backup);
  return {
    pick(req: PickRequest, exclude: ReadonlySet<string>) {
      const now = env.now();
      const h = hash32(hashKeyText(key, req));
      return primary.pick(h, peers, exclude, now) ?? backup.pick(h, peers, exclude, now);
    },
  };
}
