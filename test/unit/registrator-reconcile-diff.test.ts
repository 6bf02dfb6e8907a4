// reconcile(): what to register and deregister, by content, with the removal policy.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServiceRecord } from '../../registrator/src/mapping/types.js';
import { fingerprintOf, reconcile, type RegisteredService } from '../../registrator/src/reconcile.js';

function record(over: Partial<ServiceRecord> = {}): ServiceRecord {
  return {
    id: 'h:web:80', name: 'web', address: '10.0.0.1', port: 8080, tags: ['a'], meta: { k: 'v' }, checks: [],
    containerId: 'c1', containerName: 'web', exposedPort: '80', protocol: 'tcp', ...over,
  };
}
const registeredAs = (r: ServiceRecord, over: Partial<RegisteredService> = {}): RegisteredService =>
  ({ id: r.id, name: r.name, containerId: r.containerId, fingerprint: fingerprintOf(r), ...over });

test('fingerprint is stable under key order and changes with content', () => {
  const a = record({ meta: { x: '1', y: '2' } });
  const b = record({ meta: { y: '2', x: '1' } });
  assert.equal(fingerprintOf(a), fingerprintOf(b));
  for (const changed of [record({ tags: ['b'] }), record({ port: 1 }), record({ address: 'x' }), record({ meta: {} }),
    record({ checks: [{ kind: 'tcp', target: 'x:1', interval: '10s' }] })]) {
    assert.notEqual(fingerprintOf(changed), fingerprintOf(a));
  }
});

test('a mirrored health check status does not change the fingerprint (it is pushed, not registered)', () => {
  const healthy = record({ checks: [{ kind: 'ttl', ttl: '60s', initialStatus: 'passing', mirrorsDockerHealth: true }] });
  const sick = record({ checks: [{ kind: 'ttl', ttl: '60s', initialStatus: 'critical', mirrorsDockerHealth: true }] });
  assert.equal(fingerprintOf(healthy), fingerprintOf(sick));
});

const cases: Array<{ name: string; desired: ServiceRecord[]; registered: RegisteredService[]; mayRemove?: (s: RegisteredService) => boolean; register: string[]; deregister: string[] }> = [
  { name: 'nothing registered: register all', desired: [record(), record({ id: 'h:web:81' })], registered: [], register: ['h:web:80', 'h:web:81'], deregister: [] },
  { name: 'identical: no-op', desired: [record()], registered: [registeredAs(record())], register: [], deregister: [] },
  { name: 'changed tags: re-register', desired: [record({ tags: ['new'] })], registered: [registeredAs(record())], register: ['h:web:80'], deregister: [] },
  { name: 'unknown fingerprint (older version): re-register', desired: [record()], registered: [registeredAs(record(), { fingerprint: '' })], register: ['h:web:80'], deregister: [] },
  { name: 'no longer desired: deregister', desired: [], registered: [registeredAs(record())], register: [], deregister: ['h:web:80'] },
  { name: 'not desired but removal not allowed: kept', desired: [], registered: [registeredAs(record())], mayRemove: () => false, register: [], deregister: [] },
  { name: 'duplicate desired IDs: first wins', desired: [record(), record({ port: 1 })], registered: [], register: ['h:web:80'], deregister: [] },
];

for (const c of cases) {
  test(`reconcile: ${c.name}`, () => {
    const plan = reconcile(c.desired, c.registered, c.mayRemove);
    assert.deepEqual(plan.register.map((r) => r.id), c.register);
    assert.deepEqual(plan.deregister.map((s) => s.id), c.deregister);
  });
}
