// The examples of gliderlabs/registrator's docs (docs/user/services.md), as a table: each docker run
// line (its -p, -e and -l flags; the env values as the shell passes them) maps to the Service objects
// the docs show. Among them the escaped comma: -e "SERVICE_TAGS=/(;\\,:-_)/" is one tag "/(;,:-_)/".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapContainer, type MappingOptions } from '../../registrator/src/mapping/service-mapper.js';
import type { ContainerView } from '../../registrator/src/mapping/container-view.js';

const options: MappingOptions = {
  hostname: 'hostname', hostIp: '192.168.1.102', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'hostname',
};
const OURS = new Set(['registrator-instance', 'container-id']);

interface DocService { ID: string; Name: string; Port: number; IP: string; Tags: string[]; Attrs: Record<string, string> }
interface Example { what: string; name: string; image: string; publish: Record<string, string>; env?: string[]; labels?: Record<string, string>; want: DocService[] }

const IP = '192.168.1.102';
const examples: Example[] = [
  { what: 'single service with defaults', name: 'redis.0', image: 'progrium/redis', publish: { '6379': '10000' },
    want: [{ ID: 'hostname:redis.0:6379', Name: 'redis', Port: 10000, IP, Tags: [], Attrs: {} }] },
  { what: 'single service with metadata', name: 'redis.0', image: 'progrium/redis', publish: { '6379': '10000' },
    env: ['SERVICE_NAME=db', 'SERVICE_TAGS=master,backups', 'SERVICE_REGION=us2'],
    want: [{ ID: 'hostname:redis.0:6379', Name: 'db', Port: 10000, IP, Tags: ['master', 'backups'], Attrs: { region: 'us2' } }] },
  { what: 'the comma escaped with a backslash', name: 'redis.0', image: 'progrium/redis', publish: { '6379': '10000' },
    env: ['SERVICE_NAME=db', 'SERVICE_TAGS=/(;\\,:-_)/', 'SERVICE_REGION=us2'],
    want: [{ ID: 'hostname:redis.0:6379', Name: 'db', Port: 10000, IP, Tags: ['/(;,:-_)/'], Attrs: { region: 'us2' } }] },
  { what: 'multiple services with defaults', name: 'nginx.0', image: 'progrium/nginx', publish: { '443': '4443', '80': '8000' },
    want: [
      { ID: 'hostname:nginx.0:80', Name: 'nginx-80', Port: 8000, IP, Tags: [], Attrs: {} },
      { ID: 'hostname:nginx.0:443', Name: 'nginx-443', Port: 4443, IP, Tags: [], Attrs: {} },
    ] },
  { what: 'multiple services with metadata', name: 'nginx.0', image: 'progrium/nginx', publish: { '443': '4443', '80': '8000' },
    env: ['SERVICE_443_NAME=https', 'SERVICE_443_ID=https.12345', 'SERVICE_443_SNI=enabled', 'SERVICE_80_NAME=http', 'SERVICE_TAGS=www'],
    want: [
      { ID: 'hostname:nginx.0:80', Name: 'http', Port: 8000, IP, Tags: ['www'], Attrs: {} },
      { ID: 'https.12345', Name: 'https', Port: 4443, IP, Tags: ['www'], Attrs: { sni: 'enabled' } },
    ] },
  { what: 'labels define metadata', name: 'redis.0', image: 'dockerfile/redis', publish: { '6379': '10000' },
    labels: { SERVICE_NAME: 'db', SERVICE_TAGS: 'master,backups', SERVICE_REGION: 'us2' },
    want: [{ ID: 'hostname:redis.0:6379', Name: 'db', Port: 10000, IP, Tags: ['master', 'backups'], Attrs: { region: 'us2' } }] },
];

function containerOf(e: Example): ContainerView {
  const ports = Object.keys(e.publish).map((p) => `${p}/tcp`);
  return {
    id: 'f00d'.repeat(16), name: e.name, image: e.image, env: e.env ?? [], labels: e.labels ?? {}, exposedPorts: ports,
    portBindings: Object.fromEntries(Object.entries(e.publish).map(([p, host]) => [`${p}/tcp`, [{ HostIp: '0.0.0.0', HostPort: host }]])),
    networks: { bridge: { IPAddress: '172.17.0.5' } }, networkMode: 'default', hostname: 'abc123',
  };
}

for (const e of examples) {
  test(`gliderlabs docs: ${e.what}`, () => {
    const r = mapContainer(containerOf(e), options);
    assert.deepEqual(r.warnings, [], e.what);
    const got: DocService[] = r.services.map((s) => ({
      ID: s.id, Name: s.name, Port: s.port, IP: s.address, Tags: [...s.tags],
      Attrs: Object.fromEntries(Object.entries(s.meta).filter(([k]) => !OURS.has(k))),
    }));
    const byId = (a: DocService, b: DocService) => (a.ID < b.ID ? -1 : 1);
    assert.deepEqual(got.sort(byId), [...e.want].sort(byId));
  });
}
