// Pure ACME rules: which names want a certificate, when one is due, the retry pause, and what the
// KV lock does about the key it finds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acmeNames, renewalDue, retryDelayMs } from '../../balancer/src/tls/acme-names.js';
import { lockDecision } from '../../balancer/src/tls/kv-lock.js';
import { httpsLocation, httpsPolicyFromTags } from '../../balancer/src/tls/https-policy.js';
import type { CatalogInstance, CatalogSnapshot } from '../../balancer/src/routing/types.js';

const inst = (service: string, tags: string[]): CatalogInstance => ({
  serviceId: `${service}-1`, service, node: 'n', address: '127.0.0.1', port: 80, tags, meta: {}, status: 'passing',
} as CatalogInstance);

test('ACME names: urlprefix hosts and host= tags of tls=acme services only; wildcards and IPs are problems', () => {
  const snap = { services: {
    web: [inst('web', ['tls=acme', 'urlprefix-Shop.Example.com/', 'urlprefix-/api', 'host=www.example.com']),
      inst('web', ['urlprefix-shop.example.com/cart', 'urlprefix-api.example.com:443/x'])],
    plain: [inst('plain', ['urlprefix-plain.example.com/'])],
    odd: [inst('odd', ['tls=acme', 'host=*.example.com', 'urlprefix-10.0.0.1/', 'host=localhost'])],
  } } as unknown as CatalogSnapshot;
  const { names, problems } = acmeNames(snap);
  assert.deepEqual(names, ['api.example.com', 'shop.example.com', 'www.example.com']);
  assert.equal(problems.length, 3);
  assert.deepEqual(acmeNames(undefined), { names: [], problems: [] });
});

test('ACME names over frozen instance lists shared between snapshots: the same answer, a replaced list read again', () => {
  const web = Object.freeze([Object.freeze(inst('web', ['tls=acme', 'host=a.example.com']))]);
  const api = Object.freeze([Object.freeze(inst('api', ['tls=acme', 'urlprefix-b.example.com/']))]);
  const first = acmeNames({ services: { web, api } });
  assert.deepEqual(first.names, ['a.example.com', 'b.example.com']);
  // api's list replaced, web's shared: web's names come back unchanged, api's new ones are read
  const api2 = Object.freeze([Object.freeze(inst('api', ['tls=acme', 'urlprefix-c.example.com/', 'host=*.example.com']))]);
  const second = acmeNames({ services: { web, api: api2 } });
  assert.deepEqual(second.names, ['a.example.com', 'c.example.com']);
  assert.equal(second.problems.length, 1);
  // one list under another service name: its problems name that service
  assert.match(acmeNames({ services: { other: api2 } }).problems[0], /^service other:/);
});

test('renewal is due when missing, at two thirds of the lifetime, or forced after the last issuance', () => {
  const day = 86_400_000;
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const cert = { notBefore: new Date(t0).toISOString(), notAfter: new Date(t0 + 90 * day).toISOString() };
  const table: [string, ReturnType<typeof renewalDue>, Parameters<typeof renewalDue>][] = [
    ['missing', 'missing', [undefined, undefined, t0]],
    ['fresh', undefined, [cert, undefined, t0 + 59 * day]],
    ['two thirds', 'renewal', [cert, undefined, t0 + 60 * day]],
    ['forced after issuance', 'forced', [cert, { issuedAt: t0, forceRenewAt: t0 + day }, t0 + 2 * day]],
    ['forced before issuance is done', undefined, [cert, { issuedAt: t0 + 2 * day, forceRenewAt: t0 + day }, t0 + 3 * day]],
  ];
  for (const [what, want, args] of table) assert.equal(renewalDue(...args), want, what);
  assert.deepEqual([1, 2, 3, 30].map((n) => retryDelayMs(60_000, n)), [60_000, 120_000, 240_000, 3_600_000]);
});

test('KV lock decision: create when absent, take when ours, expired or unreadable, busy otherwise', () => {
  const now = 1_000_000;
  assert.deepEqual(lockDecision(undefined, 'me', now), { action: 'create' });
  assert.deepEqual(lockDecision({ record: { holder: 'me', expiresAt: now + 10 }, modifyIndex: 7 }, 'me', now), { action: 'take', cas: 7 });
  assert.deepEqual(lockDecision({ record: { holder: 'other', expiresAt: now }, modifyIndex: 8 }, 'me', now), { action: 'take', cas: 8 });
  assert.deepEqual(lockDecision({ record: undefined, modifyIndex: 9 }, 'me', now), { action: 'take', cas: 9 });
  assert.deepEqual(lockDecision({ record: { holder: 'other', expiresAt: now + 1 }, modifyIndex: 10 }, 'me', now), { action: 'busy', holder: 'other', expiresAt: now + 1 });
});

test('redirect-https and hsts= tags: policy per service, bad values are warnings', () => {
  const warnings: string[] = [];
  assert.deepEqual(httpsPolicyFromTags('s', [inst('s', ['redirect-https']), inst('s', ['hsts=600'])], warnings), { redirect: true, hstsHeader: 'max-age=600' });
  assert.equal(httpsPolicyFromTags('s', [inst('s', ['lb=wrr'])], warnings), undefined);
  assert.deepEqual(warnings, []);
  assert.deepEqual(httpsPolicyFromTags('s', [inst('s', ['hsts=soon', 'hsts=-1', 'hsts=1e9'])], warnings), undefined);
  assert.equal(warnings.length, 3);
  assert.equal(httpsLocation('a.example', '/x?y=1', 443), 'https://a.example/x?y=1');
  assert.equal(httpsLocation('a.example', '/x', 8443), 'https://a.example:8443/x');
  assert.equal(httpsLocation('::1', '/', 8443), 'https://[::1]:8443/');
});
