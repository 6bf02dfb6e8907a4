// Scenario tables for the registrator CLI/env parser: each flag, both dash styles, URI forms, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, FLAGS, parseArgs, type RunConfig } from '../../registrator/src/config.js';
import { helpText } from '../../registrator/src/help.js';

const HOST = { hostname: 'node-a' };
const URI = 'consul://127.0.0.1:8500';

function run(argv: string[], env: NodeJS.ProcessEnv = {}): RunConfig {
  const c = parseArgs(argv, env, HOST);
  if (c instanceof ConfigError) assert.fail(`unexpected ConfigError ${c.code}: ${c.message}`);
  assert.equal(c.action, 'run');
  return c as RunConfig;
}

function fails(argv: string[], env: NodeJS.ProcessEnv = {}): ConfigError {
  const c = parseArgs(argv, env, HOST);
  assert.ok(c instanceof ConfigError, `expected an error for ${JSON.stringify(argv)}`);
  return c;
}

test('defaults', () => {
  const c = run([URI]);
  assert.deepEqual(c.mapping, {
    hostname: 'node-a', internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: 'node-a',
  });
  assert.equal(c.resyncSeconds, 0);
  assert.equal(c.cleanup, false);
  assert.equal(c.deregister, 'always');
  assert.equal(c.retryAttempts, 0);
  assert.equal(c.retryIntervalMs, 2000);
  assert.equal(c.dockerHost, 'unix:///var/run/docker.sock');
  assert.equal(c.logLevel, 'info');
  assert.deepEqual(c.consul, { uri: URI, scheme: 'consul', host: '127.0.0.1', port: 8500, secure: false, tlsSkipVerify: false });
});

test('each flag, single and double dash, = and separate value', () => {
  const cases: Array<{ argv: string[]; check: (c: RunConfig) => unknown; want: unknown }> = [
    { argv: ['-internal'], check: (c) => c.mapping.internal, want: true },
    { argv: ['--internal'], check: (c) => c.mapping.internal, want: true },
    { argv: ['-internal=false'], check: (c) => c.mapping.internal, want: false },
    { argv: ['-ip', '10.1.2.3'], check: (c) => c.mapping.hostIp, want: '10.1.2.3' },
    { argv: ['--ip=10.1.2.3'], check: (c) => c.mapping.hostIp, want: '10.1.2.3' },
    { argv: ['-tags', 'a,b\\,c'], check: (c) => c.mapping.forceTags, want: ['a', 'b,c'] },
    { argv: ['-resync=30'], check: (c) => c.resyncSeconds, want: 30 },
    { argv: ['-cleanup'], check: (c) => c.cleanup, want: true },
    { argv: ['-deregister', 'on-success'], check: (c) => c.deregister, want: 'on-success' },
    { argv: ['-explicit'], check: (c) => c.mapping.explicit, want: true },
    { argv: ['-useIpFromLabel', 'io.rancher.container.ip'], check: (c) => c.mapping.useIpFromLabel, want: 'io.rancher.container.ip' },
    { argv: ['-retry-attempts', '-1'], check: (c) => c.retryAttempts, want: -1 },
    { argv: ['--retry-attempts=5'], check: (c) => c.retryAttempts, want: 5 },
    { argv: ['-retry-interval', '250'], check: (c) => c.retryIntervalMs, want: 250 },
    { argv: ['-ttl', '30', '-ttl-refresh', '10'], check: (c) => [c.mapping.ttl, c.mapping.ttlRefresh], want: [30, 10] },
    { argv: ['-health-gate', 'mirror'], check: (c) => c.mapping.healthGate, want: 'mirror' },
    { argv: ['--health-gate=register-when-healthy'], check: (c) => c.mapping.healthGate, want: 'register-when-healthy' },
    { argv: ['-hostname', 'edge'], check: (c) => [c.mapping.hostname, c.mapping.instanceMarker], want: ['edge', 'edge'] },
    { argv: ['-docker-host', 'tcp://127.0.0.1:2375'], check: (c) => c.dockerHost, want: 'tcp://127.0.0.1:2375' },
    { argv: ['-log-level', 'DEBUG'], check: (c) => c.logLevel, want: 'debug' },
  ];
  for (const k of cases) {
    assert.deepEqual(k.check(run([...k.argv, URI])), k.want, k.argv.join(' '));
    // flags after the URI work too
    assert.deepEqual(k.check(run([URI, ...k.argv])), k.want, `${k.argv.join(' ')} after URI`);
  }
});

test('a bare boolean does not swallow the URI', () => {
  const c = run(['-internal', URI, '-cleanup']);
  assert.equal(c.mapping.internal, true);
  assert.equal(c.cleanup, true);
  assert.equal(c.consul.uri, URI);
});

test('help and version', () => {
  for (const argv of [['-help'], ['--help'], ['-h'], ['-help', 'consul://x'], ['-internal', '-help']]) {
    assert.deepEqual(parseArgs(argv, {}, HOST), { action: 'help' }, argv.join(' '));
  }
  assert.deepEqual(parseArgs(['-version'], {}, HOST), { action: 'version' });
  assert.deepEqual(parseArgs(['--version'], {}, HOST), { action: 'version' });
});

test('help text lists every flag and environment variable', () => {
  const text = helpText();
  for (const flag of Object.keys(FLAGS)) assert.ok(text.includes(`-${flag}`), `help mentions -${flag}`);
  for (const v of ['CONSUL_HTTP_TOKEN', 'CONSUL_CACERT', 'CONSUL_CLIENT_CERT', 'CONSUL_CLIENT_KEY', 'CONSUL_HTTP_SSL', 'CONSUL_HTTP_SSL_VERIFY', 'DOCKER_HOST']) {
    assert.ok(text.includes(v), `help mentions ${v}`);
  }
});

test('registry URI forms and CONSUL_* environment', () => {
  const cases: Array<{ uri: string; env?: NodeJS.ProcessEnv; want: Record<string, unknown> }> = [
    { uri: 'consul://consul.local:8500', want: { scheme: 'consul', host: 'consul.local', port: 8500, secure: false } },
    { uri: 'consul://localhost', want: { host: 'localhost', port: 8500 } },
    { uri: 'consul://', want: { host: '127.0.0.1', port: 8500 } },
    { uri: 'consul://[::1]:8600', want: { host: '::1', port: 8600 } },
    { uri: 'consul-tls://consul:8501', want: { scheme: 'consul-tls', host: 'consul', port: 8501, secure: true } },
    { uri: 'consul-unix:///var/run/consul.sock', want: { scheme: 'consul-unix', socketPath: '/var/run/consul.sock', secure: false } },
    { uri: 'consul://c:8501', env: { CONSUL_HTTP_SSL: 'true', CONSUL_HTTP_SSL_VERIFY: 'false' }, want: { secure: true, tlsSkipVerify: true } },
    { uri: 'consul-tls://c:8501',
      env: { CONSUL_HTTP_TOKEN: 'tok', CONSUL_CACERT: 'ca.pem', CONSUL_CLIENT_CERT: 'cert.pem', CONSUL_CLIENT_KEY: 'key.pem' },
      want: { token: 'tok', caCertFile: 'ca.pem', clientCertFile: 'cert.pem', clientKeyFile: 'key.pem' } },
    { uri: 'consul-tls://c:8501', env: { CONSUL_TLSCERT: 'old-cert.pem', CONSUL_TLSKEY: 'old-key.pem' },
      want: { clientCertFile: 'old-cert.pem', clientKeyFile: 'old-key.pem' } },
    { uri: 'consul://c:8500', env: { CONSUL_HTTP_TOKEN: '' }, want: { token: undefined } },
  ];
  for (const k of cases) {
    const c = run([k.uri], k.env);
    for (const [field, value] of Object.entries(k.want)) {
      assert.deepEqual((c.consul as unknown as Record<string, unknown>)[field], value, `${k.uri} ${field}`);
    }
  }
  assert.equal(run([URI], { DOCKER_HOST: 'tcp://d:2375' }).dockerHost, 'tcp://d:2375');
  assert.equal(run(['-docker-host', 'unix:///x.sock', URI], { DOCKER_HOST: 'tcp://d:2375' }).dockerHost, 'unix:///x.sock');
});

test('errors are ConfigErrors with stable codes and clear messages', () => {
  const cases: Array<{ argv: string[]; env?: NodeJS.ProcessEnv; code: ConfigError['code']; mentions: string }> = [
    { argv: [], code: 'ERR_CONFIG_MISSING_URI', mentions: 'registry URI' },
    { argv: [URI, 'extra'], code: 'ERR_CONFIG_EXTRA_ARGS', mentions: 'extra' },
    { argv: ['-nope', URI], code: 'ERR_CONFIG_UNKNOWN_FLAG', mentions: '-nope' },
    { argv: [URI, '-ip'], code: 'ERR_CONFIG_MISSING_VALUE', mentions: '-ip' },
    { argv: ['-resync', 'often', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'resync' },
    { argv: ['-resync=-1', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'resync' },
    { argv: ['-retry-attempts=-2', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'retry-attempts' },
    { argv: ['-retry-interval=1.5', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'retry-interval' },
    { argv: ['-deregister=never', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'on-success' },
    { argv: ['-health-gate=maybe', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'register-when-healthy' },
    { argv: ['-log-level=loud', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'log-level' },
    { argv: ['-internal=yes', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'internal' },
    { argv: ['-ip', 'a b', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'ip' },
    { argv: ['-hostname=', URI], code: 'ERR_CONFIG_BAD_VALUE', mentions: 'hostname' },
    { argv: ['-ttl=30', URI], code: 'ERR_CONFIG_TTL', mentions: 'together' },
    { argv: ['-ttl-refresh=10', URI], code: 'ERR_CONFIG_TTL', mentions: 'together' },
    { argv: ['-ttl=10', '-ttl-refresh=10', URI], code: 'ERR_CONFIG_TTL', mentions: 'less than' },
    { argv: ['etcd://127.0.0.1:2379'], code: 'ERR_CONFIG_BAD_URI', mentions: 'etcd' },
    { argv: ['127.0.0.1:8500'], code: 'ERR_CONFIG_BAD_URI', mentions: 'consul://' },
    { argv: ['consul://h:99999'], code: 'ERR_CONFIG_BAD_URI', mentions: 'port' },
    { argv: ['consul://h:abc'], code: 'ERR_CONFIG_BAD_URI', mentions: 'host:port' },
    { argv: ['consul-unix://relative.sock'], code: 'ERR_CONFIG_BAD_URI', mentions: 'socket path' },
    { argv: [URI], env: { CONSUL_HTTP_SSL: 'sure' }, code: 'ERR_CONFIG_BAD_ENV', mentions: 'CONSUL_HTTP_SSL' },
    { argv: [URI], env: { CONSUL_HTTP_SSL_VERIFY: 'nah' }, code: 'ERR_CONFIG_BAD_ENV', mentions: 'CONSUL_HTTP_SSL_VERIFY' },
  ];
  for (const k of cases) {
    const e = fails(k.argv, k.env);
    assert.equal(e.code, k.code, `${k.argv.join(' ')}: ${e.message}`);
    assert.ok(e.message.includes(k.mentions), `${k.argv.join(' ')}: "${e.message}" should mention ${k.mentions}`);
    assert.ok(e instanceof Error);
  }
});

test('"--" ends the options', () => {
  const c = run(['-cleanup', '--', URI]);
  assert.equal(c.consul.uri, URI);
  assert.equal(fails(['--', '-cleanup', URI]).code, 'ERR_CONFIG_EXTRA_ARGS');
});

test('intervals longer than a Node timer can wait are refused (they would fire every millisecond)', () => {
  for (const argv of [['-resync', '3000000'], ['-ttl', '3000000', '-ttl-refresh', '10'], ['-retry-interval', '3000000000']]) {
    const err = fails([...argv, 'consul://127.0.0.1:8500']);
    assert.match(err.message, /timer/, argv.join(' '));
  }
  assert.equal(run(['-resync', '86400', 'consul://127.0.0.1:8500']).resyncSeconds, 86400);
});
