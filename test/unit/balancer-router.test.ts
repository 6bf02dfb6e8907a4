// Router precedence: routes bound to the Host first (explicit host-specific, longest prefix first; then
// the implicit "Host equals an upstream name" route), then any-host routes (longest prefix first);
// hosts compared case-insensitively without port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRouter } from '../../balancer/src/routing/router.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

const up = (name: string) => adminUpstream(name, [{ host: '127.0.0.1', port: 1 }], DEFAULT_TABLE_DEFAULTS);
const table = tableFromUpstreams(
  { web: up('web'), api: up('api'), apiv2: up('apiv2'), shop: up('shop'), Mixed: up('Mixed'), catchall: up('catchall') },
  [
    { host: '', pathPrefix: '/api', upstream: 'api' },
    { host: '', pathPrefix: '/api/v2', upstream: 'apiv2' },
    { host: 'shop.example.com', pathPrefix: '/', upstream: 'shop' },
    { host: 'shop.example.com', pathPrefix: '/api/v2/cart', upstream: 'web' },
    { host: 'gone.example.com', pathPrefix: '/', upstream: 'missing' },
  ],
);
const router = compileRouter(table);

test('router precedence scenarios', () => {
  const cases: { host: string | undefined; path: string; upstream: string | undefined; explicit?: boolean }[] = [
    { host: 'web', path: '/', upstream: 'web', explicit: false },
    { host: 'WEB:8080', path: '/x', upstream: 'web', explicit: false },
    { host: 'mixed', path: '/', upstream: 'Mixed', explicit: false },
    { host: 'web', path: '/api/users', upstream: 'web', explicit: false }, // a Host route beats any-host routes
    { host: 'web', path: '/api/v2/users', upstream: 'web', explicit: false },
    { host: 'other.example', path: '/api/v2/users', upstream: 'apiv2', explicit: true }, // longest prefix
    { host: 'other.example', path: '/api/users', upstream: 'api', explicit: true },
    { host: 'Shop.Example.com:443', path: '/api/v2/cart/1', upstream: 'web', explicit: true },
    { host: 'shop.example.com', path: '/api/v2/x', upstream: 'shop', explicit: true }, // host-specific beats any-host
    { host: undefined, path: '/api/v2', upstream: 'apiv2', explicit: true },
    { host: undefined, path: '/', upstream: undefined },
    { host: 'unknown.example.com', path: '/', upstream: undefined },
    { host: 'gone.example.com', path: '/', upstream: undefined }, // route to a missing upstream is skipped
    { host: '[::1]:8080', path: '/', upstream: undefined },
  ];
  for (const c of cases) {
    const m = router.match(c.host, c.path);
    assert.equal(m?.upstream.name, c.upstream, JSON.stringify(c));
    if (c.explicit !== undefined) assert.equal(m?.route !== undefined, c.explicit, JSON.stringify(c));
  }
});

test('an any-host urlprefix-/ route is a fallback: it never captures a Host that names a service or has routes', () => {
  const r = compileRouter(tableFromUpstreams(
    { web: up('web'), catchall: up('catchall'), shop: up('shop') },
    [
      { host: '', pathPrefix: '/', upstream: 'catchall' },
      { host: 'shop.example.com', pathPrefix: '/cart', upstream: 'shop' },
    ],
  ));
  const cases: [host: string | undefined, path: string, upstream: string][] = [
    ['web', '/', 'web'],
    ['WEB:80', '/anything', 'web'],
    ['shop.example.com', '/cart/1', 'shop'],
    ['shop.example.com', '/other', 'catchall'], // no route of that host matches the path
    ['unknown.example', '/', 'catchall'],
    [undefined, '/', 'catchall'],
  ];
  for (const [host, path, upstream] of cases) assert.equal(r.match(host, path)?.upstream.name, upstream, `${host} ${path}`);
});
