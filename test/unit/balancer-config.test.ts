import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseBalancerArgs, type Config } from '../../balancer/src/config.js';
import { helpText } from '../../balancer/src/help.js';

const facts = { cores: 4 };
function ok(argv: string[], env: Record<string, string> = {}): Config {
  const r = parseBalancerArgs(argv, env, facts);
  if (r.kind !== 'config') assert.fail(`expected a config, got ${r.kind}: ${(r as Error).message ?? ''}`);
  return r;
}
function bad(argv: string[], env: Record<string, string> = {}): ConfigError {
  const r = parseBalancerArgs(argv, env, facts);
  assert.ok(r instanceof ConfigError, `expected an error for ${argv.join(' ')}`);
  assert.equal(r.code, 'ERR_CONFIG');
  return r;
}

test('defaults: dynamic mode, 0.0.0.0:8080, admin on loopback, workers = cores, local consul', () => {
  const c = ok([]);
  assert.equal(c.mode, 'dynamic');
  assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(c.admin, { host: '127.0.0.1', port: 8081 });
  assert.equal(c.workers, 4);
  assert.equal(c.consul?.baseUrl, 'http://127.0.0.1:8500');
  assert.equal(c.passingOnly, true);
  assert.equal(c.defaultLb, 'roundrobin');
  assert.equal(c.strongDependency, false);
  assert.equal(c.services, undefined);
  assert.deepEqual(c.reload.renders, []);
});

test('consul address forms from flag and CONSUL_HTTP_ADDR; token from env', () => {
  const cases: [string, string][] = [
    ['10.0.0.1:8501', 'http://10.0.0.1:8501'],
    ['consul', 'http://consul:8500'],
    ['http://consul:9000', 'http://consul:9000'],
    ['https://consul.example', 'https://consul.example:443'],
  ];
  for (const [given, want] of cases) {
    assert.equal(ok(['--consul', given]).consul?.baseUrl, want, given);
    assert.equal(ok([], { CONSUL_HTTP_ADDR: given }).consul?.baseUrl, want, given);
  }
  assert.equal(ok([], { CONSUL_HTTP_TOKEN: 'tok' }).consul?.token, 'tok');
  bad(['--consul', 'ftp://x:1']);
});

test('flag beats env; --flag=value and --flag value both work', () => {
  const c = ok(['--listen=127.0.0.1:9000', '--workers', '2'], { BALANCER_LISTEN: '1.2.3.4:1', BALANCER_WORKERS: '7', BALANCER_MODE: 'reload' });
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 9000 });
  assert.equal(c.workers, 2);
  assert.equal(c.mode, 'reload');
});

test('booleans: bare flag, explicit value, env', () => {
  assert.equal(ok(['--strong-dependency']).strongDependency, true);
  assert.equal(ok(['--strong-dependency', 'false']).strongDependency, false);
  assert.equal(ok(['--strong-dependency=false']).strongDependency, false);
  assert.equal(ok([], { BALANCER_STRONG_DEPENDENCY: '1' }).strongDependency, true);
  assert.equal(ok(['--no-consul']).consul, undefined);
  assert.equal(ok(['--passing-only', 'false']).passingOnly, false);
  assert.equal(ok(['--access-log', '--workers', '1']).accessLog, true);
  bad(['--passing-only', 'maybe']);
});

test('lists, durations, algorithms, reload pass-through', () => {
  const c = ok(['--services', 'a, b,,c', '--connect-timeout', '250ms', '--drain-timeout', '2s', '--default-lb', 'chash',
    '--render', 't/a.hbs:out/a.conf', '--render', 'b.hbs:b.conf', '--reload-command', 'nginx -s reload', '--wait', '1s:5s',
    '--template', 'x.hbs', '--config-out', 'x.conf', '--admin-token', 's3cret', '--dump-file', '/var/lib/b.json']);
  assert.deepEqual(c.services, ['a', 'b', 'c']);
  assert.equal(c.timeouts.connectMs, 250);
  assert.equal(c.drainTimeoutMs, 2000);
  assert.equal(c.defaultLb, 'chash');
  assert.deepEqual(c.reload.renders, [{ template: 't/a.hbs', output: 'out/a.conf' }, { template: 'b.hbs', output: 'b.conf' }]);
  assert.equal(c.reload.reloadCommand, 'nginx -s reload');
  assert.deepEqual(c.reload.wait, { minMs: 1000, maxMs: 5000 });
  assert.equal(c.reload.template, 'x.hbs');
  assert.equal(c.reload.configOut, 'x.conf');
  assert.equal(c.adminToken, 's3cret');
  assert.equal(c.dumpFile, '/var/lib/b.json');
  assert.deepEqual(ok([], { BALANCER_RENDER: 'a:b,c:d' }).reload.renders, [{ template: 'a', output: 'b' }, { template: 'c', output: 'd' }]);
});

test('bad input is a ConfigError naming the flag or variable', () => {
  assert.match(bad(['--bogus']).message, /--bogus/);
  assert.match(bad(['--workers', '0']).message, /--workers/);
  assert.match(bad([], { BALANCER_WORKERS: 'x' }).message, /BALANCER_WORKERS/);
  assert.match(bad(['--mode', 'fast']).message, /dynamic or reload/);
  assert.match(bad(['--listen', 'nohostport']).message, /host:port/);
  assert.match(bad(['--listen', '1.2.3.4:99999']).message, /port/);
  assert.match(bad(['--default-lb', 'random']).message, /roundrobin/);
  assert.match(bad(['--connect-timeout', 'soon']).message, /duration/);
  assert.match(bad(['--render', 'nocolon']).message, /template/);
  assert.match(bad(['--wait', '5s:1s']).message, /max/);
  assert.match(bad(['--admin']).message, /needs a value/);
  assert.match(bad(['positional']).message, /unexpected/);
});

test('--help returns a help request (unknown flags before it still fail) and the help text lists every flag with its env var', () => {
  assert.equal(parseBalancerArgs(['--bogus-later', '--help'], {}, facts).kind, 'error');
  assert.equal(parseBalancerArgs(['--help'], {}, facts).kind, 'help');
  const text = helpText();
  for (const flag of ['--consul', '--listen', '--admin', '--admin-token', '--mode', '--workers', '--dump-file', '--strong-dependency',
    '--no-consul', '--services', '--passing-only', '--default-lb', '--local-node', '--local-zone', '--access-log', '--log-level',
    '--template', '--config-out', '--render', '--reload-command', '--wait']) {
    assert.ok(text.includes(flag), flag);
  }
  for (const env of ['CONSUL_HTTP_ADDR', 'CONSUL_HTTP_TOKEN', 'BALANCER_MODE', 'BALANCER_LISTEN', 'BALANCER_ADMIN_TOKEN', 'BALANCER_DUMP_FILE']) {
    assert.ok(text.includes(env), env);
  }
  assert.match(text, /admin API wins/);
});

test('durations longer than a Node timer can wait are refused (a 999h drain timeout killed workers after 1 ms)', () => {
  assert.match(bad(['--drain-timeout', '999h']).message, /timer/);
  assert.match(bad(['--wait', '1s:999h']).message, /timer/);
  assert.equal(ok(['--drain-timeout', '24h']).drainTimeoutMs, 86_400_000);
});

test('--engine: native by default, undici on request, anything else refused; --max-head-size bounds', () => {
  assert.equal(ok([]).engine, 'native');
  assert.equal(ok(['--engine', 'undici']).engine, 'undici');
  assert.equal(ok([], { BALANCER_ENGINE: 'undici' }).engine, 'undici');
  assert.match(bad(['--engine', 'nginx']).message, /--engine: expected one of native\|undici/);
  assert.equal(ok([]).maxHeadBytes, 16_384);
  assert.equal(ok(['--max-head-size', '32768']).maxHeadBytes, 32_768);
  assert.match(bad(['--max-head-size', '10']).message, /--max-head-size/);
});

test('--client-header-timeout: 10 s by default, a duration from flag or env, 0 refused (it would cut every request)', () => {
  assert.equal(ok([]).timeouts.clientHeaderMs, 10_000);
  assert.equal(ok(['--client-header-timeout', '2s']).timeouts.clientHeaderMs, 2_000);
  assert.equal(ok([], { BALANCER_CLIENT_HEADER_TIMEOUT: '500ms' }).timeouts.clientHeaderMs, 500);
  assert.match(bad(['--client-header-timeout', '0']).message, /--client-header-timeout: must be longer than 0/);
  assert.ok(helpText().includes('--client-header-timeout'));
});

test('--client-half-close: abort by default (nginx), answer by flag or BALANCER_CLIENT_HALF_CLOSE, anything else refused, in --help', () => {
  assert.equal(ok([]).clientHalfClose, 'abort');
  assert.equal(ok(['--client-half-close', 'answer']).clientHalfClose, 'answer');
  assert.equal(ok(['--client-half-close', 'abort']).clientHalfClose, 'abort');
  assert.equal(ok([], { BALANCER_CLIENT_HALF_CLOSE: 'answer' }).clientHalfClose, 'answer');
  assert.match(bad(['--client-half-close', 'ignore']).message, /--client-half-close: expected abort or answer, got "ignore"/);
  assert.match(helpText(), /--client-half-close <abort\|answer>.*\(default abort\)/);
});

test('--underscores-in-headers: off by default, on by flag or BALANCER_UNDERSCORES_IN_HEADERS, in --help', () => {
  assert.equal(ok([]).underscoresInHeaders, false);
  assert.equal(ok(['--underscores-in-headers']).underscoresInHeaders, true);
  assert.equal(ok([], { BALANCER_UNDERSCORES_IN_HEADERS: 'true' }).underscoresInHeaders, true);
  assert.match(helpText(), /--underscores-in-headers/);
});
