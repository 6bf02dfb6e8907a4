// Host and port validation shared by every address producer: scenario tables of accepted and refused
// values, each refusal with a reason naming the value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHost, checkHostPort, checkPort, parseHostPort } from '../../common/host-port.js';

test('hosts accepted, normalized and classified', () => {
  const cases: [string, string, string][] = [
    ['10.0.0.1', '10.0.0.1', 'ipv4'],
    ['127.0.0.1', '127.0.0.1', 'ipv4'],
    ['0.0.0.0', '0.0.0.0', 'ipv4'],
    ['::1', '::1', 'ipv6'],
    ['[::1]', '::1', 'ipv6'],
    ['2001:DB8::1', '2001:db8::1', 'ipv6'],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1', 'ipv6'],
    ['localhost', 'localhost', 'dns'],
    ['web.service.consul', 'web.service.consul', 'dns'],
    ['web.service.consul.', 'web.service.consul.', 'dns'],
    ['my_app_1', 'my_app_1', 'dns'],
    ['a-b.c-d', 'a-b.c-d', 'dns'],
    ['1e100.net', '1e100.net', 'dns'],
    ['x'.repeat(63) + '.example', 'x'.repeat(63) + '.example', 'dns'],
  ];
  for (const [input, host, kind] of cases) {
    const r = checkHost(input);
    assert.ok(r.ok, `${input}: ${!r.ok ? r.reason : ''}`);
    assert.equal(r.host, host, input);
    assert.equal(r.kind, kind, input);
  }
});

test('hosts refused, with a reason naming the value', () => {
  const cases: [unknown, RegExp][] = [
    ['', /empty/],
    ['evil/x', /"evil\/x" contains "\/"/],
    ['a b', /contains " "/],
    ['10.0.0.1#frag', /contains "#"/],
    ['h?q', /contains "\?"/],
    ['user@host', /contains "@"/],
    ['ho\nst', /contains "\\n"/],
    ['10.0.0.256', /numeric last label/],
    ['10.0.0', /numeric last label/],
    ['123', /numeric last label/],
    ['0x7f', /numeric last label/],
    ['010.0.0.1', /numeric last label/],
    ['-web', /start or end with "-"/],
    ['web-.x', /start or end with "-"/],
    ['a..b', /empty label/],
    ['.', /not a valid DNS name/],
    ['x'.repeat(64) + '.example', /label longer than 63/],
    [('a'.repeat(60) + '.').repeat(5) + 'com', /not a valid DNS name \(length\)|longer than 253/],
    ['::1::2', /not a valid IPv6/],
    ['[::1', /not a valid IPv6/],
    ['[]', /not a valid IPv6/],
    ['[web]', /not a valid IPv6/],
    ['fe80::1%eth0', /zone indexes/],
    ['10.0.0.1:8080', /not a valid IPv6/],
    [123, /must be a string, got number/],
    [null, /got null/],
    [undefined, /got undefined/],
    [['a'], /got object/],
  ];
  for (const [input, re] of cases) {
    const r = checkHost(input);
    assert.equal(r.ok, false, `${String(input)} accepted`);
    if (!r.ok) assert.match(r.reason, re, String(input));
  }
});

test('ports: integers 1-65535, as numbers or plain decimal strings', () => {
  for (const [input, port] of [[1, 1], [80, 80], [65535, 65535], ['8080', 8080], ['65535', 65535]] as const) {
    assert.deepEqual(checkPort(input), { ok: true, port }, String(input));
  }
  const bad: unknown[] = [0, -1, 65536, 1.5, NaN, Infinity, '0', '080', '+80', ' 80', '80 ', '1e3', '65536', '', 'http', null, undefined, true, {}];
  for (const input of bad) {
    const r = checkPort(input);
    assert.equal(r.ok, false, `${String(input)} accepted`);
    if (!r.ok) assert.match(r.reason, /port/, String(input));
  }
});

test('host:port splitting', () => {
  const good: [string, number | undefined, string, number][] = [
    ['10.0.0.1:80', undefined, '10.0.0.1', 80],
    ['[::1]:8080', undefined, '::1', 8080],
    ['web:9000', undefined, 'web', 9000],
    ['web', 80, 'web', 80],
    ['[::1]', 80, '::1', 80],
  ];
  for (const [address, def, host, port] of good) {
    const r = parseHostPort(address, def);
    assert.ok(r.ok, `${address}: ${!r.ok ? r.reason : ''}`);
    assert.equal(r.host, host);
    assert.equal(r.port, port);
  }
  const bad: [unknown, number | undefined, RegExp][] = [
    ['web', undefined, /has no port/],
    ['::1:80', undefined, /must be in brackets/],
    ['[::1]80', undefined, /expected ":<port>"/],
    ['[::1', undefined, /without "]"/],
    ['evil/x:80', undefined, /contains "\/"/],
    ['10.0.0.1#frag', 80, /contains "#"/],
    ['web:0', undefined, /port "0"/],
    ['web:99999', undefined, /port "99999"/],
    ['web:', undefined, /port ""/],
    [42, undefined, /must be a string/],
  ];
  for (const [address, def, re] of bad) {
    const r = parseHostPort(address, def);
    assert.equal(r.ok, false, `${String(address)} accepted`);
    if (!r.ok) assert.match(r.reason, re, String(address));
  }
  assert.deepEqual(checkHostPort('web', 80), { ok: true, host: 'web', port: 80, kind: 'dns' });
  assert.equal(checkHostPort('web', '0x50').ok, false);
});
