// Path normalization before routing: RFC 3986 dot-segment removal, unreserved escapes decoded,
// ambiguous paths refused (a prefix route must see what the upstream will see).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath, PathRejection } from '../../balancer/src/routing/normalize-path.js';
import { compileRouter } from '../../balancer/src/routing/router.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

test('normalizePath scenarios', () => {
  const cases: [input: string, expected: string][] = [
    // untouched
    ['/', '/'],
    ['/index.html', '/index.html'],
    ['/a/b/c', '/a/b/c'],
    ['/a//b', '/a//b'], // RFC 3986 does not merge slashes
    ['/.well-known/acme', '/.well-known/acme'],
    ['/a/.hidden/..x', '/a/.hidden/..x'],
    ['/a...', '/a...'],
    ['*', '*'],
    // RFC 3986 5.4 examples (paths only)
    ['/a/b/c/./../../g', '/a/g'],
    ['/a/b/c/.', '/a/b/c/'],
    ['/a/b/c/./', '/a/b/c/'],
    ['/a/b/c/..', '/a/b/'],
    ['/a/b/c/../', '/a/b/'],
    ['/a/b/c/../..', '/a/'],
    ['/a/b/c/../../../g', '/g'],
    ['/a/b/c/../../../../g', '/g'], // never above the root
    ['/..', '/'],
    ['/.', '/'],
    ['/./a', '/a'],
    ['/public/../admin', '/admin'],
    ['/public/./admin', '/public/admin'],
    ['/public//../admin', '/public/admin'],
    // escapes: unreserved decoded, others upper-cased and kept
    ['/%7Euser', '/~user'],
    ['/%41%62c', '/Abc'],
    ['/a%2fb', '/a%2Fb'],
    ['/a%2Fb', '/a%2Fb'],
    ['/a%20b', '/a%20b'],
    ['/a%3fb', '/a%3Fb'],
    ['/%e2%82%ac', '/%E2%82%AC'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/public/%2E./admin', '/admin'],
    ['/public/.%2e', '/'],
    ['/public/%2e/x', '/public/x'],
    ['/file%2ehtml', '/file.html'],
    // path parameters that are not dot segments are data
    ['/a;v=1/b', '/a;v=1/b'],
    ['/a/b;x', '/a/b;x'],
    ['/group%2Fproject/file', '/group%2Fproject/file'],
  ];
  for (const [input, expected] of cases) assert.equal(normalizePath(input), expected, input);
});

test('normalizePath refuses ambiguous and malformed paths with a reason', () => {
  const cases: [input: string, reason: string][] = [
    ['/public/..%2fadmin', 'ambiguous_dot_segment'],
    ['/public/..%2Fadmin', 'ambiguous_dot_segment'],
    ['/public%2f..%2fadmin', 'ambiguous_dot_segment'],
    ['/public/%2e%2e%2fadmin', 'ambiguous_dot_segment'],
    ['/public/..\\admin', 'ambiguous_dot_segment'],
    ['/public\\..\\admin', 'ambiguous_dot_segment'],
    ['/public/..%5cadmin', 'ambiguous_dot_segment'],
    ['/public/..;/admin', 'ambiguous_dot_segment'],
    ['/public/.;x/admin', 'ambiguous_dot_segment'],
    ['/public/%2e%2e;/admin', 'ambiguous_dot_segment'],
    ['/a%2f.', 'ambiguous_dot_segment'],
    ['/a%', 'bad_percent_encoding'],
    ['/a%2', 'bad_percent_encoding'],
    ['/a%zz', 'bad_percent_encoding'],
    ['/a%%41', 'bad_percent_encoding'],
    ['/a%00b', 'encoded_nul'],
    ['', 'bad_target'],
    ['admin', 'bad_target'],
    ['http://x/', 'bad_target'],
  ];
  for (const [input, reason] of cases) {
    const r = normalizePath(input);
    assert.ok(r instanceof PathRejection, `${input} -> ${String(r)}`);
    assert.equal(r.reason, reason, input);
  }
});

test('normalizePath is idempotent on what it accepts', () => {
  for (const p of ['/a/b/../c', '/%2e%2e/x', '/a%2fb/./c', '/x/%7e/..', '/a;b/c/.']) {
    const once = normalizePath(p);
    assert.equal(typeof once, 'string', p);
    assert.equal(normalizePath(once as string), once, p);
  }
});

test('a dot-segment path cannot pass a prefix route once normalized', () => {
  const up = (name: string) => adminUpstream(name, [{ host: '127.0.0.1', port: 1 }], DEFAULT_TABLE_DEFAULTS);
  const router = compileRouter(tableFromUpstreams({ pub: up('pub'), admin: up('admin') }, [
    { host: 'site', pathPrefix: '/public', upstream: 'pub' },
    { host: 'site', pathPrefix: '/admin', upstream: 'admin' },
  ]));
  for (const raw of ['/public/../admin', '/public/%2e%2e/admin', '/public/./../admin/x']) {
    const path = normalizePath(raw);
    assert.equal(typeof path, 'string');
    assert.equal(router.match('site', path as string)?.upstream.name, 'admin', raw);
  }
});
