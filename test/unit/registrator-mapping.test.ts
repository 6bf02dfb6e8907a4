// Scenario tables for the pure container -> services mapping (names, IDs, tags, addresses, ignore,
// explicit, precedence, meta, health gating, warnings).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  containerViewFromInspect, defaultServiceName, mapContainer,
  type MappingOptions,
} from '../../registrator/src/mapping/service-mapper.js';
import type { ContainerView } from '../../registrator/src/mapping/container-view.js';
import type Dockerode from 'dockerode';

const ID = 'c0ffee0000000000000000000000000000000000000000000000000000000001';

function container(over: Partial<ContainerView> = {}): ContainerView {
  return {
    id: ID,
    name: 'web-1',
    image: 'registry:5000/team/web:1.2',
    env: [],
    labels: {},
    exposedPorts: ['80/tcp'],
    portBindings: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '32768' }] },
    networks: { bridge: { IPAddress: '172.17.0.5' } },
    networkMode: 'default',
    hostname: 'abc123',
    ...over,
  };
}

function options(over: Partial<MappingOptions> = {}): MappingOptions {
  return {
    hostname: 'host1', hostIp: '10.0.0.1', internal: false, explicit: false, forceTags: [],
    healthGate: 'off', instanceMarker: 'host1', ...over,
  };
}

const twoPorts: Partial<ContainerView> = {
  exposedPorts: ['80/tcp', '443/tcp'],
  portBindings: {
    '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }],
    '443/tcp': [{ HostIp: '0.0.0.0', HostPort: '8443' }],
  },
};

test('default service name strips registry, namespace, tag and digest', () => {
  const cases: Array<[string, string]> = [
    ['registry:5000/team/web:1.2', 'web'],
    ['nginx', 'nginx'],
    ['nginx:alpine', 'nginx'],
    ['library/redis:7', 'redis'],
    ['ghcr.io/org/sub/api@sha256:abcdef', 'api'],
    ['localhost:5000/app', 'app'],
    ['sha256:0123abcd', 'web-1'],
  ];
  for (const [image, name] of cases) assert.equal(defaultServiceName(image, 'web-1'), name, image);
});

test('names, IDs and suffixes', () => {
  const cases: Array<{ what: string; c: Partial<ContainerView>; o?: Partial<MappingOptions>; want: Array<[string, string]> }> = [
    { what: 'single port: image name, host:container:port id', c: {},
      want: [['web', 'host1:web-1:80']] },
    { what: 'two ports: -<port> suffix on default name', c: twoPorts,
      want: [['web-80', 'host1:web-1:80'], ['web-443', 'host1:web-1:443']] },
    { what: 'SERVICE_NAME with two ports still suffixed', c: { ...twoPorts, env: ['SERVICE_NAME=shop'] },
      want: [['shop-80', 'host1:web-1:80'], ['shop-443', 'host1:web-1:443']] },
    { what: 'port name is not suffixed', c: { ...twoPorts, env: ['SERVICE_NAME=shop', 'SERVICE_443_NAME=shop-tls'] },
      want: [['shop-80', 'host1:web-1:80'], ['shop-tls', 'host1:web-1:443']] },
    { what: 'SERVICE_ID overrides on a single port', c: { env: ['SERVICE_ID=my-id'] },
      want: [['web', 'my-id']] },
    { what: 'general SERVICE_ID gets a port suffix with several ports', c: { ...twoPorts, env: ['SERVICE_ID=my-id'] },
      want: [['web-80', 'my-id:80'], ['web-443', 'my-id:443']] },
    { what: 'port-specific SERVICE_<port>_ID is used as is', c: { ...twoPorts, env: ['SERVICE_443_ID=tls-id'] },
      want: [['web-80', 'host1:web-1:80'], ['web-443', 'tls-id']] },
    { what: '-hostname prefix', c: {}, o: { hostname: 'edge-7' }, want: [['web', 'edge-7:web-1:80']] },
    { what: 'exposed but unpublished port is not a service (and not counted for the suffix)',
      c: { exposedPorts: ['80/tcp', '9000/tcp'], portBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }], '9000/tcp': null } },
      want: [['web', 'host1:web-1:80']] },
  ];
  for (const k of cases) {
    const r = mapContainer(container(k.c), options(k.o));
    assert.deepEqual(r.services.map((s) => [s.name, s.id]), k.want, k.what);
  }
});

test('udp ports get an :udp id suffix and a udp tag', () => {
  const r = mapContainer(container({
    image: 'dns', exposedPorts: ['53/tcp', '53/udp'],
    portBindings: { '53/tcp': [{ HostIp: '', HostPort: '53' }], '53/udp': [{ HostIp: '', HostPort: '53' }] },
    env: ['SERVICE_TAGS=a'],
  }), options());
  assert.deepEqual(r.services.map((s) => [s.id, s.name, s.protocol, s.tags]), [
    ['host1:web-1:53', 'dns-53', 'tcp', ['a']],
    ['host1:web-1:53:udp', 'dns-53', 'udp', ['a', 'udp']],
  ]);
});

test('tags: escapes, forced tags, templates', () => {
  const cases: Array<{ what: string; env: string[]; force: string[]; want: string[] }> = [
    { what: 'plain list', env: ['SERVICE_TAGS=a,b , c'], force: [], want: ['a', 'b', 'c'] },
    { what: 'escaped comma', env: ['SERVICE_TAGS=x\\,y,z'], force: [], want: ['x,y', 'z'] },
    { what: 'empty items dropped', env: ['SERVICE_TAGS=,a,,b,'], force: [], want: ['a', 'b'] },
    { what: 'forced appended', env: ['SERVICE_TAGS=a'], force: ['prod', 'eu'], want: ['a', 'prod', 'eu'] },
    { what: 'forced only', env: [], force: ['prod'], want: ['prod'] },
    { what: 'template', env: [], force: ['on-{{.Hostname}}', '{{ .ContainerName }}'], want: ['on-host1', 'web-1'] },
    { what: 'duplicates removed', env: ['SERVICE_TAGS=prod'], force: ['prod'], want: ['prod'] },
  ];
  for (const k of cases) {
    const r = mapContainer(container({ env: k.env }), options({ forceTags: k.force }));
    assert.deepEqual(r.services[0].tags, k.want, k.what);
  }
  const unknown = mapContainer(container(), options({ forceTags: ['{{.Nope}}'] }));
  // an unknown placeholder is left as written (Consul takes any tag) and said once
  assert.deepEqual(unknown.services[0].tags, ['{{.Nope}}']);
  assert.deepEqual(unknown.warnings.map((w) => [w.key, w.reason]), [['-tags', 'unknown placeholder(s) Nope']]);
});

test('SERVICE_NAME is checked against what the balancer routes; tags are registered as given (Consul takes any): a bad name is a warning for that container only', () => {
  const bad = mapContainer(container({ env: ['SERVICE_NAME=my web', 'SERVICE_TAGS=ok,x'] }), options());
  assert.equal(bad.services.length, 0, 'a name with a space is no service');
  assert.match(bad.warnings.find((w) => w.key === 'SERVICE_NAME')?.reason ?? '', /letters, digits/);
  const long = mapContainer(container({ env: [`SERVICE_NAME=${'a'.repeat(64)}`] }), options());
  assert.equal(long.services.length, 0);
  // what reload-mode injection once needed refused at registration is now the renderers' job (render-template-injection)
  const tags = mapContainer(container({ env: ['SERVICE_NAME=web', 'SERVICE_TAGS=ok,lb=wrr; } upstream evil {,has space,urlprefix-/a#b,weight=2,"q"\'s`,{x},a\\b'] }), options());
  assert.deepEqual(tags.services[0].tags, ['ok', 'lb=wrr; } upstream evil {', 'has space', 'urlprefix-/a#b', 'weight=2', '"q"\'s`', '{x}', 'a\\b']);
  assert.deepEqual(tags.warnings, []);
  const longTag = 't'.repeat(4000);
  assert.deepEqual(mapContainer(container({ env: ['SERVICE_NAME=web', `SERVICE_TAGS=${longTag}`] }), options()).services[0].tags, [longTag], 'Consul sets no tag length');
  // what cannot be carried: not well-formed Unicode (a label may hold a lone surrogate; JSON would change it)
  const lone = mapContainer(container({ env: ['SERVICE_NAME=web'], labels: { SERVICE_TAGS: 'ok,x\ud800y' } }), options());
  assert.deepEqual(lone.services[0].tags, ['ok']);
  assert.deepEqual(lone.warnings.map((w) => [w.key, w.value]), [['SERVICE_TAGS', 'x\ud800y']]);
  assert.match(lone.warnings[0].reason, /well-formed Unicode/);
  for (const good of ['web', 'api.v2', 'my_app-1', 'A1']) {
    assert.equal(mapContainer(container({ env: [`SERVICE_NAME=${good}`] }), options()).services[0]?.name, good, good);
  }
});

test('the registrator.ip label must be a bare host (validated as common/host-port does); a CIDR suffix is cut', () => {
  for (const value of ['10.0.0.1:8080', '10.0.0.256', 'evil/x', 'a b', '[::1]:80']) {
    const r = mapContainer(container({ env: ['SERVICE_NAME=web'], labels: { 'registrator.ip': value } }), options({ hostIp: '192.0.2.1' }));
    assert.equal(r.services[0]?.address, '192.0.2.1', `${value} is refused, the service keeps its usual address`);
    assert.equal(r.warnings[0]?.key, 'registrator.ip', value);
  }
  for (const [value, want] of [['10.0.0.7', '10.0.0.7'], ['10.0.0.7/24', '10.0.0.7'], ['::1', '::1'], ['[fd00::1]', 'fd00::1'], ['db.internal', 'db.internal']]) {
    const r = mapContainer(container({ env: ['SERVICE_NAME=web'], labels: { 'registrator.ip': value } }), options({ hostIp: '192.0.2.1' }));
    assert.equal(r.services[0]?.address, want, value);
  }
});

test('ignore and explicit', () => {
  const cases: Array<{ what: string; c: Partial<ContainerView>; o?: Partial<MappingOptions>; want: string[] }> = [
    { what: 'SERVICE_IGNORE drops all', c: { ...twoPorts, env: ['SERVICE_IGNORE=1'] }, want: [] },
    { what: 'any non-empty value ignores', c: { labels: { SERVICE_IGNORE: 'no' } }, want: [] },
    { what: 'empty value does not ignore', c: { env: ['SERVICE_IGNORE='] }, want: ['web'] },
    { what: 'SERVICE_<port>_IGNORE drops one port, suffix kept', c: { ...twoPorts, env: ['SERVICE_443_IGNORE=true'] }, want: ['web-80'] },
    { what: '-explicit without name: nothing', c: twoPorts, o: { explicit: true }, want: [] },
    { what: '-explicit with SERVICE_NAME', c: { env: ['SERVICE_NAME=api'] }, o: { explicit: true }, want: ['api'] },
    { what: '-explicit with a port name only registers that port', c: { ...twoPorts, labels: { SERVICE_80_NAME: 'www' } },
      o: { explicit: true }, want: ['www'] },
  ];
  for (const k of cases) {
    const r = mapContainer(container(k.c), options(k.o));
    assert.deepEqual(r.services.map((s) => s.name), k.want, k.what);
  }
});

test('addresses: published, -ip, internal, host network, labels', () => {
  const cases: Array<{ what: string; c: Partial<ContainerView>; o?: Partial<MappingOptions>; want: Array<[string, number]>; warnings?: number }> = [
    { what: '-ip overrides the binding', c: { portBindings: { '80/tcp': [{ HostIp: '192.168.1.9', HostPort: '32768' }] } },
      want: [['10.0.0.1', 32768]] },
    { what: 'specific HostIp used without -ip', c: { portBindings: { '80/tcp': [{ HostIp: '192.168.1.9', HostPort: '32768' }] } },
      o: { hostIp: undefined }, want: [['192.168.1.9', 32768]] },
    { what: 'wildcard HostIp uses the fallback', c: {}, o: { hostIp: undefined, fallbackHostIp: '10.9.9.9' },
      want: [['10.9.9.9', 32768]] },
    { what: 'wildcard without -ip or fallback warns', c: {}, o: { hostIp: undefined }, want: [['0.0.0.0', 32768]], warnings: 1 },
    { what: 'IPv4 binding preferred over ::', c: { portBindings: { '80/tcp': [{ HostIp: '::', HostPort: '1' }, { HostIp: '0.0.0.0', HostPort: '2' }] } },
      want: [['10.0.0.1', 2]] },
    { what: '-internal: container IP + exposed port, also unpublished ports',
      c: { exposedPorts: ['80/tcp', '9000/tcp'], portBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }] } },
      o: { internal: true }, want: [['172.17.0.5', 80], ['172.17.0.5', 9000]] },
    { what: '-internal on a user network (network mode)',
      c: { networkMode: 'appnet', networks: { appnet: { IPAddress: '10.5.0.2' }, bridge: { IPAddress: '172.17.0.5' } } },
      o: { internal: true }, want: [['10.5.0.2', 80]] },
    { what: 'registrator.network label picks the network and implies internal',
      c: { labels: { 'registrator.network': 'backend' }, networks: { bridge: { IPAddress: '172.17.0.5' }, backend: { IPAddress: '10.7.0.3' } } },
      want: [['10.7.0.3', 80]] },
    { what: 'registrator.ip label overrides the address, keeps the port', c: { labels: { 'registrator.ip': '203.0.113.7' } },
      want: [['203.0.113.7', 32768]] },
    { what: '-useIpFromLabel strips CIDR', c: { labels: { 'io.rancher.container.ip': '10.42.1.2/16' } },
      o: { useIpFromLabel: 'io.rancher.container.ip' }, want: [['10.42.1.2', 32768]] },
    { what: '-useIpFromLabel label absent: normal address', c: {}, o: { useIpFromLabel: 'x.ip' }, want: [['10.0.0.1', 32768]] },
    { what: 'registrator.ip beats -useIpFromLabel',
      c: { labels: { 'registrator.ip': '1.1.1.1', 'x.ip': '2.2.2.2' } }, o: { useIpFromLabel: 'x.ip' }, want: [['1.1.1.1', 32768]] },
    { what: 'host network: exposed ports on -ip', c: { networkMode: 'host', portBindings: {}, networks: {} },
      want: [['10.0.0.1', 80]] },
  ];
  for (const k of cases) {
    const r = mapContainer(container(k.c), options(k.o));
    assert.deepEqual(r.services.map((s) => [s.address, s.port]), k.want, k.what);
    assert.equal(r.warnings.length, k.warnings ?? 0, `${k.what}: ${JSON.stringify(r.warnings)}`);
  }
});

test('address problems are warnings naming the container and key', () => {
  const missingNet = mapContainer(container({ labels: { 'registrator.network': 'nope' } }), options());
  assert.deepEqual(missingNet.services, []);
  assert.equal(missingNet.warnings[0].key, 'registrator.network');
  assert.equal(missingNet.warnings[0].containerName, 'web-1');
  assert.equal(missingNet.warnings[0].containerId, ID);

  const noIp = mapContainer(container({ networks: {} }), options({ internal: true }));
  assert.deepEqual(noIp.services, []);
  assert.equal(noIp.warnings.length, 1);

  const badLabel = mapContainer(container({ labels: { 'registrator.ip': 'not an ip' } }), options());
  assert.equal(badLabel.services[0].address, '10.0.0.1');
  assert.equal(badLabel.warnings[0].key, 'registrator.ip');
});

test('precedence: labels beat env, port-specific beats general', () => {
  const cases: Array<{ what: string; env: string[]; labels: Record<string, string>; want: string }> = [
    { what: 'env only', env: ['SERVICE_NAME=env'], labels: {}, want: 'env' },
    { what: 'label beats env', env: ['SERVICE_NAME=env'], labels: { SERVICE_NAME: 'label' }, want: 'label' },
    { what: 'port env beats general label', env: ['SERVICE_80_NAME=port-env'], labels: { SERVICE_NAME: 'label' }, want: 'port-env' },
    { what: 'port label beats port env', env: ['SERVICE_80_NAME=port-env'], labels: { SERVICE_80_NAME: 'port-label' }, want: 'port-label' },
    { what: 'other port ignored', env: ['SERVICE_81_NAME=other'], labels: {}, want: 'web' },
    { what: 'lower-case prefix is not metadata', env: ['service_name=nope'], labels: {}, want: 'web' },
  ];
  for (const k of cases) {
    const r = mapContainer(container({ env: k.env, labels: k.labels }), options());
    assert.equal(r.services[0].name, k.want, k.what);
  }
});

test('meta: other SERVICE_* keys lower-cased, plus instance marker and container id', () => {
  const r = mapContainer(container({
    env: ['SERVICE_VERSION=1.2', 'SERVICE_80_ZONE=eu-1', 'SERVICE_NAME=x', 'SERVICE_TAGS=t', 'SERVICE_CHECK_TCP=true', 'SERVICE_WEIGHT=5'],
    labels: { SERVICE_Team: 'blue' },
  }), options({ instanceMarker: 'marker-1' }));
  assert.deepEqual(r.services[0].meta, {
    version: '1.2', zone: 'eu-1', team: 'blue', weight: '5', 'registrator-instance': 'marker-1', 'container-id': ID,
  });
  assert.deepEqual(r.warnings, []);
});

test('bad values are warnings; good services and parts are kept', () => {
  const r = mapContainer(container({
    ...twoPorts,
    env: [
      'SERVICE_WEIGHT=heavy',                 // bad weight: dropped from meta
      'SERVICE_FOO.BAR=x',                    // bad meta key
      'SERVICE_99999_NAME=x',                 // bad port in key
      'SERVICE_443_ID=bad id',                // bad id: 443 service skipped
      'SERVICE_80_CHECK_HTTP=/health',
      'SERVICE_80_CHECK_INTERVAL=ten',        // bad interval: that check skipped
      'SERVICE_80_CHECK_TCP=true',
      'SERVICE_80_CHECK_1_TTL=30s',
      'SERVICE_80_CHECK_1_INITIAL_STATUS=ok', // bad status: check 1 skipped
    ],
  }), options());
  assert.deepEqual(r.services.map((s) => s.id), ['host1:web-1:80']);
  const svc = r.services[0];
  assert.deepEqual(svc.checks, []); // both unnumbered checks share the bad interval; check 1 has a bad status
  assert.equal(svc.meta.weight, undefined);
  assert.equal(svc.meta['foo.bar'], undefined);
  const keys = r.warnings.map((w) => w.key).sort();
  assert.deepEqual(keys, [
    'SERVICE_443_ID', 'SERVICE_80_CHECK_1_INITIAL_STATUS', 'SERVICE_80_CHECK_INTERVAL',
    'SERVICE_99999_NAME', 'SERVICE_FOO.BAR', 'SERVICE_WEIGHT',
  ]);
  for (const w of r.warnings) {
    assert.equal(w.containerName, 'web-1');
    assert.ok(w.reason.length > 0);
  }
});

test('duplicate IDs inside one container: the later service is skipped with a warning', () => {
  const r = mapContainer(container({ ...twoPorts, env: ['SERVICE_80_ID=same', 'SERVICE_443_ID=same'] }), options());
  assert.deepEqual(r.services.map((s) => s.exposedPort), ['80']);
  assert.equal(r.warnings.length, 1);
});

test('-ttl adds a registrator-refreshed TTL check', () => {
  const r = mapContainer(container(), options({ ttl: 30, ttlRefresh: 10 }));
  assert.deepEqual(r.services[0].checks, [{ kind: 'ttl', ttl: '30s', initialStatus: 'passing', refreshedByRegistrator: true }]);
});

test('health gate', () => {
  const cases: Array<{ gate: MappingOptions['healthGate']; health?: ContainerView['health']; services: number; mirror?: string }> = [
    { gate: 'off', health: 'unhealthy', services: 1 },
    { gate: 'register-when-healthy', health: 'starting', services: 0 },
    { gate: 'register-when-healthy', health: 'unhealthy', services: 0 },
    { gate: 'register-when-healthy', health: 'healthy', services: 1 },
    { gate: 'register-when-healthy', health: undefined, services: 1 },
    { gate: 'register-when-healthy', health: 'none', services: 1 },
    { gate: 'mirror', health: 'starting', services: 1, mirror: 'critical' },
    { gate: 'mirror', health: 'healthy', services: 1, mirror: 'passing' },
    { gate: 'mirror', health: 'unhealthy', services: 1, mirror: 'critical' },
    { gate: 'mirror', health: undefined, services: 1 },
  ];
  for (const k of cases) {
    const r = mapContainer(container({ health: k.health }), options({ healthGate: k.gate }));
    const what = `${k.gate}/${k.health}`;
    assert.equal(r.services.length, k.services, what);
    const mirror = r.services[0]?.checks.find((ch) => ch.mirrorsDockerHealth);
    assert.equal(mirror?.initialStatus, k.mirror, what);
    if (mirror) assert.equal(mirror.kind, 'ttl');
  }
});

test('containerViewFromInspect projects docker inspect and tolerates nulls', () => {
  const info = {
    Id: ID, Name: '/web-1',
    State: { Health: { Status: 'healthy' } },
    Config: {
      Image: 'nginx:1', Env: ['A=1'], Labels: { l: 'v' }, ExposedPorts: { '80/tcp': {} }, Hostname: 'abc',
    },
    HostConfig: { NetworkMode: 'bridge' },
    NetworkSettings: {
      Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }], '81/tcp': null },
      Networks: { bridge: { IPAddress: '172.17.0.2', Gateway: 'x' } },
    },
  } as unknown as Dockerode.ContainerInspectInfo;
  assert.deepEqual(containerViewFromInspect(info), {
    id: ID, name: 'web-1', image: 'nginx:1', env: ['A=1'], labels: { l: 'v' }, exposedPorts: ['80/tcp'],
    portBindings: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }], '81/tcp': null },
    networks: { bridge: { IPAddress: '172.17.0.2' } }, networkMode: 'bridge', hostname: 'abc', health: 'healthy',
  });
  const sparse = containerViewFromInspect({
    Id: ID, Name: '/x', State: {}, Config: { Env: null, Labels: null, ExposedPorts: null },
    HostConfig: {}, NetworkSettings: { Ports: null, Networks: null },
  } as unknown as Dockerode.ContainerInspectInfo);
  assert.deepEqual(sparse.env, []);
  assert.deepEqual(sparse.exposedPorts, []);
  assert.equal(sparse.health, undefined);
  assert.deepEqual(mapContainer(sparse, options()), { services: [], warnings: [] });
});

test('a port-specific key for a port the container does not have is a warning', () => {
  const r = mapContainer(container({ env: ['SERVICE_8080_NAME=typo'] }), options());
  assert.deepEqual(r.services.map((s) => s.name), ['web']);
  assert.deepEqual(r.warnings.map((w) => w.key), ['SERVICE_8080_NAME']);
});

test('host networking registers exposed ports on the host address even with -internal', () => {
  const r = mapContainer(container({ networkMode: 'host', portBindings: {}, networks: { host: { IPAddress: '' } } }), options({ internal: true }));
  assert.deepEqual(r.services.map((s) => [s.address, s.port]), [['10.0.0.1', 80]]);
  assert.deepEqual(r.warnings, []);
});

test('an address label makes internal mode work without a container IP', () => {
  const r = mapContainer(container({ networks: {}, labels: { 'registrator.ip': '192.0.2.4' } }), options({ internal: true }));
  assert.deepEqual(r.services.map((s) => [s.address, s.port]), [['192.0.2.4', 80]]);
  assert.deepEqual(r.warnings, []);
});

test('meta keys stay within Consul\'s 64 pairs once the registry adds its fingerprint and engine keys', () => {
  const env = Array.from({ length: 80 }, (_, i) => `SERVICE_K${String(i).padStart(2, '0')}=v`);
  const result = mapContainer(container({ env }), options());
  const [svc] = result.services;
  // the Consul backend adds registrator-fingerprint and registrator-engine to what the mapper gives
  assert.ok(Object.keys(svc.meta).length + 2 <= 64, `${Object.keys(svc.meta).length} mapper keys leave no room`);
  assert.ok(result.warnings.some((w) => /meta keys/.test(w.reason)), 'the dropped keys are reported');
});

test('meta values: as given up to Consul\'s 512 bytes (validateMetaPair counts bytes, not characters)', () => {
  const meta = (v: string) => mapContainer(container({ env: ['SERVICE_NAME=web', `SERVICE_NOTE=${v}`] }), options());
  assert.equal(meta('a;b "c" {d} #e \\f').services[0].meta.note, 'a;b "c" {d} #e \\f');
  assert.equal(meta('x'.repeat(512)).services[0].meta.note, 'x'.repeat(512));
  const wide = meta('é'.repeat(300)); // 300 characters, 600 bytes
  assert.equal(wide.services[0].meta.note, undefined);
  assert.match(wide.warnings[0].reason, /512 bytes \(600\)/);
});
