// Access rules and rate limits, pure: the parsers (tags, JSON policy, fabio's allow=/deny= syntax),
// deny winning over allow, and the token bucket against an injected clock, whole and shared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessCheck, parseAccessList } from '../../balancer/src/policy/access-rules.js';
import { parseRate, parseRateBy, RateLimiter } from '../../balancer/src/policy/rate-limit.js';
import { parsePolicyJson, parsePolicyTags, policyDocumentToJson, resolvePolicy } from '../../balancer/src/policy/policy-spec.js';
import { demandKey, sharesForWorkers, sharesFromDemand } from '../../balancer/src/policy/rate-shares.js';
import { TrafficGuard } from '../../balancer/src/policy/traffic-guard.js';
import type { UpstreamSpec } from '../../balancer/src/routing/types.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

test('allow=/deny= lists: scenario table', () => {
  const cases: [string, readonly string[] | RegExp][] = [
    ['ip:10.0.0.0/8,ip:fe80::/10', ['10.0.0.0/8', 'fe80::/10']],
    ['ip:127.0.0.2', ['127.0.0.2']],
    [' ip:192.168.1.0/24 , ', ['192.168.1.0/24']],
    ['10.0.0.0/8', /expected ip:<address or CIDR>/],
    ['ip:10.0.0.0/33', /not an IPv4 or IPv6/],
    ['ip:nope', /not an IPv4 or IPv6/],
    ['', /empty list/],
  ];
  for (const [text, want] of cases) {
    const got = parseAccessList(text);
    if (want instanceof RegExp) assert.match(String(got), want, text);
    else assert.deepEqual(got, want, text);
  }
});

test('access check: deny wins, an allow list denies the rest, IPv4-mapped addresses compare as IPv4', () => {
  const both = new AccessCheck({ allow: ['127.0.0.0/8'], deny: ['127.0.0.3/32'] });
  const table: [string, boolean][] = [['127.0.0.2', true], ['127.0.0.3', false], ['10.1.1.1', false], ['::ffff:127.0.0.2', true], ['::1', false]];
  for (const [ip, want] of table) assert.equal(both.allows(ip), want, ip);
  const denyOnly = new AccessCheck({ deny: ['fe80::/10'] });
  assert.equal(denyOnly.allows('fe80::1'), false);
  assert.equal(denyOnly.allows('10.0.0.1'), true);
});

test('rate= / rate_by=: scenario table', () => {
  const rates: [string, number | undefined][] = [['100/s', 100], ['6000/m', 100], ['3600/h', 1], ['2.5/s', 2.5], ['100', 100], ['0/s', undefined], ['-1/s', undefined], ['1/d', undefined], ['x', undefined]];
  for (const [t, want] of rates) assert.equal(parseRate(t), want, t);
  assert.deepEqual(parseRateBy('ip'), { source: 'ip' });
  assert.deepEqual(parseRateBy('header:X-Api-Key'), { source: 'header', name: 'x-api-key' });
  assert.equal(parseRateBy('cookie:a'), undefined);
  assert.equal(parseRateBy('header:'), undefined);
});

test('policy tags and JSON carry access rules and the rate limit; bad values are warnings / reasons', () => {
  const warnings: string[] = [];
  const doc = parsePolicyTags('svc', [['allow=ip:10.0.0.0/8,ip:fe80::/10', 'deny=ip:10.9.0.0/16', 'rate=100/s', 'burst=200', 'rate_by=header:X-Key']], warnings);
  assert.deepEqual(warnings, []);
  const policy = resolvePolicy([doc], 0);
  assert.deepEqual(policy, {
    access: { allow: ['10.0.0.0/8', 'fe80::/10'], deny: ['10.9.0.0/16'] },
    rateLimit: { ratePerSecond: 100, burst: 200, by: { source: 'header', name: 'x-key' } },
  });
  const defaults = resolvePolicy([parsePolicyTags('svc', [['rate=10/s']], [])], 0);
  assert.deepEqual(defaults?.rateLimit, { ratePerSecond: 10, burst: 10, by: { source: 'ip' } }, 'burst defaults to one second of the rate, key to the client address');
  const bad: string[] = [];
  parsePolicyTags('svc', [['allow=10.0.0.0/8', 'rate=fast', 'burst=5', 'rate_by=cookie:x']], bad);
  assert.match(bad.join('\n'), /tag "allow=10.0.0.0\/8" ignored: "10.0.0.0\/8": expected ip:/);
  assert.match(bad.join('\n'), /tag "rate=fast" ignored/);
  assert.match(bad.join('\n'), /tag "burst=5" ignored: no valid rate= tag/);

  const json = parsePolicyJson({ allow: ['ip:127.0.0.2'], deny: 'ip:127.0.0.3', rate: '50/s', burst: 5, rateBy: 'ip' });
  assert.ok(json.ok);
  assert.deepEqual(parsePolicyJson(policyDocumentToJson(json.policy)), json, 'the JSON form parses back (dump file, admin GET)');
  for (const [body, reason] of [
    [{ rate: '0/s' }, /rate must be/], [{ burst: 5 }, /rate must be/], [{ rate: '1/s', burst: 0 }, /burst must be/],
    [{ allow: 'ip:x' }, /allow: "ip:x"/], [{ deny: 7 }, /deny: must be/], [{ rate: '1/s', rateBy: 'uri' }, /rateBy/],
  ] as const) {
    const r = parsePolicyJson(body);
    assert.equal(r.ok, false, JSON.stringify(body));
    if (!r.ok) assert.match(r.reason, reason);
  }
});

test('token bucket: burst first, then the rate; Retry-After from the deficit; a share of it per worker', () => {
  const l = new RateLimiter({ ratePerSecond: 10, burst: 5, by: { source: 'ip' } });
  let t = 1_000;
  for (let i = 0; i < 5; i++) assert.equal(l.take('a', t).ok, true, `burst token ${i}`);
  const no = l.take('a', t);
  assert.deepEqual(no, { ok: false, retryAfterMs: 100 });
  assert.equal(l.take('b', t).ok, true, 'another key has its own bucket');
  t += 100;
  assert.equal(l.take('a', t).ok, true, 'one token after 1/rate');
  assert.equal(l.take('a', t).ok, false);
  // over 10 s at one take per ms, exactly the rate gets through
  let ok = 0;
  for (let i = 0; i < 10_000; i++) if (l.take('a', (t += 1)).ok) ok++;
  assert.equal(ok, 100);
  // two workers with half each: together the rate
  const w1 = new RateLimiter({ ratePerSecond: 10, burst: 4, by: { source: 'ip' } });
  const w2 = new RateLimiter({ ratePerSecond: 10, burst: 4, by: { source: 'ip' } });
  let both = 0;
  let u = 0;
  for (let i = 0; i < 10_000; i++) { u += 1; if ((i % 2 === 0 ? w1 : w2).take('a', u, 0.5).ok) both++; }
  // burst 4 (2 + 2) plus 10 s x 10/s, less what is still filling in each bucket
  assert.ok(both >= 102 && both <= 104, `two halves let ${both} through`);
});

test('guard: 403 before 429, counts per service, buckets kept across an equal policy from a new table', () => {
  let now = 0;
  const g = new TrafficGuard(1, () => now);
  const spec = (): UpstreamSpec => ({
    name: 's', algorithm: 'roundrobin', servers: [], retry: DEFAULT_TABLE_DEFAULTS.retry, origin: 'consul',
    policy: { access: { deny: ['127.0.0.3/32'] }, rateLimit: { ratePerSecond: 1, burst: 2, by: { source: 'header', name: 'x-key' } } },
  });
  const u1 = spec();
  assert.deepEqual(g.check(u1, '127.0.0.3'), { ok: false, status: 403 });
  assert.equal(g.check(u1, '127.0.0.2', () => 'k').ok, true);
  assert.equal(g.check(spec(), '127.0.0.9', () => 'k').ok, true, 'same key from another address: one bucket');
  assert.deepEqual(g.check(spec(), '127.0.0.2', () => 'k'), { ok: false, status: 429, retryAfterS: 1 });
  assert.equal(g.check(spec(), '127.0.0.2', () => 'other').ok, true);
  now += 1000;
  assert.equal(g.check(spec(), '127.0.0.2', () => 'k').ok, true);
  assert.deepEqual({ ...g.counts().get('s') }, { denied: 1, limited: 1 });
});

test('rate shares: from demand with a floor of 0.1/N, summing to 1 over the live workers', () => {
  const cases: { name: string; demand: number[]; want: number[] }[] = [
    { name: 'no worker', demand: [], want: [] },
    { name: 'no demand: even', demand: [0, 0], want: [0.5, 0.5] },
    { name: 'one keep-alive client on worker 0', demand: [50, 0], want: [0.95, 0.05] },
    { name: 'spread evenly', demand: [20, 20], want: [0.5, 0.5] },
    { name: 'reload overlap: 4 live workers, old generation idle', demand: [0, 0, 30, 10], want: [0.025, 0.025, 0.7, 0.25] },
    { name: 'negative counts are none', demand: [-5, 10], want: [0.05, 0.95] },
  ];
  for (const c of cases) {
    const got = sharesFromDemand(c.demand);
    assert.equal(got.length, c.want.length, c.name);
    got.forEach((v, i) => assert.ok(Math.abs(v - c.want[i]) < 1e-9, `${c.name}: worker ${i} ${v}, want ${c.want[i]}`));
    if (got.length > 0) assert.ok(Math.abs(got.reduce((a, b) => a + b, 0) - 1) < 1e-9, `${c.name}: sums to 1`);
  }
  const reports = new Map([[1, new Map([[demandKey('s', 'ip:a'), 40]])], [9, new Map([[demandKey('s', 'ip:a'), 99]])]]);
  const w = sharesForWorkers([1, 2], reports);
  const rounded = (id: number) => ({ ...w.get(id)!, shares: w.get(id)!.shares.map(([k, v]) => [k, Math.round(v * 1e6) / 1e6]) });
  assert.deepEqual(rounded(1), { defaultShare: 0.5, shares: [[demandKey('s', 'ip:a'), 0.95]] }, 'a worker that is not live (9) is ignored');
  assert.deepEqual(rounded(2), { defaultShare: 0.5, shares: [[demandKey('s', 'ip:a'), 0.05]] });
});

test('guard: demand per key reported once, shares from the primary change the bucket', () => {
  let now = 0;
  const g = new TrafficGuard(0.5, () => now);
  const u: UpstreamSpec = {
    name: 's', algorithm: 'roundrobin', servers: [], retry: DEFAULT_TABLE_DEFAULTS.retry, origin: 'consul',
    policy: { rateLimit: { ratePerSecond: 10, burst: 10, by: { source: 'ip' } } },
  };
  let ok = 0;
  for (let i = 0; i < 20; i++) if (g.check(u, '127.0.0.2').ok) ok++;
  assert.equal(ok, 5, 'default share 0.5: half the burst');
  assert.deepEqual(g.takeDemand(), [[demandKey('s', 'ip:127.0.0.2'), 20]]);
  assert.equal(g.takeDemand(), undefined);
  g.applyShares({ defaultShare: 0.5, shares: [[demandKey('s', 'ip:127.0.0.2'), 0.95]] });
  now += 1000;
  ok = 0;
  for (let i = 0; i < 20; i++) if (g.check(u, '127.0.0.2').ok) ok++;
  assert.equal(ok, 9, 'share 0.95: 9.5 tokens a second');
});
