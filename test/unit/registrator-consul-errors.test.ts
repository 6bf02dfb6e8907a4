// How the Consul backend classifies failures: the bridge treats ERR_REGISTRY_UNAVAILABLE as an outage
// (probe, then resync everything), so a request the client itself refuses as invalid must not be one,
// or the same record would be re-sent in an endless resync loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsulRegistry } from '../../registrator/src/registry/consul-backend.js';
import { RegistryError } from '../../registrator/src/registry/registry.js';
import type { ServiceRecord } from '../../registrator/src/mapping/types.js';

const record = (over: Partial<ServiceRecord> = {}): ServiceRecord => ({
  id: 'h:web:80', name: 'web', address: '127.0.0.1', port: 8080, tags: [], meta: {}, checks: [],
  containerId: 'c1', containerName: 'web', exposedPort: '80', protocol: 'tcp', ...over,
});

test('consul backend: a record the client refuses before sending is rejected, not an outage', async () => {
  // port 9 on loopback: nothing is sent, the client validates first
  const registry = new ConsulRegistry({ host: '127.0.0.1', port: 9, secure: false, instanceMarker: 'h', callTimeoutMs: 1000 });
  try {
    const invalid = [record({ name: '' }), record({ checks: [{ kind: 'http' }] })];
    for (const r of invalid) {
      await assert.rejects(registry.register(r, AbortSignal.timeout(2000)), (err: unknown) => {
        assert.ok(err instanceof RegistryError);
        assert.equal(err.code, 'ERR_REGISTRY_REJECTED', err.message);
        return true;
      });
    }
    // a refused connection stays an outage
    await assert.rejects(registry.register(record(), AbortSignal.timeout(2000)), (err: unknown) => err instanceof RegistryError && err.code === 'ERR_REGISTRY_UNAVAILABLE');
  } finally {
    registry.close();
  }
});
