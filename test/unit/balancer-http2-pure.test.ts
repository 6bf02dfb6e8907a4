// The pure parts of the HTTP/2 side: request head rules (RFC 9113 section 8.2-8.3) and their
// HTTP/1.1 meaning, the h2c preface classifier, the reset budget, gRPC status mapping and grpc-timeout.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isRefusal, parseHttp2RequestHead } from '../../balancer/src/proxy/http2/request-head.js';
import { classifyClientPreface } from '../../balancer/src/proxy/http2/client-preface.js';
import { ResetBudget } from '../../balancer/src/proxy/http2/reset-budget.js';
import { encodeGrpcMessage, grpcStatusOf, parseGrpcTimeout } from '../../balancer/src/proxy/http2/grpc-status.js';

const base = [':method', 'GET', ':scheme', 'https', ':authority', 'App.example:8443', ':path', '/a?b'];

describe('HTTP/2 request head', () => {
  it('translates to an HTTP/1.1 head: host first, cookies joined, te: trailers noted and dropped', () => {
    const h = parseHttp2RequestHead([...base, 'cookie', 'a=1', 'accept', '*/*', 'cookie', 'b=2', 'te', 'trailers', 'content-type', 'application/grpc+proto']);
    assert.ok(!isRefusal(h));
    assert.equal(h.method, 'GET');
    assert.equal(h.target, '/a?b');
    assert.deepEqual(h.rawHeaders, ['host', 'App.example:8443', 'accept', '*/*', 'content-type', 'application/grpc+proto', 'cookie', 'a=1; b=2']);
    assert.equal(h.acceptsTrailers, true);
    assert.equal(h.grpc, true);
  });
  const refused: [string, string[]][] = [
    ['connection', [...base, 'connection', 'close']],
    ['keep-alive', [...base, 'keep-alive', '5']],
    ['transfer-encoding', [...base, 'transfer-encoding', 'chunked']],
    ['upgrade', [...base, 'upgrade', 'websocket']],
    ['te gzip', [...base, 'te', 'gzip']],
    ['host differs', [...base, 'host', 'other.example']],
    ['no :path', [':method', 'GET', ':scheme', 'http', ':authority', 'a']],
    ['no :method', [':scheme', 'http', ':authority', 'a', ':path', '/']],
    ['no :scheme', [':method', 'GET', ':authority', 'a', ':path', '/']],
    ['no authority, no host', [':method', 'GET', ':scheme', 'http', ':path', '/']],
    ['pseudo after regular', [':method', 'GET', ':scheme', 'http', 'accept', '*/*', ':authority', 'a', ':path', '/']],
    ['two :path', [...base, ':path', '/b']],
    ['unknown pseudo', [...base.slice(0, 6), ':protocol', 'websocket', ':path', '/']],
    ['upper-case name', [...base, 'Accept', '*/*']],
    ['CONNECT', [':method', 'CONNECT', ':authority', 'a:443']],
    ['absolute :path', [':method', 'GET', ':scheme', 'http', ':authority', 'a', ':path', 'http://a/']],
    ['userinfo in authority', [':method', 'GET', ':scheme', 'http', ':authority', 'u@a', ':path', '/']],
    ['space in authority', [':method', 'GET', ':scheme', 'http', ':authority', 'a b', ':path', '/']],
    // proxy/authority.ts's rule, as for Host: sub-delims, percent-escapes, empty labels, port 0 or past 65535
    ['sub-delims in authority', [':method', 'GET', ':scheme', 'http', ':authority', 'a,b', ':path', '/']],
    ['percent-escape in authority', [':method', 'GET', ':scheme', 'http', ':authority', 'a%41', ':path', '/']],
    ['empty label in authority', [':method', 'GET', ':scheme', 'http', ':authority', 'a..b', ':path', '/']],
    ['port 0', [':method', 'GET', ':scheme', 'http', ':authority', 'a:0', ':path', '/']],
    ['port 99999', [':method', 'GET', ':scheme', 'http', ':authority', 'a:99999', ':path', '/']],
  ];
  for (const [name, raw] of refused) it(`refuses: ${name}`, () => assert.ok(isRefusal(parseHttp2RequestHead(raw))));
  it('a Host equal to :authority, or Host alone, is fine', () => {
    assert.ok(!isRefusal(parseHttp2RequestHead([...base, 'host', 'app.example:8443'])));
    const h = parseHttp2RequestHead([':method', 'GET', ':scheme', 'http', ':path', '/', 'host', 'h.example']);
    assert.ok(!isRefusal(h) && h.rawHeaders[1] === 'h.example');
  });
  it('application/grpc-web is not gRPC; application/grpc;charset is', () => {
    const a = parseHttp2RequestHead([...base, 'content-type', 'application/grpc-web']);
    const b = parseHttp2RequestHead([...base, 'content-type', 'application/grpc;x=1']);
    assert.ok(!isRefusal(a) && !a.grpc);
    assert.ok(!isRefusal(b) && b.grpc);
  });
});

describe('h2c preface classifier (for proxy/accept-peek.ts)', () => {
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const h2 = { state: 'done', value: 'h2' };
  const http1 = { state: 'done', value: 'http1' };
  const more = { state: 'need-more' };
  it('classifies', () => {
    const cases: [Buffer, object][] = [
      [preface, h2],
      [Buffer.concat([preface, Buffer.from([0, 0, 0, 4])]), h2],
      [preface.subarray(0, 5), more],
      [Buffer.from('GET / HTTP/1.1\r\n'), http1],
      [Buffer.from('PRI * HTTP/1.1'), http1],
      [Buffer.from('P'), more],
    ];
    for (const [bytes, want] of cases) assert.deepEqual(classifyClientPreface(bytes), want, JSON.stringify(bytes.toString('latin1')));
  });
});

describe('reset budget', () => {
  it('allows the burst, then the rate', () => {
    const b = new ResetBudget(3, 10, 0);
    assert.deepEqual([b.take(0), b.take(0), b.take(0), b.take(0)], [true, true, true, false]);
    assert.equal(b.take(50), false, 'half a token after 50 ms at 10/s');
    assert.equal(b.take(100), true, 'one token after 100 ms');
    assert.equal(b.take(100_000), true);
    assert.deepEqual([b.take(100_000), b.take(100_000), b.take(100_000)], [true, true, false], 'refill stops at the burst');
  });
});

describe('gRPC mapping', () => {
  it('maps proxy errors and HTTP statuses', () => {
    assert.equal(grpcStatusOf('no_healthy_upstream', 502), 14);
    assert.equal(grpcStatusOf('unknown_host', 404), 12);
    assert.equal(grpcStatusOf('upstream_timeout', 504), 4);
    assert.equal(grpcStatusOf('forbidden', 403), 7);
    assert.equal(grpcStatusOf('rate_limited', 429), 14);
    assert.equal(grpcStatusOf('whatever', 418), 2);
  });
  it('percent-encodes grpc-message', () => assert.equal(encodeGrpcMessage('50% é\n'), '50%25 %C3%A9%0A'));
  it('parses grpc-timeout', () => {
    assert.equal(parseGrpcTimeout('1S'), 1000);
    assert.equal(parseGrpcTimeout('250m'), 250);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('1500u'), 2);
    assert.equal(parseGrpcTimeout('123456789S'), undefined, 'at most 8 digits');
    assert.equal(parseGrpcTimeout('1s'), undefined);
    assert.equal(parseGrpcTimeout(undefined), undefined);
  });
});
