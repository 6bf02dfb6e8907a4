// Balancing algorithms as scenario tables: distribution, smooth WRR order, consistent-hash remapping
// bound, EWMA preference, local-first fallback, backup/down/exclude rules shared by all algorithms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPicker } from '../../balancer/src/balancing/picker.js';
import type { PeerState, PickerEnv, PickRequest } from '../../balancer/src/balancing/types.js';
import type { Algorithm, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';
import { ALGORITHMS } from '../../balancer/src/routing/types.js';
import { mulberry32 as seeded } from '../support/fuzz.js';

function server(id: string, extra: Partial<ServerSpec> = {}): ServerSpec {
  return { id, host: id, port: 80, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false, ...extra };
}

function upstream(algorithm: Algorithm, servers: ServerSpec[], extra: Partial<UpstreamSpec> = {}): UpstreamSpec {
  return {
    name: 'svc',
    algorithm,
    servers,
    retry: { tries: 3, timeoutMs: 0, onStatuses: [502], nonIdempotent: false },
    origin: 'consul',
    ...(algorithm === 'chash' ? { hashKey: { source: 'ip' as const } } : {}),
    ...extra,
  };
}

class FakePeers implements PeerState {
  unavailable = new Set<string>();
  latency = new Map<string, number>();
  inflightBy = new Map<string, number>();
  isAvailable(s: ServerSpec): boolean { return !this.unavailable.has(s.id); }
  latencyEwma(id: string): number | undefined { return this.latency.get(id); }
  inflight(id: string): number { return this.inflightBy.get(id) ?? 0; }
}


function env(extra: Partial<PickerEnv> = {}): PickerEnv {
  return { random: seeded(42), now: () => 1_000, ...extra };
}

const req = (clientIp = '10.0.0.1', headers: PickRequest['headers'] = {}, url = '/'): PickRequest => ({ clientIp, headers, url });
const NONE: ReadonlySet<string> = new Set();

function counts(n: number, pick: (i: number) => string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = pick(i) ?? 'none';
    out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

test('round robin spreads evenly over the available servers', () => {
  const peers = new FakePeers();
  const p = createPicker(upstream('roundrobin', [server('a'), server('b'), server('c', { weight: 5 })]), peers, env());
  assert.deepEqual(Object.fromEntries(counts(300, () => p.pick(req(), NONE)?.id)), { a: 100, b: 100, c: 100 });
  peers.unavailable.add('b');
  assert.deepEqual(Object.fromEntries(counts(300, () => p.pick(req(), NONE)?.id)), { a: 150, c: 150 });
});

test('smooth weighted round robin gives nginx order a a b a c a a for weights 5,1,1', () => {
  const p = createPicker(upstream('wrr', [server('a', { weight: 5 }), server('b'), server('c')]), new FakePeers(), env());
  const order = Array.from({ length: 14 }, () => p.pick(req(), NONE)?.id).join(' ');
  assert.equal(order, 'a a b a c a a a a b a c a a');
});

test('weighted round robin distribution follows weights', () => {
  const cases: { weights: number[]; picks: number }[] = [
    { weights: [3, 1], picks: 400 },
    { weights: [1, 2, 3, 4], picks: 1000 },
    { weights: [10, 1], picks: 110 },
  ];
  for (const { weights, picks } of cases) {
    const servers = weights.map((w, i) => server(`s${i}`, { weight: w }));
    const p = createPicker(upstream('wrr', servers), new FakePeers(), env());
    const c = counts(picks, () => p.pick(req(), NONE)?.id);
    const total = weights.reduce((a, b) => a + b, 0);
    weights.forEach((w, i) => assert.equal(c.get(`s${i}`), (picks * w) / total, `weights ${weights}`));
  }
});

test('consistent hash: balanced spread, and ~1/N of keys move when one of N leaves', () => {
  const N = 10;
  const servers = Array.from({ length: N }, (_, i) => server(`10.1.0.${i}:8080`));
  const keys = Array.from({ length: 20_000 }, (_, i) => `192.168.${(i >> 8) & 255}.${i & 255}-${i}`);
  const before = createPicker(upstream('chash', servers), new FakePeers(), env());
  const mapBefore = keys.map((k) => before.pick(req(k), NONE)!.id);
  const c = counts(keys.length, (i) => mapBefore[i]);
  for (const s of servers) {
    const share = (c.get(s.id) ?? 0) / keys.length;
    assert.ok(share > 0.06 && share < 0.14, `share of ${s.id} = ${share}`);
  }
  const leaving = servers[3].id;
  const after = createPicker(upstream('chash', servers.filter((s) => s.id !== leaving)), new FakePeers(), env());
  let moved = 0;
  keys.forEach((k, i) => {
    const now = after.pick(req(k), NONE)!.id;
    if (now !== mapBefore[i]) {
      moved++;
      assert.equal(mapBefore[i], leaving, 'only keys of the leaving server move');
    }
  });
  const fraction = moved / keys.length;
  assert.ok(fraction > 0.05 && fraction < 0.15, `moved ${fraction}`);
});

test('consistent hash: unavailable owner falls to the next ring point, others keep their server', () => {
  const servers = ['a', 'b', 'c', 'd'].map((id) => server(id));
  const peers = new FakePeers();
  const p = createPicker(upstream('chash', servers), peers, env());
  const keys = Array.from({ length: 2000 }, (_, i) => `k${i}`);
  const first = keys.map((k) => p.pick(req(k), NONE)!.id);
  peers.unavailable.add('b');
  keys.forEach((k, i) => {
    const id = p.pick(req(k), NONE)!.id;
    assert.notEqual(id, 'b');
    if (first[i] !== 'b') assert.equal(id, first[i]);
  });
  peers.unavailable.add('a').add('c').add('d');
  assert.equal(p.pick(req('x'), NONE), undefined);
});

test('consistent hash keys: header, cookie, uri, missing key falls back to client IP', () => {
  const servers = Array.from({ length: 8 }, (_, i) => server(`s${i}`));
  const cases: { hashKey: UpstreamSpec['hashKey']; same: [PickRequest, PickRequest] }[] = [
    { hashKey: { source: 'header', name: 'x-user' }, same: [req('1.1.1.1', { 'x-user': 'alice' }), req('2.2.2.2', { 'x-user': 'alice' })] },
    { hashKey: { source: 'cookie', name: 'sid' }, same: [req('1.1.1.1', { cookie: 'a=1; sid=xyz; b=2' }), req('3.3.3.3', { cookie: 'sid=xyz' })] },
    { hashKey: { source: 'uri' }, same: [req('1.1.1.1', {}, '/p/1'), req('9.9.9.9', {}, '/p/1')] },
    { hashKey: { source: 'header', name: 'x-user' }, same: [req('5.5.5.5'), req('5.5.5.5', { 'x-other': '1' })] },
  ];
  for (const { hashKey, same } of cases) {
    const p = createPicker(upstream('chash', servers, { hashKey }), new FakePeers(), env());
    assert.equal(p.pick(same[0], NONE)!.id, p.pick(same[1], NONE)!.id, JSON.stringify(hashKey));
  }
  // different users spread over several servers
  const p = createPicker(upstream('chash', servers, { hashKey: { source: 'header', name: 'x-user' } }), new FakePeers(), env());
  const c = counts(200, (i) => p.pick(req('1.1.1.1', { 'x-user': `u${i}` }), NONE)?.id);
  assert.ok(c.size >= 6, `users spread over ${c.size} servers`);
});

test('consistent hash: key share follows weight', () => {
  const servers = [server('heavy', { weight: 3 }), server('light1'), server('light2')];
  const p = createPicker(upstream('chash', servers), new FakePeers(), env());
  const c = counts(20_000, (i) => p.pick(req(`key-${i}`), NONE)?.id);
  const heavy = (c.get('heavy') ?? 0) / 20_000;
  assert.ok(heavy > 0.5 && heavy < 0.7, `heavy share ${heavy} (expected ~0.6)`);
});

test('EWMA prefers the faster instance; unknown latency is optimistic; in-flight load counts', () => {
  const peers = new FakePeers();
  peers.latency.set('fast', 10).set('mid', 50).set('slow', 200);
  const servers = [server('fast'), server('mid'), server('slow')];
  const p = createPicker(upstream('ewma', servers), peers, env());
  const c = counts(3000, () => p.pick(req(), NONE)?.id);
  // power of two choices: fast wins every pair it is in (2/3), slow never wins
  assert.ok((c.get('fast') ?? 0) > 1800, `fast ${c.get('fast')}`);
  assert.equal(c.get('slow') ?? 0, 0);

  const withNew = createPicker(upstream('ewma', [...servers, server('new')]), peers, env());
  const c2 = counts(3000, () => withNew.pick(req(), NONE)?.id);
  assert.ok((c2.get('new') ?? 0) > 1200, `new ${c2.get('new')}`);

  const two = createPicker(upstream('ewma', [server('fast'), server('mid')]), peers, env());
  assert.equal(two.pick(req(), NONE)!.id, 'fast');
  peers.inflightBy.set('fast', 9); // 10 x 10 = 100 > 50 x 1
  assert.equal(two.pick(req(), NONE)!.id, 'mid');
});

test('local-first: same node, then same zone, then any, round robin inside the group', () => {
  const servers = [
    server('n1-a', { node: 'n1', zone: 'z1' }),
    server('n1-b', { node: 'n1', zone: 'z1' }),
    server('n2', { node: 'n2', zone: 'z1' }),
    server('n3', { node: 'n3', zone: 'z2' }),
  ];
  const peers = new FakePeers();
  const p = createPicker(upstream('local-first', servers), peers, env({ localNode: 'n1', localZone: 'z1' }));
  const scenarios: { down: string[]; expect: Record<string, number> }[] = [
    { down: [], expect: { 'n1-a': 2, 'n1-b': 2 } },
    { down: ['n1-a'], expect: { 'n1-b': 4 } },
    { down: ['n1-a', 'n1-b'], expect: { n2: 4 } },
    { down: ['n1-a', 'n1-b', 'n2'], expect: { n3: 4 } },
    { down: ['n1-a', 'n1-b', 'n2', 'n3'], expect: { none: 4 } },
  ];
  for (const { down, expect } of scenarios) {
    peers.unavailable = new Set(down);
    assert.deepEqual(Object.fromEntries(counts(4, () => p.pick(req(), NONE)?.id)), expect, `down ${down}`);
  }
  // no local node known: zone first, else everything
  const zoneOnly = createPicker(upstream('local-first', servers), new FakePeers(), env({ localZone: 'z2' }));
  assert.equal(zoneOnly.pick(req(), NONE)!.id, 'n3');
});

test('every algorithm: never down/unavailable/excluded, backups only when no primary is left', () => {
  for (const algorithm of ALGORITHMS) {
    const servers = [server('p1'), server('p2'), server('off', { down: true }), server('bk', { backup: true })];
    const peers = new FakePeers();
    const p = createPicker(upstream(algorithm, servers), peers, env({ localNode: 'n1' }));
    const scenarios: { unavailable: string[]; exclude: string[]; allowed: string[] }[] = [
      { unavailable: [], exclude: [], allowed: ['p1', 'p2'] },
      { unavailable: ['p1'], exclude: [], allowed: ['p2'] },
      { unavailable: [], exclude: ['p2'], allowed: ['p1'] },
      { unavailable: ['p1'], exclude: ['p2'], allowed: ['bk'] },
      { unavailable: ['p1', 'p2'], exclude: [], allowed: ['bk'] },
      { unavailable: ['p1', 'p2'], exclude: ['bk'], allowed: ['none'] },
      { unavailable: ['p1', 'p2', 'bk'], exclude: [], allowed: ['none'] },
    ];
    for (const s of scenarios) {
      peers.unavailable = new Set(s.unavailable);
      const exclude = new Set(s.exclude);
      for (let i = 0; i < 20; i++) {
        const got = p.pick(req(`10.0.0.${i}`), exclude)?.id ?? 'none';
        assert.ok(s.allowed.includes(got), `${algorithm}: got ${got} with ${JSON.stringify(s)}`);
      }
    }
    const empty = createPicker(upstream(algorithm, []), peers, env());
    assert.equal(empty.pick(req(), NONE), undefined, `${algorithm} with no servers`);
  }
});

test('pick is cheap: 200k picks over 20 servers stay well under a second', () => {
  const servers = Array.from({ length: 20 }, (_, i) => server(`10.2.0.${i}:80`, { weight: 1 + (i % 3) }));
  for (const algorithm of ALGORITHMS) {
    const peers = new FakePeers();
    const p = createPicker(upstream(algorithm, servers), peers, env());
    const r = req('10.0.0.1');
    // CPU time of this process, not wall time: a busy machine delays the test, it does not make picks dearer
    const started = process.cpuUsage();
    for (let i = 0; i < 200_000; i++) p.pick(r, NONE);
    const used = process.cpuUsage(started);
    const ms = (used.user + used.system) / 1000;
    assert.ok(ms < 1500, `${algorithm}: ${ms.toFixed(0)} ms of CPU`);
  }
});

test('consistent hash: huge weights (a weight=999999999 tag) keep the ring bounded and the weight ratio', () => {
  // before the fix the ring got weight points per server when a weight exceeded MAX_RING_POINTS:
  // ~2e9 ring points, an out-of-memory crash of every worker that applied the table
  const servers = [server('heavy', { weight: 999_999_999 }), server('light', { weight: 333_333_333 })];
  const started = process.cpuUsage(); // CPU time, not wall time (see above)
  const p = createPicker(upstream('chash', servers), new FakePeers(), env());
  const used = process.cpuUsage(started);
  assert.ok((used.user + used.system) / 1000 < 2000, `ring built with ${((used.user + used.system) / 1000).toFixed(0)} ms of CPU`);
  const c = counts(4000, (i) => p.pick(req(`10.1.${i >> 8}.${i & 255}`), NONE)?.id);
  const heavy = c.get('heavy') ?? 0;
  const light = c.get('light') ?? 0;
  assert.ok(heavy > light * 2 && heavy < light * 4.5, `3:1 weights give about 3:1 keys (heavy ${heavy}, light ${light})`);
});
