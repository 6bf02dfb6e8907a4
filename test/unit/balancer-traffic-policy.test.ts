// Canary split, sticky sessions and panic mode as scenario tables over the policy picker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPicker } from '../../balancer/src/balancing/picker.js';
import type { PeerState, Picker, PickerEnv, PickRequest } from '../../balancer/src/balancing/types.js';
import type { PanicEvent } from '../../balancer/src/balancing/types.js';
import { opaqueServerId } from '../../balancer/src/balancing/sticky.js';
import { ALGORITHMS, type Algorithm, type CanaryPolicy, type ServerSpec, type StickyPolicy, type TrafficPolicy, type UpstreamSpec } from '../../balancer/src/routing/types.js';
import { mulberry32 as seeded } from '../support/fuzz.js';

function server(id: string, extra: Partial<ServerSpec> = {}): ServerSpec {
  return { id, host: id, port: 80, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false, ...extra };
}
const canaryServer = (id: string): ServerSpec => server(id, { canary: true });

function upstream(algorithm: Algorithm, servers: ServerSpec[], policy: TrafficPolicy): UpstreamSpec {
  return {
    name: 'svc', algorithm, servers, policy,
    retry: { tries: 3, timeoutMs: 0, onStatuses: [502], nonIdempotent: false }, origin: 'consul',
    ...(algorithm === 'chash' ? { hashKey: { source: 'ip' as const } } : {}),
  };
}

class FakePeers implements PeerState {
  unavailable = new Set<string>();
  latency = new Map<string, number>();
  isAvailable(s: ServerSpec): boolean { return !this.unavailable.has(s.id); }
  latencyEwma(id: string): number | undefined { return this.latency.get(id); }
  inflight(): number { return 0; }
}


class Clock { t = 1_000; now = () => this.t; }
function env(clock = new Clock(), extra: Partial<PickerEnv> = {}): PickerEnv {
  return { random: seeded(7), now: clock.now, stickySecret: 'test-secret', ...extra };
}

function req(cookie?: string, headers: Record<string, string> = {}, clientIp = '10.0.0.1'): PickRequest {
  return { clientIp, url: '/', headers: { ...headers, ...(cookie === undefined ? {} : { cookie }) } };
}
const NONE: ReadonlySet<string> = new Set();

const canary = (extra: Partial<CanaryPolicy> = {}): CanaryPolicy => ({ tag: 'canary', weight: 0, bucketCookie: 'lb_canary', ...extra });
const stickyCookie = (extra: Partial<StickyPolicy> = {}): StickyPolicy => ({ mode: 'cookie', name: 'lb_srv', ttlSeconds: 3600, secure: false, httpOnly: true, ...extra });

/** `name=value` pairs of Set-Cookie texts, as a browser would send them back */
function cookieJar(setCookies: readonly string[] | undefined, jar = new Map<string, string>()): Map<string, string> {
  for (const c of setCookies ?? []) {
    const [pair] = c.split(';');
    const eq = pair.indexOf('=');
    jar.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return jar;
}
const cookieHeader = (jar: Map<string, string>): string | undefined => (jar.size === 0 ? undefined : [...jar].map(([k, v]) => `${k}=${v}`).join('; '));

function pickWith(p: Picker, r: PickRequest, exclude: ReadonlySet<string> = NONE): { id: string | undefined; cookies: string[] | undefined } {
  const s = p.pick(r, exclude);
  return { id: s?.id, cookies: s === undefined ? undefined : p.responseCookies?.(r, s) };
}

const SERVERS = [server('s1'), server('s2'), server('s3'), canaryServer('c1'), canaryServer('c2')];

test('canary weight: share within ±3 % over 10,000 new clients, for every algorithm', () => {
  for (const algorithm of ALGORITHMS) {
    for (const weight of [0, 5, 20, 50, 80, 100]) {
      const peers = new FakePeers();
      if (algorithm === 'ewma') { peers.latency.set('c1', 500); peers.latency.set('c2', 900); peers.latency.set('s1', 1); }
      const p = createPicker(upstream(algorithm, SERVERS, { canary: canary({ weight }) }), peers, env());
      let inCanary = 0;
      for (let i = 0; i < 10_000; i++) {
        const id = p.pick(req(undefined, {}, `10.0.${i >> 8}.${i & 255}`), NONE)?.id ?? 'none';
        if (id.startsWith('c')) inCanary++;
      }
      const share = inCanary / 100;
      assert.ok(Math.abs(share - weight) <= 3, `${algorithm} weight ${weight}: canary got ${share} %`);
    }
  }
});

test('canary header and cookie: always / never / value / pattern, header before cookie before weight', () => {
  const policy = canary({ weight: 50, header: 'x-canary', headerValue: 'yes-please', headerPattern: '^beta-', cookie: 'canary' });
  const cases: { name: string; cookie?: string; headers?: Record<string, string>; group: 'c' | 's' | 'either' }[] = [
    { name: 'header always', headers: { 'x-canary': 'always' }, group: 'c' },
    { name: 'header never', headers: { 'x-canary': 'never' }, group: 's' },
    { name: 'header equal to headerValue', headers: { 'x-canary': 'yes-please' }, group: 'c' },
    { name: 'header matching headerPattern', headers: { 'x-canary': 'beta-7' }, group: 'c' },
    { name: 'header never beats cookie always', headers: { 'x-canary': 'never' }, cookie: 'canary=always', group: 's' },
    { name: 'header always beats cookie never', headers: { 'x-canary': 'always' }, cookie: 'canary=never', group: 'c' },
    { name: 'other header value falls through to cookie', headers: { 'x-canary': 'nope' }, cookie: 'canary=never', group: 's' },
    { name: 'cookie always', cookie: 'a=1; canary=always', group: 'c' },
    { name: 'cookie never beats a canary bucket', cookie: 'canary=never; lb_canary=0', group: 's' },
    { name: 'cookie always beats a stable bucket', cookie: 'canary=always; lb_canary=9999', group: 'c' },
    { name: 'bucket cookie below the cut', cookie: 'lb_canary=4999', group: 'c' },
    { name: 'bucket cookie at the cut', cookie: 'lb_canary=5000', group: 's' },
    { name: 'malformed bucket is a new draw', cookie: 'lb_canary=abc', group: 'either' },
  ];
  for (const algorithm of ALGORITHMS) {
    const p = createPicker(upstream(algorithm, SERVERS, { canary: policy }), new FakePeers(), env());
    for (const c of cases) {
      for (let i = 0; i < 20; i++) {
        const r = req(c.cookie, c.headers ?? {}, `10.1.0.${i}`);
        const id = p.pick(r, NONE)?.id ?? 'none';
        if (c.group !== 'either') assert.equal(id[0], c.group, `${algorithm}: ${c.name}`);
        const forcedOrCarried = c.group !== 'either';
        assert.equal(r.canaryBucket === undefined, forcedOrCarried, `${algorithm}: ${c.name}: a draw only when weight decides`);
      }
    }
  }
});

test('a client that landed by weight stays in its group, across requests and table swaps', () => {
  const clock = new Clock();
  const e = env(clock);
  let p = createPicker(upstream('roundrobin', SERVERS, { canary: canary({ weight: 30 }) }), new FakePeers(), e);
  const clients = Array.from({ length: 200 }, () => new Map<string, string>());
  const groupOf: string[] = [];
  for (const [i, jar] of clients.entries()) {
    const first = pickWith(p, req(cookieHeader(jar)));
    cookieJar(first.cookies, jar);
    assert.ok(jar.has('lb_canary'), 'a weight-decided client gets the bucket cookie');
    groupOf[i] = first.id![0];
  }
  const canaries = groupOf.filter((g) => g === 'c').length;
  assert.ok(canaries > 30 && canaries < 90, `about 30 % of 200 in the canary, got ${canaries}`);
  for (let round = 0; round < 3; round++) {
    // a new table (one more stable server) compiles a new picker: the groups hold
    if (round === 1) p = createPicker(upstream('roundrobin', [...SERVERS, server('s4')], { canary: canary({ weight: 30 }) }), new FakePeers(), e);
    for (const [i, jar] of clients.entries()) {
      const again = pickWith(p, req(cookieHeader(jar)));
      assert.equal(again.id![0], groupOf[i], `client ${i} round ${round}`);
      assert.equal(again.cookies, undefined, 'no new cookie for a client that carries one');
    }
  }
  // raising the weight moves stable clients into the canary, never a canary client back
  p = createPicker(upstream('roundrobin', SERVERS, { canary: canary({ weight: 60 }) }), new FakePeers(), e);
  let moved = 0;
  for (const [i, jar] of clients.entries()) {
    const g = pickWith(p, req(cookieHeader(jar))).id![0];
    if (groupOf[i] === 'c') assert.equal(g, 'c');
    else if (g === 'c') moved++;
  }
  assert.ok(moved > 0, 'some stable clients moved to the canary at 60 %');
});

test('a retry stays in the group of the first pick', () => {
  const p = createPicker(upstream('roundrobin', SERVERS, { canary: canary({ weight: 50 }) }), new FakePeers(), env());
  for (let i = 0; i < 200; i++) {
    const r = req();
    const first = p.pick(r, NONE)!;
    const second = p.pick(r, new Set([first.id]))!;
    assert.equal(second.id[0], first.id[0]);
    assert.notEqual(second.id, first.id);
  }
});

test('empty groups: no canary servers sends all to stable, no stable servers all to the canary', () => {
  const cases: { servers: ServerSpec[]; weight: number; headers: Record<string, string>; want: string; unavailable?: string[] }[] = [
    { servers: [server('s1'), server('s2')], weight: 100, headers: { 'x-canary': 'always' }, want: 's' },
    { servers: [canaryServer('c1'), canaryServer('c2')], weight: 0, headers: { 'x-canary': 'never' }, want: 'c' },
    // a group whose servers are all unavailable also hands over to the other one
    { servers: [server('s1'), canaryServer('c1')], weight: 100, headers: {}, want: 's', unavailable: ['c1'] },
  ];
  for (const algorithm of ALGORITHMS) {
    for (const c of cases) {
      const peers = new FakePeers();
      for (const id of c.unavailable ?? []) peers.unavailable.add(id);
      const p = createPicker(upstream(algorithm, c.servers, { canary: canary({ weight: c.weight, header: 'x-canary' }) }), peers, env());
      for (let i = 0; i < 50; i++) assert.equal(p.pick(req(undefined, c.headers, `10.2.0.${i}`), NONE)?.id[0], c.want, `${algorithm} ${JSON.stringify(c)}`);
    }
  }
  const none = createPicker(upstream('roundrobin', [], { canary: canary({ weight: 50 }) }), new FakePeers(), env());
  assert.equal(none.pick(req(), NONE), undefined);
});

test('sticky cookie: honoured, opaque, stable across pickers, re-picked and re-set when its server is ejected or gone', () => {
  for (const algorithm of ALGORITHMS) {
    const peers = new FakePeers();
    const servers = [server('10.9.0.1:8080'), server('10.9.0.2:8080'), server('10.9.0.3:8080')];
    const spec = upstream(algorithm, servers, { sticky: stickyCookie({ secure: true, sameSite: 'Lax' }) });
    const p = createPicker(spec, peers, env());
    const first = pickWith(p, req(undefined, {}, '10.3.0.1'));
    assert.equal(first.cookies?.length, 1);
    const text = first.cookies![0];
    assert.match(text, /^lb_srv=[A-Za-z0-9_-]{22}; Path=\/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax$/);
    assert.ok(!text.includes('10.9') && !text.includes('8080'), 'the id does not reveal the address');
    const jar = cookieJar(first.cookies);
    for (let i = 0; i < 30; i++) {
      const again = pickWith(p, req(cookieHeader(jar), {}, `10.3.1.${i}`));
      assert.equal(again.id, first.id, `${algorithm}: sticky`);
      assert.equal(again.cookies, undefined);
    }
    // the same table compiled again (another worker, a swap) maps the cookie to the same server
    const p2 = createPicker(upstream(algorithm, [...servers].reverse(), spec.policy!), peers, env());
    assert.equal(p2.pick(req(cookieHeader(jar)), NONE)?.id, first.id);
    // ejected: another server, and a cookie naming it
    peers.unavailable.add(first.id!);
    const moved = pickWith(p, req(cookieHeader(jar)));
    assert.notEqual(moved.id, first.id);
    assert.equal(cookieJar(moved.cookies).get('lb_srv'), opaqueServerId('test-secret', 'svc', moved.id!));
    // gone from the table: re-picked as well
    const p3 = createPicker(upstream(algorithm, servers.filter((s) => s.id !== first.id), spec.policy!), new FakePeers(), env());
    const gone = pickWith(p3, req(cookieHeader(jar)));
    assert.notEqual(gone.id, first.id);
    assert.ok(gone.cookies?.[0].startsWith('lb_srv='));
    // an unknown or forged cookie is just a new pick
    assert.ok(pickWith(p3, req('lb_srv=forged')).cookies?.[0].startsWith('lb_srv='));
  }
  assert.notEqual(opaqueServerId('a', 'svc', 'x:1'), opaqueServerId('b', 'svc', 'x:1'), 'the id depends on the secret');
});

test('sticky cookie never moves a client across canary groups', () => {
  const policy: TrafficPolicy = { canary: canary({ weight: 50, header: 'x-canary' }), sticky: stickyCookie() };
  const p = createPicker(upstream('roundrobin', SERVERS, policy), new FakePeers(), env());
  const toCanary = pickWith(p, req(undefined, { 'x-canary': 'always' }));
  assert.equal(toCanary.id?.[0], 'c');
  const jar = cookieJar(toCanary.cookies);
  // the client now asks for stable: a stable server, and the cookie re-set to it
  const forced = pickWith(p, req(cookieHeader(jar), { 'x-canary': 'never' }));
  assert.equal(forced.id?.[0], 's');
  assert.ok(cookieJar(forced.cookies).get('lb_srv') !== jar.get('lb_srv'));
  // a sticky client without a bucket keeps its server's group, and gets a bucket in that group
  for (let i = 0; i < 50; i++) {
    const r = pickWith(p, req(cookieHeader(jar), {}, `10.4.0.${i}`));
    assert.equal(r.id, toCanary.id);
    const bucket = Number(cookieJar(r.cookies).get('lb_canary'));
    assert.ok(bucket >= 0 && bucket < 5000, `bucket ${bucket} in the canary range`);
  }
  // a bucket saying stable wins over a canary sticky cookie: re-picked inside stable
  jar.set('lb_canary', '9000');
  const r = pickWith(p, req(cookieHeader(jar)));
  assert.equal(r.id?.[0], 's');
});

test('sticky=header and sticky=ip hash inside the group', () => {
  for (const mode of ['header', 'ip'] as const) {
    const sticky: StickyPolicy = { mode, name: mode === 'header' ? 'x-user' : '', ttlSeconds: 0, secure: false, httpOnly: true };
    const p = createPicker(upstream('roundrobin', SERVERS, { sticky, canary: canary({ weight: 0 }) }), new FakePeers(), env());
    const seen = new Set<string>();
    for (let u = 0; u < 40; u++) {
      const mk = () => req(undefined, { 'x-user': `user-${u}` }, mode === 'ip' ? `10.5.0.${u}` : '10.5.9.9');
      const id = p.pick(mk(), NONE)!.id;
      seen.add(id);
      for (let i = 0; i < 5; i++) assert.equal(p.pick(mk(), NONE)!.id, id, `${mode} user ${u}`);
      assert.equal(id[0], 's');
      assert.equal(p.responseCookies?.(mk(), p.pick(mk(), NONE)!), undefined, 'no cookie for hash stickiness');
    }
    assert.ok(seen.size > 1, `${mode}: keys spread over servers`);
  }
});

test('panic threshold edges: below the threshold picks spread over all servers, at it only the healthy ones', () => {
  const four = [server('a'), server('b'), server('c'), server('d'), server('z', { down: true })];
  const cases: { threshold: number; unavailable: string[]; panic: boolean }[] = [
    { threshold: 50, unavailable: ['a', 'b'], panic: false }, // 50 % is not below 50 %
    { threshold: 50, unavailable: ['a', 'b', 'c'], panic: true },
    { threshold: 50, unavailable: ['a', 'b', 'c', 'd'], panic: true },
    { threshold: 0, unavailable: ['a', 'b', 'c'], panic: false },
    { threshold: 0, unavailable: ['a', 'b', 'c', 'd'], panic: false },
    { threshold: 100, unavailable: ['a'], panic: true },
    { threshold: 100, unavailable: [], panic: false },
    { threshold: 76, unavailable: ['a'], panic: true },
    { threshold: 75, unavailable: ['a'], panic: false },
  ];
  for (const algorithm of ALGORITHMS) {
    for (const c of cases) {
      const peers = new FakePeers();
      for (const id of c.unavailable) peers.unavailable.add(id);
      const events: PanicEvent[] = [];
      const p = createPicker(upstream(algorithm, four, { panicThresholdPercent: c.threshold }), peers, env(new Clock(), { onPanic: (e) => events.push(e) }));
      const seen = new Set<string>();
      for (let i = 0; i < 400; i++) {
        const id = p.pick(req(undefined, {}, `10.6.${i >> 8}.${i & 255}`), NONE)?.id;
        if (id !== undefined) seen.add(id);
      }
      const label = `${algorithm} ${JSON.stringify(c)}`;
      assert.ok(!seen.has('z'), `${label}: an admin-down server is never picked`);
      const healthy = ['a', 'b', 'c', 'd'].filter((id) => !c.unavailable.includes(id));
      if (c.panic) {
        assert.equal(events.length, 1, label);
        assert.equal(events[0].panicking, true);
        assert.ok(c.unavailable.some((id) => seen.has(id)), `${label}: unhealthy servers take traffic in panic`);
        if (algorithm !== 'chash' || seen.size > 1) assert.ok(seen.size >= 2, label);
        assert.equal(p.panic?.panicking, true);
      } else {
        assert.equal(events.length, 0, label);
        assert.deepEqual([...seen].sort(), algorithm === 'chash' ? [...seen].sort() : healthy, label);
        for (const id of seen) assert.ok(healthy.includes(id), `${label}: ${id} is healthy`);
      }
    }
  }
});

test('panic mode is left when health returns, and honours already-tried servers', () => {
  const clock = new Clock();
  const peers = new FakePeers();
  const events: PanicEvent[] = [];
  const p = createPicker(upstream('roundrobin', [server('a'), server('b'), server('c')], { panicThresholdPercent: 50 }), peers, env(clock, { onPanic: (e) => events.push(e) }));
  peers.unavailable = new Set(['a', 'b']);
  assert.equal(p.pick(req(), new Set(['a', 'c']))?.id, 'b', 'in panic an unhealthy server is picked, but not a tried one');
  assert.equal(p.pick(req(), new Set(['a', 'b', 'c'])), undefined);
  peers.unavailable.clear();
  clock.t += 50;
  assert.equal(p.panic?.panicking, true, 'the verdict holds for the recheck interval');
  clock.t += 100;
  p.pick(req(), NONE);
  assert.equal(p.panic?.panicking, false);
  assert.deepEqual(events.map((e) => e.panicking), [true, false]);
  assert.equal(p.panic?.entered, 1);
  assert.ok((p.panic?.picks ?? 0) >= 2);
});

test('an upstream without a policy gets the plain algorithm picker', () => {
  const p = createPicker(upstream('roundrobin', [server('a')], {}), new FakePeers(), env());
  assert.equal(p.responseCookies, undefined);
  assert.equal(p.panic, undefined);
});
