// check=grpc, the pure parts: the Health/Check request bytes, reading a HealthCheckResponse and the
// verdict (only SERVING under grpc-status 0 is healthy), the tag syntax and its TLS from proto=.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeServingStatus, encodeHealthCheckRequest, grpcServiceNameProblem, judgeHealthAnswer } from '../../balancer/src/health/grpc-health.js';
import { buildRouteTable } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import { formatBalancerConf, parseBalancerConf } from '../../balancer/src/render/balancer-conf.js';
import type { CatalogInstance } from '../../balancer/src/routing/types.js';

/** one length-prefixed message */
const message = (...bytes: number[]): Buffer => Buffer.concat([Buffer.from([0, 0, 0, 0, bytes.length]), Buffer.from(bytes)]);

test('request: empty service is an empty message; a name is field 1', () => {
  assert.deepEqual([...encodeHealthCheckRequest('')], [0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeHealthCheckRequest('a.B')], [0, 0, 0, 0, 5, 0x0a, 3, 0x61, 0x2e, 0x42]);
  const long = encodeHealthCheckRequest('x'.repeat(200));
  assert.deepEqual([...long.subarray(0, 8)], [0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01], 'length 200 is a two-byte varint');
});

test('response status: a scenario table', () => {
  const cases: [string, Buffer, number | RegExp][] = [
    ['SERVING', message(0x08, 1), 1],
    ['NOT_SERVING', message(0x08, 2), 2],
    ['SERVICE_UNKNOWN', message(0x08, 3), 3],
    ['absent field is UNKNOWN (proto3 default)', message(), 0],
    ['unknown fields skipped', message(0x12, 2, 0x41, 0x42, 0x08, 1, 0x18, 0x96, 0x01), 1],
    ['last value of a repeated field wins', message(0x08, 2, 0x08, 1), 1],
    ['no message', Buffer.alloc(0), /no HealthCheckResponse/],
    ['compressed flag', Buffer.from([1, 0, 0, 0, 2, 0x08, 1]), /compressed/],
    ['length prefix past the body', Buffer.from([0, 0, 0, 0, 9, 0x08, 1]), /answer of 7 bytes for a message of 9/],
    ['truncated varint', message(0x08, 0x80), /malformed/],
    ['length-delimited past the end', message(0x12, 9, 1), /malformed/],
    ['wire type 3', message(0x0b), /malformed/],
  ];
  for (const [name, body, want] of cases) {
    const got = decodeServingStatus(body);
    if (typeof want === 'number') assert.equal(got, want, name);
    else assert.match(String(got), want, name);
  }
});

test('verdict: healthy only for SERVING with grpc-status 0', () => {
  const serving = message(0x08, 1);
  const base = { httpStatus: 200, grpcStatus: '0', grpcMessage: undefined, body: serving };
  assert.deepEqual(judgeHealthAnswer(base), { ok: true });
  assert.deepEqual(judgeHealthAnswer({ ...base, body: message(0x08, 2) }), { ok: false, error: 'health status NOT_SERVING' });
  assert.deepEqual(judgeHealthAnswer({ ...base, body: message() }), { ok: false, error: 'health status UNKNOWN' });
  assert.deepEqual(judgeHealthAnswer({ ...base, body: message(0x08, 3) }), { ok: false, error: 'health status SERVICE_UNKNOWN' });
  assert.deepEqual(judgeHealthAnswer({ ...base, grpcStatus: '12', grpcMessage: 'unknown service', body: Buffer.alloc(0) }), { ok: false, error: 'grpc-status 12: unknown service' });
  assert.deepEqual(judgeHealthAnswer({ ...base, grpcStatus: undefined }), { ok: false, error: 'no grpc-status in the answer' });
  assert.deepEqual(judgeHealthAnswer({ ...base, httpStatus: 503 }), { ok: false, error: 'HTTP status 503' });
});

test('service names: protobuf full names or empty', () => {
  for (const ok of ['', 'Echo', 'balancertest.Echo', 'grpc.health.v1.Health', 'a_b.C9']) assert.equal(grpcServiceNameProblem(ok), undefined, ok);
  for (const bad of ['.a', 'a.', 'a..b', 'a/b', 'a b', '9a', 'ü', 'x'.repeat(300)]) assert.ok(grpcServiceNameProblem(bad), bad);
});

function inst(service: string, tags: string[]): CatalogInstance {
  return { serviceId: `${service}-1`, service, node: 'n1', address: '127.0.0.1', port: 9001, tags, meta: {}, status: 'passing' };
}

test('tags: check=grpc and check=grpc:<service>; TLS when proto=h2, h2c otherwise; a bad name is a warning', () => {
  const { table, warnings } = buildRouteTable({
    snapshot: { services: {
      plain: [inst('plain', ['proto=grpc', 'check=grpc', 'check_interval=1s'])],
      named: [inst('named', ['proto=grpc', 'check=grpc:balancertest.Echo'])],
      secure: [inst('secure', ['proto=h2', 'check=grpc'])],
      bad: [inst('bad', ['proto=grpc', 'check=grpc:no/slash'])],
    } },
    adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS,
  });
  const { plain, named, secure, bad } = table.upstreams;
  assert.equal(plain.check?.type, 'grpc');
  assert.equal(plain.check?.grpcService, '');
  assert.equal(plain.check?.tls, false);
  assert.equal(plain.check?.intervalMs, 1000);
  assert.equal(named.check?.grpcService, 'balancertest.Echo');
  assert.equal(secure.check?.tls, true);
  assert.equal(bad.check, undefined);
  assert.ok(warnings.some((w) => w.includes('"check=grpc:no/slash"') && w.includes('protobuf full name')), warnings.join(' | '));
});

test('balancer.conf: a grpc check prints and parses back', () => {
  const { table } = buildRouteTable({
    snapshot: { services: { named: [inst('named', ['proto=grpc', 'check=grpc:balancertest.Echo'])], plain: [inst('plain', ['check=grpc', 'proto=h2'])] } },
    adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS,
  });
  const text = formatBalancerConf(table);
  assert.match(text, /check grpc:balancertest\.Echo interval=/);
  assert.match(text, /check grpc interval=/);
  const parsed = parseBalancerConf(text);
  assert.equal(parsed.upstreams.named.check?.type, 'grpc');
  assert.equal(parsed.upstreams.named.check?.grpcService, 'balancertest.Echo');
  assert.equal(parsed.upstreams.plain.check?.grpcService, '');
  assert.deepEqual(parsed.upstreams.named.check, table.upstreams.named.check, 'h2c check round trip');
  assert.deepEqual(parsed.upstreams.plain.check, table.upstreams.plain.check, 'TLS (proto h2) check round trip');
  assert.throws(() => parseBalancerConf('upstream x {\n  check grpc:a/b;\n  server 127.0.0.1:1;\n}\n'), /protobuf full name/);
});

test('tags: tls_server_name= and tls_skip_verify= (proto=h2 only) reach the upstream and its grpc check; balancer.conf prints and parses them back', () => {
  const { table, warnings } = buildRouteTable({
    snapshot: { services: {
      named: [inst('named', ['proto=h2', 'check=grpc', 'tls_server_name=API.internal'])],
      skip: [inst('skip', ['proto=h2', 'tls_skip_verify=true'])],
      strict: [inst('strict', ['proto=h2', 'tls_skip_verify=false'])],
      cleartext: [inst('cleartext', ['proto=grpc', 'tls_skip_verify=true'])],
      badname: [inst('badname', ['proto=h2', 'tls_server_name=a_b..c'])],
      badbool: [inst('badbool', ['proto=h2', 'tls_skip_verify=yes'])],
    } },
    adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS,
  });
  const u = table.upstreams;
  assert.deepEqual(u.named.serverTls, { serverName: 'api.internal' });
  assert.deepEqual(u.named.check?.serverTls, { serverName: 'api.internal' }, 'the check verifies as the traffic does');
  assert.deepEqual(u.skip.serverTls, { skipVerify: true });
  for (const n of ['strict', 'cleartext', 'badname', 'badbool']) assert.equal(u[n].serverTls, undefined, n);
  const w = warnings.join(' | ');
  assert.match(w, /service cleartext: tls_server_name= \/ tls_skip_verify= ignored: only proto=h2/);
  assert.match(w, /tag "tls_server_name=a_b\.\.c" ignored: expected a DNS name/);
  assert.match(w, /tag "tls_skip_verify=yes" ignored: expected true or false/);
  const text = formatBalancerConf(table);
  assert.match(text, /tls_server_name api\.internal;/);
  assert.match(text, /tls_skip_verify on;/);
  const parsed = parseBalancerConf(text);
  assert.deepEqual(parsed.upstreams.named.serverTls, u.named.serverTls);
  assert.deepEqual(parsed.upstreams.named.check, u.named.check);
  assert.deepEqual(parsed.upstreams.skip.serverTls, u.skip.serverTls);
  assert.throws(() => parseBalancerConf('upstream x {\n  proto h2c;\n  tls_skip_verify on;\n  server 127.0.0.1:1;\n}\n'), /need "proto h2"/);
  assert.throws(() => parseBalancerConf('upstream x {\n  proto h2;\n  tls_server_name a_b;\n  server 127.0.0.1:1;\n}\n'), /expects a DNS name/);
});
