// TCP services in the pure table build: proto=tcp / proto=tcp+sni tags, urlprefix-[name]:<port>
// listens limited to --tcp-ports, the TCP route table (port -> service, port+SNI -> service) with
// its conflict rules, and TCP services kept out of the HTTP router.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRouteTable } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS, parsePortRange, type TableDefaults } from '../../balancer/src/routing/tag-options.js';
import { compileRouter } from '../../balancer/src/routing/router.js';
import { buildTcpRoutes, serviceForName } from '../../balancer/src/l4/tcp-routes.js';
import { parseTcpUrlprefix } from '../../balancer/src/l4/tcp-tags.js';
import type { CatalogInstance, UpstreamSpec } from '../../balancer/src/routing/types.js';

const RANGE: TableDefaults = { ...DEFAULT_TABLE_DEFAULTS, tcpPorts: { from: 7000, to: 7999 } };

function inst(service: string, n: number, tags: string[]): CatalogInstance {
  return { serviceId: `${service}-${n}`, service, node: 'n', address: '127.0.0.1', port: 6000 + n, tags, meta: {}, status: 'passing' };
}

test('--tcp-ports ranges: scenario table', () => {
  const cases: [string, { from: number; to: number } | undefined][] = [
    ['7000-7999', { from: 7000, to: 7999 }], ['6379', { from: 6379, to: 6379 }], [' 1 - 65535 ', { from: 1, to: 65535 }],
    ['0-10', undefined], ['10-5', undefined], ['70000', undefined], ['a-b', undefined], ['', undefined], ['1-2-3', undefined],
  ];
  for (const [text, want] of cases) assert.deepEqual(parsePortRange(text), want, text);
});

test('urlprefix- for TCP: scenario table', () => {
  const cases: [('tcp' | 'tcp+sni'), string, unknown, RegExp?][] = [
    ['tcp', 'urlprefix-:7001', { port: 7001 }],
    ['tcp', 'urlprefix-:7001 proto=tcp', { port: 7001 }],
    ['tcp', 'urlprefix-db.example.com:7001', undefined, /routes by port only/],
    ['tcp', 'urlprefix-:0', undefined, /bad port/],
    ['tcp', 'urlprefix-:65536', undefined, /bad port/],
    ['tcp', 'urlprefix-/path', undefined, /expected urlprefix-:<port>/],
    ['tcp', 'urlprefix-:7001 strip=/x', { port: 7001 }, /"strip=\/x" not supported/],
    ['tcp+sni', 'urlprefix-DB.Example.com:7443', { port: 7443, sni: 'db.example.com' }],
    ['tcp+sni', 'urlprefix-*.example.com:7443', { port: 7443, sni: '*.example.com' }],
    ['tcp+sni', 'urlprefix-:7443', undefined, /bad server name/],
    ['tcp+sni', 'urlprefix-bad_name:7443', undefined, /bad server name/],
    ['tcp+sni', 'urlprefix-a..b:7443', undefined, /bad server name/],
  ];
  for (const [proto, tag, want, warning] of cases) {
    const warnings: string[] = [];
    assert.deepEqual(parseTcpUrlprefix('svc', proto, tag, warnings), want, tag);
    if (warning) assert.match(warnings.join('\n'), warning, tag);
    else assert.deepEqual(warnings, [], tag);
  }
});

test('proto=tcp service: listens inside --tcp-ports, no HTTP route, TCP check by default', () => {
  const defaults: TableDefaults = { ...RANGE, check: { type: 'http', path: '/health', intervalMs: 1000, timeoutMs: 500, rise: 1, fall: 1, expectStatuses: [200] } };
  const { table, warnings } = buildRouteTable({
    snapshot: { services: {
      redis: [inst('redis', 1, ['proto=tcp', 'urlprefix-:7001', 'urlprefix-:8001']), inst('redis', 2, ['proto=tcp', 'urlprefix-:7001'])],
      // fabio's in-tag option form
      pg: [inst('pg', 1, ['urlprefix-:7002 proto=tcp', 'proxy_protocol=v2'])],
      web: [inst('web', 1, ['urlprefix-/'])],
    } },
    adminUpstreams: {}, defaults,
  });
  const redis = table.upstreams.redis;
  assert.equal(redis.protocol, 'tcp');
  assert.deepEqual(redis.listen, [{ port: 7001 }]);
  assert.equal(redis.check?.type, 'tcp');
  assert.equal(redis.servers.length, 2);
  assert.equal(table.upstreams.pg.protocol, 'tcp');
  assert.equal(table.upstreams.pg.proxyProtocol, 'v2');
  assert.equal(table.upstreams.web.protocol, undefined, 'http is the absent default');
  assert.match(warnings.join('\n'), /service redis: tag "urlprefix-:8001" not served: port 8001 is outside --tcp-ports \(7000-7999\)/);
  assert.deepEqual(table.routes.map((r) => r.upstream), ['web'], 'no HTTP route from a TCP service\'s urlprefix- tags');
  const router = compileRouter(table);
  assert.equal(router.match('redis', '/')?.upstream.name, 'web', 'Host "redis" is not routed to the TCP service (falls to urlprefix-/)');
  assert.equal(router.match('web', '/')?.upstream.name, 'web');
});

test('no --tcp-ports: a TCP tag opens nothing and says why', () => {
  const { table, warnings } = buildRouteTable({
    snapshot: { services: { redis: [inst('redis', 1, ['proto=tcp', 'urlprefix-:7001'])] } }, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS,
  });
  assert.deepEqual(table.upstreams.redis.listen, []);
  assert.match(warnings.join('\n'), /outside --tcp-ports \(none allowed\)/);
  assert.equal(buildTcpRoutes(Object.values(table.upstreams), undefined).ports.size, 0);
});

test('bad proto= and proxy_protocol= values are warnings, the service stays', () => {
  const { table, warnings } = buildRouteTable({
    snapshot: { services: { x: [inst('x', 1, ['proto=udp', 'proxy_protocol=v3', 'urlprefix-/x'])] } }, adminUpstreams: {}, defaults: RANGE,
  });
  assert.equal(table.upstreams.x.protocol, undefined);
  assert.equal(table.upstreams.x.proxyProtocol, undefined);
  assert.match(warnings.join('\n'), /tag "proto=udp" ignored: expected one of http\|h2\|h2c\|grpc\|tcp\|tcp\+sni/);
  assert.match(warnings.join('\n'), /tag "proxy_protocol=v3" ignored: expected v1 or v2/);
  assert.equal(table.routes.length, 1);
});

function tcp(name: string, protocol: 'tcp' | 'tcp+sni', listen: { port: number; sni?: string }[]): UpstreamSpec {
  return { name, algorithm: 'roundrobin', servers: [], retry: DEFAULT_TABLE_DEFAULTS.retry, origin: 'consul', protocol, listen };
}

test('TCP route table: first claim by name wins, SNI ports refuse plain claims, range checked again', () => {
  const t = buildTcpRoutes([
    tcp('b-redis', 'tcp', [{ port: 7001 }]),
    tcp('a-redis', 'tcp', [{ port: 7001 }]),
    tcp('web-tls', 'tcp+sni', [{ port: 7443, sni: 'web.example.com' }]),
    tcp('api-tls', 'tcp+sni', [{ port: 7443, sni: 'api.example.com' }, { port: 7443, sni: '*.apps.example.com' }]),
    tcp('plain-on-sni', 'tcp', [{ port: 7443 }]),
    tcp('dup-name', 'tcp+sni', [{ port: 7443, sni: 'web.example.com' }]),
    tcp('outside', 'tcp', [{ port: 9000 }]),
  ], { from: 7000, to: 7999 });
  assert.deepEqual([...t.ports.keys()].sort(), [7001, 7443]);
  assert.equal(t.ports.get(7001)?.service, 'a-redis');
  const sni = t.ports.get(7443)!;
  assert.equal(serviceForName(sni, 'WEB.example.com'), 'dup-name', 'dup-name sorts before web-tls');
  assert.equal(serviceForName(sni, 'api.example.com'), 'api-tls');
  assert.equal(serviceForName(sni, 'x.apps.example.com'), 'api-tls', 'one-label wildcard');
  assert.equal(serviceForName(sni, 'y.x.apps.example.com'), undefined, 'a wildcard matches one label only');
  assert.equal(serviceForName(sni, undefined), undefined);
  const w = t.warnings.join('\n');
  assert.match(w, /tcp port 7001: claimed by a-redis and b-redis; a-redis keeps it/);
  assert.match(w, /service plain-on-sni: tcp port 7443 routes by server name/);
  assert.match(w, /tcp port 7443 name web.example.com: claimed by dup-name and web-tls; dup-name keeps it/);
  assert.match(w, /service outside: port 9000 is outside --tcp-ports/);
});

test('a plain proto=tcp claim of a --tls-listen port is refused with a warning (table build and worker route table); tcp+sni names on it stay', () => {
  const defaults: TableDefaults = { ...RANGE, tlsPorts: [7443] };
  const { table, warnings } = buildRouteTable({
    snapshot: { services: {
      plain: [inst('plain', 1, ['proto=tcp', 'urlprefix-:7443', 'urlprefix-:7001'])],
      pass: [inst('pass', 1, ['proto=tcp+sni', 'urlprefix-db.example.com:7443'])],
    } },
    adminUpstreams: {}, defaults,
  });
  assert.deepEqual(table.upstreams.plain.listen, [{ port: 7001 }], 'the TLS port is not listed');
  assert.deepEqual(table.upstreams.pass.listen, [{ port: 7443, sni: 'db.example.com' }]);
  assert.match(warnings.join('\n'), /service plain: proto=tcp port 7443 is a --tls-listen port, not served \(TLS terminates there; only proto=tcp\+sni names are passed through\)/);
  // reload mode's config names ports the table build did not check: the workers' route table refuses them too
  const t = buildTcpRoutes([tcp('plain', 'tcp', [{ port: 7443 }, { port: 7001 }]), tcp('pass', 'tcp+sni', [{ port: 7443, sni: 'db.example.com' }])], { from: 7000, to: 7999 }, [7443]);
  assert.equal(t.ports.get(7001)?.service, 'plain');
  assert.equal(t.ports.get(7443)?.service, undefined);
  assert.equal(serviceForName(t.ports.get(7443)!, 'db.example.com'), 'pass');
  assert.match(t.warnings.join('\n'), /service plain: proto=tcp port 7443 is a --tls-listen port, not served/);
  const alone = buildTcpRoutes([tcp('plain', 'tcp', [{ port: 7443 }])], { from: 7000, to: 7999 }, [7443]);
  assert.equal(alone.ports.size, 0, 'nothing to open or route on the TLS port');
});
