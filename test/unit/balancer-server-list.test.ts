// Admin API server lists: dyups text and lua-resty-checkups JSON, good bodies and exact errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ServerListError, adminUpstream, parseDyupsServers, parseJsonServers, toServerSpecs,
} from '../../balancer/src/routing/server-list.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

test('dyups text bodies', () => {
  assert.deepEqual(parseDyupsServers('server 127.0.0.1:8089 weight=2 max_fails=3 fail_timeout=10s backup down;server 127.0.0.1:8090;'), [
    { host: '127.0.0.1', port: 8089, weight: 2, maxFails: 3, failTimeoutMs: 10_000, backup: true, down: true },
    { host: '127.0.0.1', port: 8090 },
  ]);
  assert.deepEqual(parseDyupsServers('  server [::1]:81 ;\n server example.com ; '), [
    { host: '::1', port: 81 },
    { host: 'example.com', port: 80 },
  ]);
});

test('a canary marker in both formats: in the server spec, in the dyups and JSON views', async () => {
  const cases: [string | unknown, unknown[]][] = [
    ['server 10.0.0.1:80; server 10.0.0.2:80 canary;', [{ host: '10.0.0.1', port: 80 }, { host: '10.0.0.2', port: 80, canary: true }]],
    ['server 10.0.0.2:80 weight=3 canary backup;', [{ host: '10.0.0.2', port: 80, weight: 3, canary: true, backup: true }]],
    [{ servers: [{ host: '10.0.0.1', port: 80, canary: false }, { host: '10.0.0.2', port: 80, canary: true }] }, [{ host: '10.0.0.1', port: 80 }, { host: '10.0.0.2', port: 80, canary: true }]],
  ];
  for (const [body, want] of cases) {
    assert.deepEqual(typeof body === 'string' ? parseDyupsServers(body) : parseJsonServers(body), want, JSON.stringify(body));
  }
  assert.throws(() => parseDyupsServers('server 10.0.0.1:80 canary=yes;'), /unknown parameter "canary=yes"/);
  assert.throws(() => parseJsonServers({ servers: [{ host: 'a', port: 1, canary: 'yes' }] }), /"canary" must be true or false/);
  const specs = toServerSpecs(parseDyupsServers('server 10.0.0.2:80 canary; server 10.0.0.1:80;'), DEFAULT_TABLE_DEFAULTS);
  assert.deepEqual(specs.map((s) => [s.id, s.canary]), [['10.0.0.1:80', undefined], ['10.0.0.2:80', true]]);
  const { dyupsServerLine, serverJson } = await import('../../balancer/src/admin/dyups-text.js');
  assert.equal(dyupsServerLine(specs[1]), 'server 10.0.0.2:80 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0 canary=1');
  assert.equal(dyupsServerLine(specs[0]), 'server 10.0.0.1:80 weight=1 max_conns=0 max_fails=1 fail_timeout=10 backup=0 down=0');
  assert.equal(serverJson(specs[1]).canary, true);
  assert.equal('canary' in serverJson(specs[0]), false);
});

test('dyups errors say what and where', () => {
  const cases: [string, RegExp][] = [
    ['', /no server given/],
    ['server 127.0.0.1:1; srv 127.0.0.1:2;', /entry 2 "srv 127.0.0.1:2": expected "server/],
    ['server 127.0.0.1:99999;', /entry 1 "server 127.0.0.1:99999": port "99999" is not an integer 1-65535/],
    ['server 127.0.0.1:1 weight=0;', /"weight=0" needs an integer >= 1/],
    ['server 127.0.0.1:1 fail_timeout=soon;', /bad duration in "fail_timeout=soon"/],
    ['server 127.0.0.1:1 slow_start=1s;', /unknown parameter "slow_start=1s"/],
    ['server 127.0.0.1:1; server 127.0.0.1:1;', /127.0.0.1:1 listed twice/],
    ['server ::1:80;', /must be in brackets/],
    ['server;', /missing address/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseDyupsServers(text), (e: unknown) => {
      assert.ok(e instanceof ServerListError);
      assert.equal(e.code, 'ERR_BAD_SERVER_LIST');
      assert.match(e.message, re, text);
      return true;
    });
  }
});

test('JSON bodies (lua-resty-checkups shape)', () => {
  assert.deepEqual(parseJsonServers({ servers: [
    { host: '127.0.0.1', port: 8089, weight: 2, max_fails: 0, fail_timeout: 5, down: false, backup: true },
    { host: '127.0.0.1', port: '8090', fail_timeout: '500ms' },
  ] }), [
    { host: '127.0.0.1', port: 8089, weight: 2, maxFails: 0, failTimeoutMs: 5000, down: false, backup: true },
    { host: '127.0.0.1', port: 8090, failTimeoutMs: 500 },
  ]);
});

test('JSON errors say what and where', () => {
  const cases: [unknown, RegExp][] = [
    [null, /expected an object/],
    [{ hosts: [] }, /"servers" must be an array/],
    [{ servers: [] }, /no server given/],
    [{ servers: ['x'] }, /servers\[0\]: expected an object/],
    [{ servers: [{ port: 1 }] }, /servers\[0\]: "host" must be a non-empty string/],
    [{ servers: [{ host: 'a' }] }, /servers\[0\]: "port" is required/],
    [{ servers: [{ host: 'a', port: 1 }, { host: 'b', port: 70000 }] }, /servers\[1\]: "port": port 70000 is not an integer 1-65535/],
    [{ servers: [{ host: 'a', port: 1, weight: 1.5 }] }, /"weight" must be an integer >= 1/],
    [{ servers: [{ host: 'a', port: 1, down: 'yes' }] }, /"down" must be true or false/],
    [{ servers: [{ host: 'a', port: 1, wieght: 2 }] }, /unknown field "wieght"/],
    [{ servers: [{ host: 'a', port: 1, fail_timeout: -1 }] }, /"fail_timeout" must be >= 0 seconds/],
  ];
  for (const [body, re] of cases) {
    assert.throws(() => parseJsonServers(body), (e: unknown) => e instanceof ServerListError && re.test(e.message), JSON.stringify(body));
  }
});

test('hosts that are not an IPv4/IPv6 address or a DNS name are refused in both formats', () => {
  const dyups: [string, RegExp][] = [
    ['server evil/x:80;', /entry 1 "server evil\/x:80": host "evil\/x" contains "\/"/],
    ['server a b:80;', /entry 1 "server a b:80": unknown parameter "b:80"/],
    ['server 10.0.0.1#frag;', /host "10.0.0.1#frag" contains "#"/],
    ['server 10.0.0.1:80#frag;', /port "80#frag" is not an integer/],
    ['server user@10.0.0.1:80;', /contains "@"/],
    ['server 10.0.0.300:80;', /numeric last label/],
    ['server [fe80::1%eth0]:80;', /zone indexes/],
    ['server [::1:80;', /without "]"/],
    ['server 127.0.0.1:0;', /port "0"/],
  ];
  for (const [text, re] of dyups) {
    assert.throws(() => parseDyupsServers(text), (e: unknown) => e instanceof ServerListError && re.test(e.message), text);
  }
  const json: [unknown, RegExp][] = [
    [{ servers: [{ host: 'evil/x', port: 80 }] }, /servers\[0\]: host "evil\/x" contains "\/"/],
    [{ servers: [{ host: 'a b', port: 80 }] }, /servers\[0\]: host "a b" contains " "/],
    [{ servers: [{ host: '10.0.0.1#frag', port: 80 }] }, /contains "#"/],
    [{ servers: [{ host: '10.0.0.1:8080', port: 80 }] }, /not a valid IPv6/],
    [{ servers: [{ host: 'a', port: 1.5 }] }, /"port": port 1.5 is not an integer/],
    [{ servers: [{ host: 'a', port: '80x' }] }, /"port": port "80x"/],
    [{ servers: [{ host: 'a', port: null }] }, /"port": port must be an integer 1-65535, got null/],
  ];
  for (const [body, re] of json) {
    assert.throws(() => parseJsonServers(body), (e: unknown) => e instanceof ServerListError && re.test(e.message), JSON.stringify(body));
  }
  // brackets around an IPv6 host in JSON are accepted and dropped, a string port is kept working
  assert.deepEqual(parseJsonServers({ servers: [{ host: '[::1]', port: '8080' }] }), [{ host: '::1', port: 8080 }]);
});

test('toServerSpecs and adminUpstream fill defaults', () => {
  const specs = toServerSpecs([{ host: 'b', port: 2, maxFails: 5 }, { host: 'a', port: 1, down: true }], { maxFails: 1, failTimeoutMs: 7000 });
  assert.deepEqual(specs, [
    { id: 'a:1', host: 'a', port: 1, weight: 1, maxFails: 1, failTimeoutMs: 7000, down: true, backup: false },
    { id: 'b:2', host: 'b', port: 2, weight: 1, maxFails: 5, failTimeoutMs: 7000, down: false, backup: false },
  ]);
  const u = adminUpstream('web', [{ host: '::1', port: 80 }], DEFAULT_TABLE_DEFAULTS, { algorithm: 'chash' });
  assert.equal(u.origin, 'admin');
  assert.equal(u.servers[0].id, '[::1]:80');
  assert.deepEqual(u.hashKey, { source: 'ip' });
});
