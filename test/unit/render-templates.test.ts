import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseBalancerConf } from '../../balancer/src/render/balancer-conf.js';
import { buildServiceEntry } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { DependencyValue, RenderData, ServiceInstanceView } from '../../balancer/src/render/dependencies.js';
import { compileTemplate } from '../../balancer/src/render/template.js';
import { repoRoot } from '../support/repo-root.js';

const root = repoRoot();
const balancerTpl = compileTemplate(readFileSync(join(root, 'templates/balancer.conf.hbs'), 'utf8'), 'balancer.conf.hbs');
const nginxTpl = compileTemplate(readFileSync(join(root, 'templates/nginx-upstreams.conf.hbs'), 'utf8'), 'nginx-upstreams.conf.hbs');

function inst(name: string, id: string, port: number, tags: string[] = []): ServiceInstanceView {
  return { ID: id, Name: name, Node: 'node1', NodeAddress: '127.0.0.1', Address: '10.1.0.1', Port: port, Tags: tags, Meta: {}, Status: 'passing' };
}

function data(): RenderData {
  const values: Record<string, DependencyValue> = {
    services: {
      kind: 'services',
      value: [
        { Name: 'api', Tags: ['lb=chash', 'hash=header:x-user', 'urlprefix-api.example.com/v1 strip=/v1'] },
        { Name: 'consul', Tags: [] },
        { Name: 'idle', Tags: [] },
        { Name: 'web', Tags: ['weight=2', 'backup'] },
      ],
    },
    'service:api': { kind: 'service', value: [inst('api', 'api-1', 9001, ['lb=chash'])] },
    'service:idle': { kind: 'service', value: [] },
    'service:web': { kind: 'service', value: [inst('web', 'web-2', 8002, ['weight=2']), inst('web', 'web-1', 8001), inst('web', 'web-3', 8003, ['backup'])] },
  };
  return { values: new Map(Object.entries(values)), env: { NGINX_LISTEN: '127.0.0.1:18080' } };
}

test('balancer.conf.hbs renders a config that parses into the expected table', () => {
  const out = balancerTpl.render(data());
  assert.equal(out.complete, true, JSON.stringify(out.missing));
  const t = parseBalancerConf(out.output);
  assert.deepEqual(Object.keys(t.upstreams), ['api', 'idle', 'web'], 'the consul service is skipped');
  assert.equal(t.upstreams.api.algorithm, 'chash');
  assert.deepEqual(t.upstreams.api.hashKey, { source: 'header', name: 'x-user' });
  assert.deepEqual(t.upstreams.idle.servers, []);
  const web = Object.fromEntries(t.upstreams.web.servers.map((s) => [s.serviceId, s]));
  assert.equal(web['web-2'].weight, 2);
  assert.equal(web['web-1'].weight, 1);
  assert.equal(web['web-3'].backup, true);
  assert.equal(web['web-1'].node, 'node1');
  assert.deepEqual(t.routes, [{ host: 'api.example.com', pathPrefix: '/v1', upstream: 'api' }]);
});

test('balancer.conf.hbs needs the services list, then each service: discovered pass by pass', () => {
  const first = balancerTpl.render({ values: new Map(), env: {} });
  assert.deepEqual(first.missing, [{ kind: 'services' }]);
  const d = data();
  const values = new Map(d.values);
  values.delete('service:web');
  const second = balancerTpl.render({ values, env: {} });
  assert.deepEqual(second.missing, [{ kind: 'service', name: 'web' }]);
});

test('nginx-upstreams.conf.hbs: upstream per service with keepalive, placeholder down server when empty, Host map, listen from env', () => {
  const out = nginxTpl.render(data());
  assert.equal(out.complete, true);
  const text = out.output;
  assert.match(text, /upstream web \{\n  server 10\.1\.0\.1:8001 weight=1 max_fails=1 fail_timeout=10s;\n  server 10\.1\.0\.1:8002 weight=2 max_fails=1 fail_timeout=10s;\n  server 10\.1\.0\.1:8003 weight=1 max_fails=1 fail_timeout=10s backup;\n  keepalive 32;\n\}/);
  assert.match(text, /upstream idle \{\n(?:  #[^\n]*\n)?  server 127\.0\.0\.1:9 down;\n  keepalive 32;\n\}/);
  assert.doesNotMatch(text, /upstream consul/);
  assert.match(text, /map \$host \$balancer_upstream \{\n  hostnames;\n  default "";\n  api api;\n  idle idle;\n  web web;\n\}/);
  assert.match(text, /listen 127\.0\.0\.1:18080;/);
  assert.match(text, /proxy_pass http:\/\/\$balancer_upstream;/);
  // braces balance: nginx would refuse the file otherwise
  assert.equal((text.match(/\{/g) ?? []).length, (text.match(/\}/g) ?? []).length);
});

test('balancer.conf.hbs lists warning instances only when BALANCER_HEALTH_FILTER asks for them', () => {
  const base = data();
  const values = new Map(base.values);
  values.set('service:web', { kind: 'service', value: [inst('web', 'web-1', 8001), { ...inst('web', 'web-w', 8009), Status: 'warning' }] });
  const strict = parseBalancerConf(balancerTpl.render({ values, env: {} }).output);
  assert.deepEqual(strict.upstreams.web.servers.map((s) => s.port), [8001]);
  const lenient = parseBalancerConf(balancerTpl.render({ values, env: { BALANCER_HEALTH_FILTER: 'passing,warning' } }).output);
  assert.deepEqual(lenient.upstreams.web.servers.map((s) => s.port), [8001, 8009]);
});

test('balancer.conf.hbs: proto=tcp and tcp+sni services render proto, listen and proxy_protocol as dynamic mode reads the tags, and no HTTP route', () => {
  const redisTags = ['proto=tcp', 'urlprefix-:6379', 'proxy_protocol=v1', 'lb=leastconn'];
  const sniTags = ['urlprefix-db.example.com:6443 proto=tcp+sni', 'urlprefix-*.db.example.com:6443 proto=tcp+sni'];
  const values: Record<string, DependencyValue> = {
    services: { kind: 'services', value: [{ Name: 'db', Tags: sniTags }, { Name: 'redis', Tags: redisTags }, { Name: 'web', Tags: ['urlprefix-/web'] }] },
    'service:db': { kind: 'service', value: [inst('db', 'db-1', 7443, sniTags)] },
    'service:redis': { kind: 'service', value: [inst('redis', 'redis-1', 7379, redisTags), inst('redis', 'redis-2', 7380, redisTags)] },
    'service:web': { kind: 'service', value: [inst('web', 'web-1', 8001, ['urlprefix-/web'])] },
  };
  const out = balancerTpl.render({ values: new Map(Object.entries(values)), env: {} });
  assert.equal(out.complete, true);
  assert.match(out.output, /upstream redis \{\n {2}lb leastconn;\n {2}proto tcp;\n {2}listen 6379;\n {2}proxy_protocol v1;\n/);
  assert.match(out.output, /upstream db \{\n {2}proto tcp\+sni;\n {2}listen \*\.db\.example\.com:6443;\n {2}listen db\.example\.com:6443;\n/);
  const t = parseBalancerConf(out.output);
  const tcpInstance = (name: string, id: string, port: number, tags: string[]) => ({ service: name, serviceId: id, address: '10.1.0.1', port, tags, meta: {}, status: 'passing' as const, node: 'node1' });
  const dynamic = {
    redis: buildServiceEntry('redis', [tcpInstance('redis', 'redis-1', 7379, redisTags), tcpInstance('redis', 'redis-2', 7380, redisTags)], { ...DEFAULT_TABLE_DEFAULTS, tcpPorts: { from: 1, to: 65535 } }).upstream,
    db: buildServiceEntry('db', [tcpInstance('db', 'db-1', 7443, sniTags)], { ...DEFAULT_TABLE_DEFAULTS, tcpPorts: { from: 1, to: 65535 } }).upstream,
  };
  for (const name of ['redis', 'db'] as const) {
    const pick = (u: typeof t.upstreams.x) => ({ protocol: u.protocol, listen: u.listen, proxyProtocol: u.proxyProtocol, algorithm: u.algorithm, servers: u.servers.map((s) => s.id) });
    assert.deepEqual(pick(t.upstreams[name]), pick(dynamic[name]), `${name}: reload mode and dynamic mode read the tags alike`);
  }
  assert.deepEqual(t.routes, [{ host: '', pathPrefix: '/web', upstream: 'web' }], 'a TCP service has no HTTP route');
  assert.deepEqual(out.warnings, []);
});

test('balancer.conf.hbs: allow=, deny=, rate=, burst=, rate_by= render as the upstream\'s access rules and rate limit, as dynamic mode reads the tags', () => {
  const webTags = ['allow=ip:10.0.0.0/8, ip:fe80::/10', 'deny=ip:10.9.9.9', 'rate=6000/m', 'burst=20', 'rate_by=header:X-User'];
  const dbTags = ['proto=tcp', 'urlprefix-:6379', 'deny=ip:127.0.0.3', 'rate=2.5/s'];
  const badTags = ['allow=10.0.0.0/8', 'rate=fast', 'burst=5'];
  const values: Record<string, DependencyValue> = {
    services: { kind: 'services', value: [{ Name: 'bad', Tags: badTags }, { Name: 'db', Tags: dbTags }, { Name: 'web', Tags: webTags }] },
    'service:bad': { kind: 'service', value: [inst('bad', 'bad-1', 8100, badTags)] },
    'service:db': { kind: 'service', value: [inst('db', 'db-1', 7379, dbTags)] },
    'service:web': { kind: 'service', value: [inst('web', 'web-1', 8001, webTags)] },
  };
  const out = balancerTpl.render({ values: new Map(Object.entries(values)), env: {} });
  assert.equal(out.complete, true);
  assert.match(out.output, /upstream web \{\n(?: {2}[^\n]*\n)* {2}allow ip:10\.0\.0\.0\/8,ip:fe80::\/10;\n {2}deny ip:10\.9\.9\.9;\n {2}rate 6000\/m;\n {2}burst 20;\n {2}rate_by header:x-user;\n/);
  const t = parseBalancerConf(out.output);
  const instance = (name: string, id: string, port: number, tags: string[]) => ({ service: name, serviceId: id, address: '10.1.0.1', port, tags, meta: {}, status: 'passing' as const, node: 'node1' });
  const defaults = { ...DEFAULT_TABLE_DEFAULTS, tcpPorts: { from: 1, to: 65535 } };
  for (const [name, tags, port] of [['web', webTags, 8001], ['db', dbTags, 7379], ['bad', badTags, 8100]] as const) {
    const dynamic = buildServiceEntry(name, [instance(name, `${name}-1`, port, [...tags])], defaults).upstream;
    const pick = (u: typeof t.upstreams.x) => ({ access: u.policy?.access, rateLimit: u.policy?.rateLimit });
    assert.deepEqual(pick(t.upstreams[name]), pick(dynamic), `${name}: reload mode and dynamic mode read the policy tags alike`);
  }
  assert.deepEqual(t.upstreams.web.policy?.rateLimit, { ratePerSecond: 100, burst: 20, by: { source: 'header', name: 'x-user' } });
  assert.deepEqual(t.upstreams.db.policy?.rateLimit, { ratePerSecond: 2.5, burst: 3, by: { source: 'ip' } });
  assert.equal(t.upstreams.bad.policy, undefined, 'bad values are dropped, not rendered');
  assert.ok(out.warnings.some((w) => w.includes('allow=10.0.0.0/8')), out.warnings.join('\n'));
  assert.ok(out.warnings.some((w) => w.includes('rate=fast')), out.warnings.join('\n'));
});
