// Access rules and rate limits, pure: the parsers (tags, JSON policy, fabio's allow=/deny= syntax),
// deny winning over allow, and the token bucket against an injected clock, whole and shared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessCheck, parseAccessList } from '../../balancer/src/policy/access-rules.js';
import { parseRate, parseRateBy, RateLimiter } from '../../balancer/src/policy/rate-limit.js';
import { parsePolicyJson, parsePolicyTags, policyDocumentToJson, resolvePolicy } from '../../balancer/src/policy/policy-spec.js';
import { demandKey, demandOverSpan, RATE_SHARE_WINDOW_MS, sharesForWorkers, sharesFromDemand, type DemandReport } from '../../balancer/src/policy/rate-shares.js';
import { mulberry32 } from '../support/fuzz.js';
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

// The share loop of two workers, simulated with the real bucket, shares and demand span: new
// connections land on either worker at random (as the kernel spreads accepts), 1.5x the rate offered;
// on a busy machine a worker's report timer is late now and then (here: 30 % of windows start a stall
// of 2-5 windows, its counts sent together after). The primary's demand per worker is either its
// latest report while under 600 ms old (the rule before the span) or its reports of the span summed.
function grantedOverRate(rule: 'latest' | 'span', seed: number): number {
  const rng = mulberry32(seed);
  const rate = 40;
  const limiters = [0, 1].map(() => new RateLimiter({ ratePerSecond: rate, burst: rate, by: { source: 'ip' } }));
  const key = demandKey('s', 'ip:a');
  const reports: DemandReport[][] = [[], []];
  const unsent = [0, 0];
  const lateUntil = [0, 0];
  let shares = [0.5, 0.5];
  let granted = 0;
  const seconds = 60;
  const perWindow = (1.5 * rate * RATE_SHARE_WINDOW_MS) / 1000;
  for (let w = 0; w < (seconds * 1000) / RATE_SHARE_WINDOW_MS; w++) {
    const start = w * RATE_SHARE_WINDOW_MS;
    // arrival times in order (a bucket's clock only moves forward)
    const arrivals = Array.from({ length: perWindow }, () => start + rng() * RATE_SHARE_WINDOW_MS).sort((a, b) => a - b);
    for (const at of arrivals) {
      const worker = rng() < 0.5 ? 0 : 1;
      unsent[worker]++;
      if (limiters[worker].take('ip:a', at, shares[worker]).ok && at >= 5000) granted++;
    }
    const end = start + RATE_SHARE_WINDOW_MS;
    for (const i of [0, 1]) {
      if (end < lateUntil[i]) continue;
      if (rng() < 0.3) {
        lateUntil[i] = end + RATE_SHARE_WINDOW_MS * (2 + Math.floor(rng() * 4));
        continue;
      }
      reports[i].push({ at: end, counts: new Map([[key, unsent[i]]]) });
      unsent[i] = 0;
    }
    const demand = [0, 1].map((i) => {
      if (rule === 'latest') {
        const last = reports[i].at(-1);
        return last !== undefined && end - last.at <= 3 * RATE_SHARE_WINDOW_MS ? last.counts : new Map<string, number>();
      }
      const { demand: d, firstInSpan } = demandOverSpan(reports[i], end);
      reports[i].splice(0, firstInSpan);
      return d;
    });
    const next = sharesForWorkers([0, 1], new Map([[0, demand[0]], [1, demand[1]]]));
    shares = [0, 1].map((i) => next.get(i)!.shares.find(([k]) => k === key)?.[1] ?? next.get(i)!.defaultShare);
  }
  return granted / (seconds - 5) / rate;
}

test('rate shares over the demand span: two workers with late reports at 1.5x the rate get the rate', () => {
  for (const seed of [1, 2, 3]) {
    const latest = grantedOverRate('latest', seed);
    const span = grantedOverRate('span', seed);
    process.stderr.write(`rate shares, seed ${seed}: granted ${latest.toFixed(3)}x of the rate from the latest report, ${span.toFixed(3)}x over the span\n`);
    assert.ok(span >= 0.97 && span <= 1.02, `span: ${span.toFixed(3)}x`);
    assert.ok(latest < span, `latest ${latest.toFixed(3)}x, span ${span.toFixed(3)}x`);
  }
});

test('demand over the span: reports inside it summed per key, older ones named for dropping', () => {
  const k = demandKey('s', 'ip:a');
  const k2 = demandKey('s', 'ip:b');
  const reports: DemandReport[] = [
    { at: 0, counts: new Map([[k, 5]]) },
    { at: 900, counts: new Map([[k, 2], [k2, 1]]) },
    { at: 1000, counts: new Map([[k, 3]]) },
  ];
  assert.deepEqual(demandOverSpan(reports, 1000, 1000), { demand: new Map([[k, 10], [k2, 1]]), firstInSpan: 0 });
  assert.deepEqual(demandOverSpan(reports, 1001, 1000), { demand: new Map([[k, 5], [k2, 1]]), firstInSpan: 1 });
  assert.deepEqual(demandOverSpan(reports, 5000, 1000), { demand: new Map(), firstInSpan: 3 });
  assert.deepEqual(demandOverSpan([], 5000), { demand: new Map(), firstInSpan: 0 });
});
