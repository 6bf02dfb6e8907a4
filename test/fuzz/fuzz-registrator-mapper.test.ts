// Fuzz: random SERVICE_* environment and labels (and odd ports and networks) into the registrator's
// pure mapper. Invariants: nothing throws; every warning names the container and the key; every record
// has a name, an ID and an integer port 1-65535.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapContainer, type MappingOptions } from '../../registrator/src/mapping/service-mapper.js';
import type { ContainerView } from '../../registrator/src/mapping/container-view.js';
import { chance, fuzz, holds, hostileString, int, pick, type Rng } from '../support/fuzz.js';

const KEYS = ['NAME', 'ID', 'TAGS', 'IGNORE', 'WEIGHT', 'CHECK_HTTP', 'CHECK_TCP', 'CHECK_INTERVAL', 'CHECK_TIMEOUT', 'CHECK_SCRIPT', 'CHECK_TTL',
  'CHECK_INITIAL_STATUS', 'CHECK_DEREGISTER_AFTER', 'CHECK_HTTPS', 'CHECK_METHOD', 'CHECK_HEADER', 'ZONE', 'VERSION', hostileString];

function key(rng: Rng): string {
  const k = pick(rng, KEYS);
  const base = typeof k === 'function' ? k(rng, 1).toUpperCase() : k;
  return chance(rng, 0.3) ? `SERVICE_${pick(rng, ['80', '443', '8080', '99999', 'x'])}_${base}` : `SERVICE_${base}`;
}

function container(rng: Rng): ContainerView {
  const env: string[] = [];
  const labels: Record<string, string> = {};
  for (let i = int(rng, 0, 8); i > 0; i--) {
    const value = chance(rng, 0.5) ? pick(rng, ['web', 'true', 'false', '10s', '/health', 'a,b', '2', '0', '']) : hostileString(rng, 4);
    if (chance(rng, 0.5)) env.push(`${key(rng)}=${value}`);
    else labels[chance(rng, 0.8) ? key(rng) : pick(rng, ['registrator.ip', 'registrator.network', hostileString(rng, 2)])] = value;
  }
  if (chance(rng, 0.1)) env.push(hostileString(rng, 3));
  const ports = Array.from({ length: int(rng, 0, 3) }, () => (chance(rng, 0.85) ? `${pick(rng, [80, 443, 8080, 0, 65535])}/${pick(rng, ['tcp', 'udp'])}` : hostileString(rng, 2)));
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) if (chance(rng, 0.7)) bindings[p] = [{ HostIp: pick(rng, ['0.0.0.0', '::', '127.0.0.1', hostileString(rng, 2)]), HostPort: chance(rng, 0.8) ? String(int(rng, 1, 65535)) : hostileString(rng, 1) }];
  return {
    id: 'c0ffee0000000000000000000000000000000000000000000000000000000001',
    name: chance(rng, 0.9) ? 'web-1' : hostileString(rng, 2),
    image: chance(rng, 0.9) ? 'registry:5000/team/web:1.2' : hostileString(rng, 3),
    env, labels,
    exposedPorts: ports,
    portBindings: bindings,
    networks: { bridge: { IPAddress: chance(rng, 0.9) ? '172.17.0.5' : hostileString(rng, 2) } },
    networkMode: pick(rng, ['default', 'bridge', 'host', 'none', 'container:abc']),
    hostname: 'abc123',
  };
}

const options: MappingOptions = { hostname: 'host1', hostIp: '10.0.0.1', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'host1' };

test('fuzz: random SERVICE_* env and labels into the registrator mapper', async () => {
  const r = await fuzz('registrator-mapper', 3000, (rng) => {
    const c = container(rng);
    const opts = { ...options, internal: chance(rng, 0.3), explicit: chance(rng, 0.2) };
    const what = () => JSON.stringify({ env: c.env, labels: c.labels, ports: c.exposedPorts, bindings: c.portBindings }).slice(0, 800);
    const result = mapContainer(c, opts);
    for (const w of result.warnings) {
      holds(w.containerId === c.id, what);
      holds(typeof w.key === 'string', what);
      holds(w.reason.length > 0, what);
    }
    for (const s of result.services) {
      const rec = s as unknown as { name?: unknown; id?: unknown; port?: unknown };
      holds(typeof rec.name === 'string' && rec.name.length > 0, () => `record without a name: ${what()}`);
      holds(typeof rec.id === 'string' && rec.id.length > 0, () => `record without an id: ${what()}`);
      holds(Number.isInteger(rec.port) && (rec.port as number) >= 1 && (rec.port as number) <= 65535, () => `port ${String(rec.port)}: ${what()}`);
    }
  });
  assert.ok(r.cases > 50, `only ${r.cases} cases ran`);
});
