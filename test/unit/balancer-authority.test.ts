// parseAuthority: what a Host header, an absolute-form authority or an HTTP/2 :authority may be
// (RFC 9112 section 3.2, RFC 3986 sections 3.2.2-3.2.3, RFC 9110 section 4.2.4), and what the proxy
// routes on and forwards. Each stricter-than-RFC choice is a row here (see balancer/src/proxy/authority.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAuthority, splitAbsoluteForm } from '../../balancer/src/proxy/authority.js';

/** [input, expected: [host, port, hostHeader] or null (400 bad_host), why] */
const CASES: readonly (readonly [string, readonly [string, number | undefined, string] | null, string])[] = [
  // the findings of issue 18
  ['smug:80@evil', null, 'userinfo: WHATWG URL reads the host as evil'],
  ['smug:evil', null, 'port is digits only'],
  ['smug:80, evil', null, 'a list is not one authority'],
  ['smug,evil', null, 'sub-delim "," refused (list syntax)'],
  ['user@smug', null, 'userinfo without a port'],
  // plain names
  ['example.com', ['example.com', undefined, 'example.com'], 'reg-name'],
  ['Example.COM', ['example.com', undefined, 'example.com'], 'lower-cased'],
  ['example.com:8080', ['example.com', 8080, 'example.com:8080'], 'with a port'],
  ['my_service.consul', ['my_service.consul', undefined, 'my_service.consul'], '"_" is unreserved (Docker names use it)'],
  ['a-b~c', ['a-b~c', undefined, 'a-b~c'], '"-" and "~" are unreserved'],
  ['localhost', ['localhost', undefined, 'localhost'], 'one label'],
  ['127.0.0.1:80', ['127.0.0.1', 80, '127.0.0.1:80'], 'IPv4address'],
  ['999.1.1.1', ['999.1.1.1', undefined, '999.1.1.1'], 'not an IPv4 address, still a valid reg-name'],
  // trailing dot and empty labels
  ['example.com.', ['example.com', undefined, 'example.com'], 'absolute DNS name: one trailing dot dropped'],
  ['example.com.:81', ['example.com', 81, 'example.com:81'], 'trailing dot before a port'],
  ['example.com..', null, 'two trailing dots: an empty label'],
  ['.example.com', null, 'leading dot: an empty label'],
  ['a..b', null, 'empty label'],
  ['.', null, 'only a dot'],
  // ports
  ['host:', ['host', undefined, 'host'], 'empty port: the default (RFC 3986 section 6.2.3), dropped'],
  ['host:080', ['host', 80, 'host:80'], 'leading zeros dropped'],
  ['host:65535', ['host', 65535, 'host:65535'], 'highest port'],
  ['host:65536', null, 'above 65535'],
  ['host:0', null, 'port 0: nothing listens there'],
  ['host:123456', null, 'six digits'],
  ['host:+80', null, 'sign'],
  ['host:80:80', null, 'two ports'],
  ['host: 80', null, 'space'],
  [':80', null, 'no host'],
  // percent-encoding and other characters
  ['ex%61mple.com', null, 'pct-encoded refused: one host, one spelling'],
  ['a;b', null, 'sub-delim ";"'],
  ["a'b", null, 'sub-delim "\'"'],
  ['a!b', null, 'sub-delim "!"'],
  ['a b', null, 'space'],
  ['a\tb', null, 'HTAB'],
  ['a/b', null, 'path delimiter'],
  ['a?b', null, 'query delimiter'],
  ['a#b', null, 'fragment delimiter'],
  ['a\\b', null, 'backslash'],
  ['ex\u00e4mple.com', null, 'non-ASCII (IDNs arrive as punycode)'],
  ['xn--exmple-cua.com', ['xn--exmple-cua.com', undefined, 'xn--exmple-cua.com'], 'punycode'],
  [`${'a'.repeat(253)}`, [`${'a'.repeat(253)}`, undefined, `${'a'.repeat(253)}`], '253 characters: the longest DNS name'],
  [`${'a'.repeat(254)}`, null, 'longer than a DNS name'],
  // IP-literals
  ['[::1]', ['[::1]', undefined, '[::1]'], 'IPv6 literal keeps its brackets'],
  ['[::1]:8080', ['[::1]', 8080, '[::1]:8080'], 'IPv6 with a port'],
  ['[2001:DB8::1]', ['[2001:db8::1]', undefined, '[2001:db8::1]'], 'IPv6 lower-cased'],
  ['[::ffff:127.0.0.1]', ['[::ffff:127.0.0.1]', undefined, '[::ffff:127.0.0.1]'], 'IPv4-mapped IPv6'],
  ['[::1]:', ['[::1]', undefined, '[::1]'], 'IPv6 with an empty port'],
  ['[fe80::1%25eth0]', null, 'zone identifier (RFC 6874) refused: local to the sender'],
  ['[fe80::1%eth0]', null, 'raw zone identifier'],
  ['[v1.fe]', null, 'IPvFuture refused'],
  ['[::1', null, 'no closing bracket'],
  ['[::1]x', null, 'junk after the literal'],
  ['[::1]80', null, 'port without a colon'],
  ['[example.com]', null, 'a name is not an IP-literal'],
  ['[]', null, 'empty literal'],
  ['::1', null, 'IPv6 without brackets'],
  ['[::1]@evil', null, 'userinfo after a literal'],
  // empty
  ['', ['', undefined, ''], 'empty Host: a target without authority (RFC 9110 section 7.2)'],
];

test('parseAuthority scenarios', () => {
  const wrong: string[] = [];
  for (const [input, expected, why] of CASES) {
    const got = parseAuthority(input);
    const shown = got === null ? null : [got.host, got.port, got.hostHeader];
    if (JSON.stringify(shown) !== JSON.stringify(expected)) wrong.push(`${JSON.stringify(input)} (${why}): got ${JSON.stringify(shown)}, want ${JSON.stringify(expected)}`);
  }
  assert.deepEqual(wrong, []);
});

test('splitAbsoluteForm: the authority by the same rules, the rest in origin-form', () => {
  const cases: readonly (readonly [string, readonly [string, string] | null])[] = [
    ['http://Example.com/a?b', ['example.com', '/a?b']],
    ['HTTP://example.com:8080/a', ['example.com:8080', '/a']],
    ['https://example.com', ['example.com', '/']],
    ['http://example.com?q=1', ['example.com', '/?q=1']],
    ['http://[::1]:81/x', ['[::1]:81', '/x']],
    ['http://smug:80@evil/', null],
    ['http://smug@evil/', null],
    ['http://smug:evil/', null],
    ['http:///path', null],
    ['http://:80/path', null],
    ['ftp://example.com/', null],
    ['/origin/form', null],
  ];
  for (const [target, expected] of cases) {
    const got = splitAbsoluteForm(target);
    assert.deepEqual(got === null ? null : [got.authority.hostHeader, got.url], expected, target);
  }
});
