// --trust-forwarded: the CIDR matcher (IPv4, IPv6, IPv4-mapped) and what upstreamRequestHeaders does
// with client-sent Forwarded / X-Real-IP / X-Forwarded-* for trusted and untrusted clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CidrError, CidrMatcher, parseCidr, parseCidrList, parseIp } from '../../balancer/src/proxy/cidr.js';
import { upstreamRequestHeaders } from '../../balancer/src/proxy/headers.js';
import { ConfigError, parseBalancerArgs } from '../../balancer/src/config.js';

test('parseIp scenarios', () => {
  const cases: [string, number[] | undefined][] = [
    ['10.1.2.3', [10, 1, 2, 3]],
    ['0.0.0.0', [0, 0, 0, 0]],
    ['255.255.255.255', [255, 255, 255, 255]],
    ['::ffff:10.1.2.3', [10, 1, 2, 3]],
    ['::ffff:a01:203', [10, 1, 2, 3]],
    ['[::1]', [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['fe80::1%eth0', [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ['2001:db8::', [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
    ['1:2:3:4:5:6:7:8', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
    ['64:ff9b::1.2.3.4', [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]],
    ['10.1.2', undefined],
    ['10.1.2.256', undefined],
    ['010.1.2.3', undefined],
    ['1.2.3.4.5', undefined],
    ['', undefined],
    ['::1::', undefined],
    ['1:2:3:4:5:6:7:8:9', undefined],
    ['1:2:3:4:5:6:7::8', undefined],
    ['12345::', undefined],
    ['g::1', undefined],
    ['localhost', undefined],
  ];
  for (const [text, bytes] of cases) assert.deepEqual(parseIp(text) === undefined ? undefined : [...parseIp(text)!], bytes, text);
});

test('CIDR matching scenarios (IPv4, IPv6, mapped, single hosts)', () => {
  const cases: [ranges: string, address: string, hit: boolean][] = [
    ['10.0.0.0/8', '10.200.1.1', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['10.0.0.0/8', '::ffff:10.9.9.9', true],
    ['192.168.1.0/25', '192.168.1.127', true],
    ['192.168.1.0/25', '192.168.1.128', false],
    ['192.168.1.77/24', '192.168.1.1', true], // host bits of the range are ignored
    ['127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '127.0.0.2', false],
    ['0.0.0.0/0', '203.0.113.9', true],
    ['0.0.0.0/0', '::1', false],
    ['::1', '::1', true],
    ['::1/128', '::2', false],
    ['fd00::/8', 'fd12:3456::1', true],
    ['fd00::/8', 'fe80::1', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/33', '2001:db8:8000::1', false],
    ['::ffff:10.0.0.0/104', '10.1.1.1', true],
    ['::/0', '2001:db8::1', true],
    ['::/0', '10.0.0.1', false],
    ['10.0.0.0/8, 172.16.0.0/12 ::1', '172.31.255.255', true],
    ['10.0.0.0/8, 172.16.0.0/12 ::1', '172.32.0.0', false],
    ['10.0.0.0/8, 172.16.0.0/12 ::1', '::1', true],
    ['10.0.0.0/8', 'not-an-ip', false],
    ['', '127.0.0.1', false],
  ];
  for (const [ranges, address, hit] of cases) {
    const m = new CidrMatcher(parseCidrList(ranges));
    assert.equal(m.has(address), hit, `${ranges} ∋ ${address}`);
    assert.equal(m.has(address), hit, `${ranges} ∋ ${address} (cached)`);
  }
});

test('malformed CIDR ranges are refused with the entry named', () => {
  for (const bad of ['10.0.0.0/33', '10.0.0.0/', '10.0.0/8', '::1/129', 'fe80::1%eth0/64', '::ffff:10.0.0.0/8', 'x', '10.0.0.0/-1', '10.0.0.0/8/8']) {
    assert.equal(parseCidr(bad), undefined, bad);
    assert.throws(() => parseCidrList(`127.0.0.1,${bad}`), (err: unknown) => err instanceof CidrError && err.message.includes(`"${bad}"`), bad);
  }
});

const CLIENT_HEADERS = [
  'Host', 'web', 'Forwarded', 'for=6.6.6.6;proto=https', 'X-Real-IP', '6.6.6.6', 'X-Forwarded-For', '6.6.6.6',
  'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'admin.internal', 'X-Forwarded-Port', '443', 'X_Forwarded_For', '7.7.7.7',
  'x-forwarded-prefix', '/admin', 'Accept', '*/*',
];

function asObject(flat: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < flat.length; i += 2) (out[flat[i].toLowerCase()] ??= []).push(flat[i + 1]);
  return out;
}

test('forwarding headers from an untrusted client are replaced by what the proxy saw', () => {
  const h = asObject(upstreamRequestHeaders(CLIENT_HEADERS, { clientIp: '203.0.113.5', proto: 'http', trusted: false }));
  assert.deepEqual(h, {
    host: ['web'], accept: ['*/*'],
    'x-forwarded-for': ['203.0.113.5'], 'x-forwarded-proto': ['http'], 'x-forwarded-host': ['web'],
  });
  // the default is untrusted
  assert.deepEqual(asObject(upstreamRequestHeaders(CLIENT_HEADERS, { clientIp: '203.0.113.5', proto: 'http' })), h);
});

test('forwarding headers from a trusted proxy are kept, X-Forwarded-For appended to', () => {
  const h = asObject(upstreamRequestHeaders(CLIENT_HEADERS, { clientIp: '10.0.0.2', proto: 'http', trusted: true }));
  assert.deepEqual(h, {
    host: ['web'], accept: ['*/*'], forwarded: ['for=6.6.6.6;proto=https'], 'x-real-ip': ['6.6.6.6'],
    'x-forwarded-port': ['443'], 'x-forwarded-prefix': ['/admin'],
    'x-forwarded-for': ['6.6.6.6, 10.0.0.2'], 'x-forwarded-proto': ['https'], 'x-forwarded-host': ['admin.internal'],
  });
  // a trusted proxy that sent none: ours
  const bare = asObject(upstreamRequestHeaders(['Host', 'web'], { clientIp: '10.0.0.2', proto: 'https', trusted: true }));
  assert.deepEqual(bare, { host: ['web'], 'x-forwarded-for': ['10.0.0.2'], 'x-forwarded-proto': ['https'], 'x-forwarded-host': ['web'] });
});

test('--trust-forwarded / BALANCER_TRUST_FORWARDED: validated CIDR list, default none', () => {
  const parse = (argv: string[], env: Record<string, string> = {}) => parseBalancerArgs(argv, env, { cores: 1 });
  const def = parse([]);
  assert.equal(def.kind, 'config');
  assert.deepEqual(def.kind === 'config' && def.trustForwarded, []);
  const flag = parse(['--trust-forwarded', '10.0.0.0/8,::1']);
  assert.deepEqual(flag.kind === 'config' && flag.trustForwarded, ['10.0.0.0/8', '::1']);
  const env = parse([], { BALANCER_TRUST_FORWARDED: '192.168.0.0/16 fd00::/8' });
  assert.deepEqual(env.kind === 'config' && env.trustForwarded, ['192.168.0.0/16', 'fd00::/8']);
  const bad = parse(['--trust-forwarded', '10.0.0.0/8,10.0.0.0/40']);
  assert.ok(bad instanceof ConfigError);
  assert.match(bad.message, /--trust-forwarded: "10\.0\.0\.0\/40"/);
});
