// PROXY protocol v1/v2 (HAProxy proxy-protocol.txt), pure: byte-exact encodings, decoding of both
// versions in pieces, and malformed headers refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProxyHeader, encodeV1, encodeV2, V2_SIGNATURE } from '../../balancer/src/l4/proxy-protocol.js';

test('v1: the spec\'s example line, TCP6, UNKNOWN for mixed families; IPv4-mapped sources as IPv4', () => {
  assert.equal(encodeV1({ source: '192.168.0.1', sourcePort: 56324, destination: '192.168.0.11', destinationPort: 443 }).toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  assert.equal(encodeV1({ source: '::ffff:10.0.0.2', sourcePort: 1, destination: '10.0.0.1', destinationPort: 2 }).toString('latin1'), 'PROXY TCP4 10.0.0.2 10.0.0.1 1 2\r\n');
  assert.equal(encodeV1({ source: 'fe80::1', sourcePort: 1, destination: '::1', destinationPort: 2 }).toString('latin1'), 'PROXY TCP6 fe80::1 ::1 1 2\r\n');
  assert.equal(encodeV1({ source: '10.0.0.1', sourcePort: 1, destination: '::1', destinationPort: 2 }).toString('latin1'), 'PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n', 'mixed families: IPv4-mapped');
  assert.equal(encodeV1({ source: 'nope', sourcePort: 1, destination: '::1', destinationPort: 2 }).toString('latin1'), 'PROXY UNKNOWN\r\n');
});

test('v2: signature, version/command, family, length, addresses and ports in network order', () => {
  const v4 = encodeV2({ source: '192.168.0.1', sourcePort: 56324, destination: '192.168.0.11', destinationPort: 443 });
  assert.deepEqual([...v4], [
    ...V2_SIGNATURE, 0x21, 0x11, 0x00, 0x0c, 192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb,
  ]);
  assert.equal(V2_SIGNATURE.toString('latin1'), '\r\n\r\n\0\r\nQUIT\n');
  const v6 = encodeV2({ source: '2001:db8::1', sourcePort: 1, destination: '::1', destinationPort: 2 });
  assert.equal(v6[13], 0x21);
  assert.equal(v6.readUInt16BE(14), 36);
  assert.equal(v6.length, 16 + 36);
  const local = encodeV2({ source: '', sourcePort: 1, destination: '::1', destinationPort: 2 });
  assert.deepEqual([...local.subarray(12)], [0x20, 0x00, 0x00, 0x00], 'LOCAL, UNSPEC, no addresses');
});

test('decode: both versions round trip, in any prefix need-more, the payload after the header is not eaten', () => {
  const addrs = { source: '203.0.113.7', sourcePort: 40000, destination: '198.51.100.1', destinationPort: 6379 };
  for (const enc of [encodeV1, encodeV2]) {
    const header = enc(addrs);
    const withData = Buffer.concat([header, Buffer.from('PING\r\n')]);
    assert.deepEqual(decodeProxyHeader(withData), { state: 'done', header: { kind: 'proxy', addresses: addrs }, length: header.length });
    for (let n = 0; n < header.length; n++) assert.equal(decodeProxyHeader(withData.subarray(0, n)).state, 'need-more', `${enc.name} prefix ${n}`);
  }
  const v6 = { source: '2001:db8::7', sourcePort: 1, destination: 'fe80::1', destinationPort: 2 };
  assert.deepEqual(decodeProxyHeader(encodeV2(v6)), { state: 'done', header: { kind: 'proxy', addresses: v6 }, length: 52 });
  assert.deepEqual(decodeProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { state: 'done', header: { kind: 'unknown' }, length: 15 });
  assert.deepEqual(decodeProxyHeader(encodeV2({ source: '', sourcePort: 1, destination: '::1', destinationPort: 1 })), { state: 'done', header: { kind: 'local' }, length: 16 });
});

test('decode: malformed headers are bad', () => {
  const bad = [
    'GET / HTTP/1.1\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n',
    'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', `PROXY TCP4 ${'1'.repeat(120)}`,
  ];
  for (const text of bad) assert.equal(decodeProxyHeader(Buffer.from(text, 'latin1')).state, 'bad', JSON.stringify(text));
  const v2 = encodeV2({ source: '1.2.3.4', sourcePort: 1, destination: '5.6.7.8', destinationPort: 2 });
  const wrongVersion = Buffer.from(v2);
  wrongVersion[12] = 0x11;
  assert.equal(decodeProxyHeader(wrongVersion).state, 'bad');
  const wrongCmd = Buffer.from(v2);
  wrongCmd[12] = 0x22;
  assert.equal(decodeProxyHeader(wrongCmd).state, 'bad');
  const short = Buffer.from(v2);
  short.writeUInt16BE(8, 14);
  assert.equal(decodeProxyHeader(short).state, 'bad');
});

test('accept preamble: a trusted peer must open with a header; another peer opening with one is refused, anything else passes', async () => {
  const { classifyPreamble } = await import('../../balancer/src/proxy/proxy-protocol-accept.js');
  const v1 = encodeV1({ source: '203.0.113.7', sourcePort: 1, destination: '127.0.0.1', destinationPort: 80 });
  const get = Buffer.from('GET / HTTP/1.1\r\n\r\n');
  const rows: [string, Buffer, boolean, string][] = [
    ['trusted v1 + request', Buffer.concat([v1, get]), true, `done:${v1.length}`],
    ['trusted v1 prefix', v1.subarray(0, 10), true, 'need-more'],
    ['trusted, no header', get, true, 'bad'],
    ['trusted, TLS hello', Buffer.from([0x16, 0x03, 0x01]), true, 'bad'],
    ['untrusted v1', Buffer.concat([v1, get]), false, 'bad'],
    ['untrusted v2 signature', V2_SIGNATURE, false, 'bad'],
    ['untrusted "PROX"', Buffer.from('PROX'), false, 'need-more'],
    ['untrusted POST', Buffer.from('POST / HTTP/1.1\r\n'), false, 'done:0'],
    ['untrusted PROPFIND (WebDAV)', Buffer.from('PROPFIND / HTTP/1.1\r\n'), false, 'done:0'],
    ['untrusted leading CRLF then GET', Buffer.from('\r\nGET'), false, 'done:0'],
    ['untrusted TLS hello', Buffer.from([0x16, 0x03, 0x01]), false, 'done:0'],
    ['untrusted h2 preface', Buffer.from('PRI * HTTP/2.0\r\n'), false, 'done:0'],
  ];
  for (const [name, bytes, trusted, want] of rows) {
    const v = classifyPreamble(bytes, trusted);
    const got = v.state === 'done' ? `done:${v.consumed ?? 0}` : v.state;
    assert.equal(got, want, name);
  }
});
