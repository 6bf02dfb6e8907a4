// Scenario tables for SERVICE_[<port>_]CHECK_* -> Consul check specs, one kind at a time, several
// checks per service, modifiers, and bad values (the bad check is skipped, the service kept).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapContainer, type MappingOptions } from '../../registrator/src/mapping/service-mapper.js';
import type { ContainerView } from '../../registrator/src/mapping/container-view.js';
import type { CheckSpec } from '../../registrator/src/mapping/types.js';

const opts: MappingOptions = {
  hostname: 'h', hostIp: '10.0.0.1', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'h',
};

function checksFor(env: string[], labels: Record<string, string> = {}) {
  const c: ContainerView = {
    id: 'cid', name: 'app', image: 'app', env, labels,
    exposedPorts: ['80/tcp'], portBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }] },
    networks: {}, networkMode: 'default', hostname: 'x',
  };
  const r = mapContainer(c, opts);
  assert.equal(r.services.length, 1, 'the service itself is always kept');
  return { checks: r.services[0].checks, warnings: r.warnings };
}

test('each check kind', () => {
  const cases: Array<{ what: string; env: string[]; want: CheckSpec[] }> = [
    { what: 'http path', env: ['SERVICE_CHECK_HTTP=/health'],
      want: [{ kind: 'http', target: 'http://10.0.0.1:8080/health', interval: '10s' }] },
    { what: 'https path with method, timeout, tls skip',
      env: ['SERVICE_CHECK_HTTPS=/ready?x=1', 'SERVICE_CHECK_METHOD=head', 'SERVICE_CHECK_TIMEOUT=2s', 'SERVICE_CHECK_TLS_SKIP_VERIFY=true'],
      want: [{ kind: 'https', target: 'https://10.0.0.1:8080/ready?x=1', interval: '10s', timeout: '2s', method: 'HEAD', tlsSkipVerify: true }] },
    { what: 'tcp', env: ['SERVICE_CHECK_TCP=true', 'SERVICE_CHECK_INTERVAL=5s'],
      want: [{ kind: 'tcp', target: '10.0.0.1:8080', interval: '5s' }] },
    { what: 'ttl', env: ['SERVICE_CHECK_TTL=30s'], want: [{ kind: 'ttl', ttl: '30s' }] },
    { what: 'grpc', env: ['SERVICE_CHECK_GRPC=true'], want: [{ kind: 'grpc', target: '10.0.0.1:8080', interval: '10s' }] },
    { what: 'grpc with service', env: ['SERVICE_CHECK_GRPC=my.Health'],
      want: [{ kind: 'grpc', target: '10.0.0.1:8080/my.Health', interval: '10s' }] },
    { what: 'script with substitution', env: ['SERVICE_CHECK_SCRIPT=nc -z $SERVICE_IP $SERVICE_PORT'],
      want: [{ kind: 'script', target: 'nc -z 10.0.0.1 8080', interval: '10s' }] },
    { what: 'cmd runs in the container (docker check)', env: ['SERVICE_CHECK_CMD=/bin/check $SERVICE_PORT'],
      want: [{ kind: 'docker', target: '/bin/check 8080', interval: '10s' }] },
    { what: 'docker', env: ['SERVICE_CHECK_DOCKER=pg_isready'], want: [{ kind: 'docker', target: 'pg_isready', interval: '10s' }] },
    { what: 'initial status and deregister after', env: ['SERVICE_CHECK_TCP=1', 'SERVICE_CHECK_INITIAL_STATUS=Passing', 'SERVICE_CHECK_DEREGISTER_AFTER=1m30s'],
      want: [{ kind: 'tcp', target: '10.0.0.1:8080', interval: '10s', initialStatus: 'passing', deregisterAfter: '1m30s' }] },
    { what: 'false disables', env: ['SERVICE_CHECK_TCP=true', 'SERVICE_80_CHECK_TCP=false'], want: [] },
    { what: 'modifiers alone make no check', env: ['SERVICE_CHECK_INTERVAL=5s'], want: [] },
  ];
  for (const k of cases) {
    const { checks, warnings } = checksFor(k.env);
    assert.deepEqual(checks, k.want, k.what);
    assert.deepEqual(warnings, [], k.what);
  }
});

test('several checks per service', () => {
  const cases: Array<{ what: string; env: string[]; labels?: Record<string, string>; want: string[] }> = [
    { what: 'http and tcp together', env: ['SERVICE_CHECK_HTTP=/h', 'SERVICE_CHECK_TCP=true'], want: ['http', 'tcp'] },
    { what: 'numbered groups with own modifiers',
      env: ['SERVICE_CHECK_1_HTTP=/a', 'SERVICE_CHECK_1_INTERVAL=1s', 'SERVICE_CHECK_2_HTTP=/b', 'SERVICE_CHECK_INTERVAL=7s'],
      want: ['http http://10.0.0.1:8080/a 1s', 'http http://10.0.0.1:8080/b 7s'] },
    { what: 'unnumbered first, then by number', env: ['SERVICE_CHECK_10_TCP=true', 'SERVICE_CHECK_2_TTL=9s', 'SERVICE_CHECK_HTTP=/x'],
      want: ['http', 'ttl', 'tcp'] },
    { what: 'port-specific and general keys merge', env: ['SERVICE_CHECK_TCP=true', 'SERVICE_80_CHECK_HTTP=/p'], want: ['http', 'tcp'] },
    { what: 'label beats env for a check key', env: ['SERVICE_CHECK_HTTP=/env'], labels: { SERVICE_CHECK_HTTP: '/label' },
      want: ['http http://10.0.0.1:8080/label 10s'] },
  ];
  for (const k of cases) {
    const { checks, warnings } = checksFor(k.env, k.labels);
    const got = checks.map((c) => (k.want[0].includes(' ') ? [c.kind, c.target, c.interval].join(' ') : c.kind));
    assert.deepEqual(got, k.want, k.what);
    assert.deepEqual(warnings, [], k.what);
  }
});

test('bad check values skip only that check, with a warning naming the key', () => {
  const cases: Array<{ what: string; env: string[]; kept: string[]; badKey: string }> = [
    { what: 'bad interval', env: ['SERVICE_CHECK_1_HTTP=/h', 'SERVICE_CHECK_1_INTERVAL=10', 'SERVICE_CHECK_2_TCP=true'],
      kept: ['tcp'], badKey: 'SERVICE_CHECK_1_INTERVAL' },
    { what: 'bad timeout', env: ['SERVICE_CHECK_HTTP=/h', 'SERVICE_CHECK_TIMEOUT=soon', 'SERVICE_CHECK_2_TTL=5s'],
      kept: ['ttl'], badKey: 'SERVICE_CHECK_TIMEOUT' },
    { what: 'bad ttl', env: ['SERVICE_CHECK_TTL=forever', 'SERVICE_CHECK_TCP=true'], kept: ['tcp'], badKey: 'SERVICE_CHECK_TTL' },
    { what: 'negative ttl', env: ['SERVICE_CHECK_TTL=-5s'], kept: [], badKey: 'SERVICE_CHECK_TTL' },
    { what: 'zero interval', env: ['SERVICE_CHECK_TCP=true', 'SERVICE_CHECK_INTERVAL=0s'], kept: [], badKey: 'SERVICE_CHECK_INTERVAL' },
    { what: 'bad initial status', env: ['SERVICE_CHECK_TCP=true', 'SERVICE_CHECK_INITIAL_STATUS=green', 'SERVICE_CHECK_1_TTL=5s', 'SERVICE_CHECK_1_INITIAL_STATUS=warning'],
      kept: ['ttl'], badKey: 'SERVICE_CHECK_INITIAL_STATUS' },
    { what: 'bad deregister after', env: ['SERVICE_CHECK_TCP=true', 'SERVICE_CHECK_DEREGISTER_AFTER=1 minute'], kept: [], badKey: 'SERVICE_CHECK_DEREGISTER_AFTER' },
    { what: 'bad method', env: ['SERVICE_CHECK_HTTP=/h', 'SERVICE_CHECK_METHOD=GET /x', 'SERVICE_CHECK_TCP=true'], kept: ['tcp'], badKey: 'SERVICE_CHECK_METHOD' },
    { what: 'bad tls skip verify', env: ['SERVICE_CHECK_HTTPS=/h', 'SERVICE_CHECK_TLS_SKIP_VERIFY=maybe'], kept: [], badKey: 'SERVICE_CHECK_TLS_SKIP_VERIFY' },
    { what: 'http path without slash', env: ['SERVICE_CHECK_HTTP=health', 'SERVICE_CHECK_TCP=true'], kept: ['tcp'], badKey: 'SERVICE_CHECK_HTTP' },
    { what: 'unknown check key', env: ['SERVICE_CHECK_HTTPZ=/h', 'SERVICE_CHECK_TCP=true'], kept: ['tcp'], badKey: 'SERVICE_CHECK_HTTPZ' },
    { what: 'numbered group without a kind', env: ['SERVICE_CHECK_3_INTERVAL=5s'], kept: [], badKey: 'SERVICE_CHECK_3_INTERVAL' },
  ];
  for (const k of cases) {
    const { checks, warnings } = checksFor(k.env);
    assert.deepEqual(checks.map((c) => c.kind), k.kept, k.what);
    assert.deepEqual(warnings.map((w) => w.key), [k.badKey], k.what);
    assert.equal(warnings[0].containerName, 'app', k.what);
  }
});

test('modifiers that do not apply to a kind are ignored, not validated', () => {
  const { checks, warnings } = checksFor(['SERVICE_CHECK_TTL=15s', 'SERVICE_CHECK_INTERVAL=bogus', 'SERVICE_CHECK_METHOD=?']);
  assert.deepEqual(checks, [{ kind: 'ttl', ttl: '15s' }]);
  assert.deepEqual(warnings, []);
});

test('check targets use the registered address (internal mode, IPv6)', () => {
  const c: ContainerView = {
    id: 'cid', name: 'app', image: 'app', env: ['SERVICE_CHECK_HTTP=/h'], labels: { 'registrator.ip': 'fd00::5' },
    exposedPorts: ['80/tcp'], portBindings: {}, networks: { bridge: { IPAddress: '172.17.0.9' } }, networkMode: 'default', hostname: 'x',
  };
  assert.equal(mapContainer(c, { ...opts, internal: true }).services[0].checks[0].target, 'http://[fd00::5]:80/h');
  const plain = { ...c, labels: {} };
  assert.equal(mapContainer(plain, { ...opts, internal: true }).services[0].checks[0].target, 'http://172.17.0.9:80/h');
});

test('a deregister-after under the agent\'s 1 min floor is kept as given and said: the agent raises it to 1m and reaps every 30 s', () => {
  const short = checksFor(['SERVICE_CHECK_TTL=30s', 'SERVICE_CHECK_DEREGISTER_AFTER=10s']);
  assert.deepEqual(short.checks, [{ kind: 'ttl', ttl: '30s', deregisterAfter: '10s' }]);
  assert.deepEqual(short.warnings.map((w) => w.key), ['SERVICE_CHECK_DEREGISTER_AFTER']);
  assert.match(short.warnings[0].reason, /raises deregister-after below 1m to 1m/);
  for (const ok of ['1m', '60s', '90s', '1h']) {
    assert.deepEqual(checksFor(['SERVICE_CHECK_TTL=30s', `SERVICE_CHECK_DEREGISTER_AFTER=${ok}`]).warnings, [], ok);
  }
});
