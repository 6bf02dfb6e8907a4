// CheckSpec -> Consul check options: one scenario per check kind, explicit check IDs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CheckSpec, ServiceRecord } from '../../registrator/src/mapping/types.js';
import { consulCheckId, consulCheckOptions } from '../../registrator/src/registry/consul-checks.js';

const base: ServiceRecord = {
  id: 'h:web:80', name: 'web', address: '10.0.0.1', port: 8080, tags: [], meta: {}, checks: [],
  containerId: 'cid', containerName: 'web', exposedPort: '80', protocol: 'tcp',
};

test('check IDs follow Consul naming: service:<id> for one check, service:<id>:<n> for several', () => {
  assert.equal(consulCheckId('s', 0, 1), 'service:s');
  assert.equal(consulCheckId('s', 1, 3), 'service:s:2');
});

const cases: Array<{ check: CheckSpec; expect: Record<string, unknown> }> = [
  { check: { kind: 'http', target: 'http://10.0.0.1:8080/h', interval: '5s', timeout: '2s', method: 'HEAD' },
    expect: { http: 'http://10.0.0.1:8080/h', interval: '5s', timeout: '2s', method: 'HEAD' } },
  { check: { kind: 'https', target: 'https://10.0.0.1:8080/', tlsSkipVerify: true }, expect: { http: 'https://10.0.0.1:8080/', tlsskipverify: true, interval: '10s' } },
  { check: { kind: 'tcp', target: '10.0.0.1:8080', interval: '3s', deregisterAfter: '1m' }, expect: { tcp: '10.0.0.1:8080', interval: '3s', deregistercriticalserviceafter: '1m' } },
  { check: { kind: 'grpc', target: '10.0.0.1:8080/svc', interval: '3s' }, expect: { grpc: '10.0.0.1:8080/svc', interval: '3s' } },
  { check: { kind: 'ttl', ttl: '30s', initialStatus: 'passing' }, expect: { ttl: '30s', status: 'passing' } },
  { check: { kind: 'script', target: 'curl -f x', interval: '9s' }, expect: { args: ['/bin/sh', '-c', 'curl -f x'], interval: '9s' } },
  { check: { kind: 'docker', target: 'test -f /ok', interval: '9s' }, expect: { args: ['/bin/sh', '-c', 'test -f /ok'], dockercontainerid: 'cid', shell: '/bin/sh' } },
];

for (const c of cases) {
  test(`${c.check.kind} check options`, () => {
    const rec = { ...base, checks: [c.check] };
    const opts = consulCheckOptions(rec, c.check, 0) as unknown as Record<string, unknown>;
    assert.equal(opts.checkid, 'service:h:web:80');
    for (const [k, v] of Object.entries(c.expect)) assert.deepEqual(opts[k], v, k);
    if (c.check.kind === 'ttl') assert.equal(opts.interval, undefined);
  });
}
