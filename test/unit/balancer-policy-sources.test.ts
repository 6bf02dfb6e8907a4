// Traffic policy sources as tables: tags, JSON documents (admin / KV) with their refusals, the
// precedence admin > KV > tags, and the table build marking canary servers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouteTable } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogInstance } from '../../balancer/src/routing/types.js';
import { parsePolicyJson, parsePolicyTags, policyDocumentToJson, resolvePolicy } from '../../balancer/src/policy/policy-spec.js';
import { policiesFromKv } from '../../balancer/src/policy/kv-policies.js';
import { decodeKvEntries } from '../../balancer/src/policy/kv-prefix-watcher.js';

test('policy tags: values, defaults and warnings', () => {
  const cases: { tags: string[]; want: unknown; warnings?: RegExp[] }[] = [
    { tags: ['urlprefix-/x', 'weight=2'], want: undefined },
    { tags: ['canary_weight=10'], want: { canary: { weight: 10 } } },
    { tags: ['canary_header=X-Canary', 'canary_header_value=yes', 'canary_cookie=cc', 'canary_tag=next'], want: { canary: { header: 'x-canary', headerValue: 'yes', cookie: 'cc', tag: 'next' } } },
    { tags: ['sticky=cookie'], want: { sticky: { mode: 'cookie', name: 'lb_srv', ttlSeconds: 0, secure: false, httpOnly: true } } },
    { tags: ['sticky=cookie:sid', 'sticky_ttl=1h', 'sticky_secure=true', 'sticky_httponly=false', 'sticky_samesite=Strict'], want: { sticky: { mode: 'cookie', name: 'sid', ttlSeconds: 3600, secure: true, httpOnly: false, sameSite: 'Strict' } } },
    { tags: ['sticky=header:X-User'], want: { sticky: { mode: 'header', name: 'x-user', ttlSeconds: 0, secure: false, httpOnly: true } } },
    { tags: ['sticky=ip', 'panic_threshold=0'], want: { sticky: { mode: 'ip', name: '', ttlSeconds: 0, secure: false, httpOnly: true }, panicThresholdPercent: 0 } },
    { tags: ['canary_weight=150', 'panic_threshold=x'], want: {}, warnings: [/canary_weight=150.*0 to 100/, /panic_threshold=x/] },
    { tags: ['sticky=cookies', 'sticky_ttl=1h'], want: {}, warnings: [/sticky=cookies/, /sticky_ttl=1h.*no sticky= tag/] },
    { tags: ['canary_header_pattern=(['], want: {}, warnings: [/canary_header_pattern/] },
  ];
  for (const c of cases) {
    const warnings: string[] = [];
    assert.deepEqual(parsePolicyTags('web', [c.tags], warnings), c.want, c.tags.join(' '));
    assert.equal(warnings.length, c.warnings?.length ?? 0, `${c.tags.join(' ')}: ${warnings.join(' | ')}`);
    for (const [i, re] of (c.warnings ?? []).entries()) assert.match(warnings[i], re);
  }
  const warnings: string[] = [];
  parsePolicyTags('web', [['canary_weight=10'], ['canary_weight=20']], warnings);
  assert.match(warnings[0], /conflicting tag "canary_weight=20" ignored/);
});

test('policy JSON: accepted documents and refusals with a reason', () => {
  const good = [
    { in: {}, out: {} },
    { in: { canary: { weight: 25, header: 'X-Canary', headerPattern: '^beta' } }, out: { canary: { weight: 25, header: 'x-canary', headerPattern: '^beta' } } },
    { in: { sticky: 'header:X-Session' }, out: { sticky: { mode: 'header', name: 'x-session', ttlSeconds: 0, secure: false, httpOnly: true } } },
    { in: { sticky: { mode: 'cookie', name: 'sid', ttl: '30m', secure: true, sameSite: 'None' }, panicThreshold: 30 }, out: { sticky: { mode: 'cookie', name: 'sid', ttlSeconds: 1800, secure: true, httpOnly: true, sameSite: 'None' }, panicThresholdPercent: 30 } },
  ];
  for (const g of good) {
    const r = parsePolicyJson(g.in);
    assert.deepEqual(r, { ok: true, policy: g.out }, JSON.stringify(g.in));
    // the JSON form round-trips (admin GET, dump file)
    if (r.ok) assert.deepEqual(parsePolicyJson(policyDocumentToJson(r.policy)), r);
  }
  const bad: [unknown, RegExp][] = [
    [[], /JSON object/],
    [{ canary: { weight: 101 } }, /weight.*0 to 100/],
    [{ canary: { weight: '5' } }, /weight/],
    [{ canary: { headerPattern: '(' } }, /headerPattern is not a valid regular expression/],
    [{ canary: { header: 'bad header' } }, /header name/],
    [{ canary: { colour: 'red' } }, /unknown field "canary.colour"/],
    [{ sticky: 'sometimes' }, /expected cookie/],
    [{ sticky: { mode: 'cookie', ttl: 'forever' } }, /sticky.ttl/],
    [{ sticky: { mode: 'cookie', sameSite: 'lax' } }, /sameSite/],
    [{ panicThreshold: -1 }, /panicThreshold/],
    [{ weight: 10 }, /unknown field "weight"/],
  ];
  for (const [input, re] of bad) {
    const r = parsePolicyJson(input);
    assert.equal(r.ok, false, JSON.stringify(input));
    if (!r.ok) assert.match(r.reason, re);
  }
});

test('precedence admin > KV > tags, whole documents; panic default 50 % unless set', () => {
  const tags = { canary: { weight: 10 }, panicThresholdPercent: 20 };
  const kv = { canary: { weight: 30 } };
  const admin = { sticky: { mode: 'ip' as const, name: '', ttlSeconds: 0, secure: false, httpOnly: true } };
  assert.deepEqual(resolvePolicy([undefined, undefined, tags]), { canary: { tag: 'canary', weight: 10, bucketCookie: 'lb_canary' }, panicThresholdPercent: 20 });
  assert.deepEqual(resolvePolicy([undefined, kv, tags]), { canary: { tag: 'canary', weight: 30, bucketCookie: 'lb_canary' }, panicThresholdPercent: 50 });
  assert.deepEqual(resolvePolicy([admin, kv, tags]), { sticky: admin.sticky, panicThresholdPercent: 50 });
  assert.deepEqual(resolvePolicy([undefined, undefined, undefined]), { panicThresholdPercent: 50 });
  assert.equal(resolvePolicy([{ panicThresholdPercent: 0 }]), undefined);
  assert.equal(resolvePolicy([undefined], 0), undefined);
});

function instance(id: string, port: number, tags: string[]): CatalogInstance {
  return { serviceId: id, service: 'web', node: 'n1', address: '127.0.0.1', port, tags, meta: {}, status: 'passing' };
}

test('table build: canary servers marked by the policy tag, overrides applied, bad KV values left out', () => {
  const snapshot = { services: { web: [instance('w1', 9001, ['canary_weight=20']), instance('w2', 9002, ['canary']), instance('w3', 9003, ['next'])] } };
  const fromTags = buildRouteTable({ snapshot, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS }).table.upstreams.web;
  assert.deepEqual(fromTags.servers.filter((s) => s.canary).map((s) => s.port), [9002]);
  assert.equal(fromTags.policy?.canary?.weight, 20);

  const kvWarnings: string[] = [];
  const kv = policiesFromKv({ web: '{"canary":{"tag":"next","weight":70}}', api: 'not json', 'a/b': '{}', db: '{"canary":{"weight":900}}' }, kvWarnings);
  assert.deepEqual(Object.keys(kv), ['web']);
  assert.equal(kvWarnings.length, 3);
  const withKv = buildRouteTable({ snapshot, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS, policies: { admin: {}, kv } }).table;
  assert.deepEqual(withKv.upstreams.web.servers.filter((s) => s.canary).map((s) => s.port), [9003]);
  assert.equal(withKv.upstreams.web.policy?.canary?.weight, 70);
  const withAdmin = buildRouteTable({ snapshot, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS, policies: { admin: { web: { panicThresholdPercent: 0 } }, kv } }).table;
  assert.equal(withAdmin.upstreams.web.policy, undefined);
  assert.ok(withAdmin.upstreams.web.servers.every((s) => s.canary === undefined));
  assert.notEqual(withAdmin.version, withKv.version, 'a policy change is a table change');
  // defaults.panicThresholdPercent 0 turns the default off
  const off = buildRouteTable({ snapshot: { services: { web: [instance('w1', 9001, [])] } }, adminUpstreams: {}, defaults: { ...DEFAULT_TABLE_DEFAULTS, panicThresholdPercent: 0 } }).table;
  assert.equal(off.upstreams.web.policy, undefined);
});

test('KV recurse answers decode relative to the prefix, folders left out', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(decodeKvEntries('balancer/policy/', [
    { Key: 'balancer/policy/', Value: null },
    { Key: 'balancer/policy/web', Value: b64('{"a":1}') },
    { Key: 'balancer/policy/dir/', Value: null },
    { Key: 'other/x', Value: b64('x') },
    { Key: 'balancer/policy/empty', Value: null },
  ]), { web: '{"a":1}', empty: '' });
  assert.deepEqual(decodeKvEntries('p/', null), {});
});

test('firstTagValues: first value per key in instance then tag order, a different later value a warning, foreign keys ignored', async () => {
  const { firstTagValues } = await import('../../balancer/src/routing/tag-options.js');
  const keys = new Set(['lb', 'sticky']);
  const cases: { tags: string[][]; want: [string, string, string][]; warnings: string[] }[] = [
    { tags: [], want: [], warnings: [] },
    { tags: [['urlprefix-/x', '=x', 'weight=2', 'lb']], want: [], warnings: [] },
    { tags: [[' lb = ewma ', 'sticky=ip']], want: [['lb', 'ewma', ' lb = ewma '], ['sticky', 'ip', 'sticky=ip']], warnings: [] },
    { tags: [['sticky=ip'], ['lb=chash', 'sticky=ip'], ['sticky=cookie']], want: [['sticky', 'ip', 'sticky=ip'], ['lb', 'chash', 'lb=chash']],
      warnings: ['service web: conflicting tag "sticky=cookie" ignored, "sticky=ip" wins'] },
  ];
  for (const c of cases) {
    const warnings: string[] = [];
    const got = [...firstTagValues('web', c.tags, keys, warnings)].map(([k, v]) => [k, v.value, v.tag]);
    assert.deepEqual(got, c.want, JSON.stringify(c.tags));
    assert.deepEqual(warnings, c.warnings);
  }
});
