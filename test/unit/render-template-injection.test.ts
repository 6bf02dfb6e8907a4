// Reload mode and the nginx template never paste Consul text verbatim (issue 12 item 6): a tag with
// "#", ";", "}" or spaces cannot break or extend the rendered config; a value that cannot be written
// safely drops that tag (or instance, or service) with a warning naming it, and everything else of
// the same service and of its siblings is still rendered. The output parses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBalancerConf } from '../../balancer/src/render/balancer-conf.js';
import type { DependencyValue, RenderData, ServiceInstanceView } from '../../balancer/src/render/dependencies.js';
import { shippedTemplate } from '../support/repo-templates.js';

const balancerTpl = shippedTemplate('balancer.conf.hbs');
const nginxTpl = shippedTemplate('nginx-upstreams.conf.hbs');

function inst(name: string, id: string, port: number, tags: string[] = [], extra: Partial<ServiceInstanceView> = {}): ServiceInstanceView {
  return { ID: id, Name: name, Node: 'node1', NodeAddress: '127.0.0.1', Address: '10.1.0.1', Port: port, Tags: tags, Meta: {}, Status: 'passing', ...extra };
}

const INJECT = 'lb=wrr; } upstream evil { server 6.6.6.6:80';

function hostileData(): RenderData {
  const values: Record<string, DependencyValue> = {
    services: {
      kind: 'services',
      value: [
        { Name: 'api', Tags: ['lb=chash', 'hash=header:x-user'] },
        { Name: 'web', Tags: [INJECT, 'urlprefix-/a#b', 'urlprefix-/ok', 'max_fails=3', 'retries=x; server 6.6.6.6:81', 'hash=header:a b'] },
        { Name: 'bad name;', Tags: [] },
      ],
    },
    'service:api': { kind: 'service', value: [inst('api', 'api-1', 9001)] },
    'service:web': {
      kind: 'service',
      value: [
        inst('web', 'web-1', 8001, ['weight=2; server 6.6.6.6:82']),
        inst('web', 'web-2', 8002, [], { Address: '10.0.0.1; server 6.6.6.6:83' }),
        inst('web', 'web-3', 8003, [], { Node: 'n 1 } upstream evil {', ID: 'web-3#x' }),
        inst('web', 'web-4', 8004, [], { Address: '::1' }),
      ],
    },
  };
  return { values: new Map(Object.entries(values)), env: {} };
}

test('balancer.conf.hbs: hostile tags and fields are dropped with warnings, the rest renders and parses', () => {
  const out = balancerTpl.render(hostileData());
  assert.equal(out.complete, true);
  assert.doesNotMatch(out.output, /6\.6\.6\.6|evil|#b/, out.output);
  const t = parseBalancerConf(out.output);
  assert.deepEqual(Object.keys(t.upstreams).sort(), ['api', 'web']);
  const web = t.upstreams.web;
  assert.equal(web.algorithm, 'roundrobin', 'the injected lb= is dropped, not half-applied');
  assert.equal(web.servers.find((s) => s.port === 8001)?.weight, 1, 'a bad weight falls back to 1');
  assert.deepEqual(web.servers.map((s) => s.port).sort(), [8001, 8003, 8004], 'the instance with a bad address is left out, its siblings kept');
  assert.equal(web.servers.find((s) => s.port === 8004)?.host, '::1');
  assert.equal(web.servers.find((s) => s.port === 8003)?.node, undefined, 'an unsafe node name is dropped, the server kept');
  assert.equal(t.upstreams.api.algorithm, 'chash', 'the sibling keeps its options');
  assert.deepEqual(t.routes.map((r) => r.pathPrefix), ['/ok']);
  const w = out.warnings.join('\n');
  for (const needle of ['lb=wrr; }', 'retries=x', 'weight=2;', '"urlprefix-/a#b" dropped', '10.0.0.1; server', '"bad name;"', 'n 1 }', 'hash=header:a b']) {
    assert.ok(w.includes(needle), `a warning names ${needle}:\n${w}`);
  }
});

test('nginx-upstreams.conf.hbs: the same hostile data cannot add servers or blocks', () => {
  const out = nginxTpl.render(hostileData());
  assert.equal(out.complete, true);
  assert.doesNotMatch(out.output, /6\.6\.6\.6|evil/);
  const upstreams = [...out.output.matchAll(/^upstream (\S+) \{$/gm)].map((m) => m[1]);
  assert.deepEqual(upstreams, ['api', 'web']);
  assert.match(out.output, /server \[::1\]:8004 weight=1/);
  assert.match(out.output, /server 10\.1\.0\.1:8001 weight=1 /);
  // braces balance and every statement line inside an upstream ends with ";"
  assert.equal((out.output.match(/\{/g) ?? []).length, (out.output.match(/\}/g) ?? []).length);
});

test('well-behaved values render exactly as before', () => {
  const values = new Map<string, DependencyValue>(Object.entries({
    services: { kind: 'services', value: [{ Name: 'web', Tags: ['lb=wrr', 'fail_timeout=5s', 'urlprefix-web.example.com/api x=y'] }] },
    'service:web': { kind: 'service', value: [inst('web', 'web-1', 8001, ['weight=3', 'backup'])] },
  }) as [string, DependencyValue][]);
  const out = balancerTpl.render({ values, env: {} });
  assert.deepEqual(out.warnings, []);
  const t = parseBalancerConf(out.output);
  assert.equal(t.upstreams.web.algorithm, 'wrr');
  assert.equal(t.upstreams.web.servers[0].failTimeoutMs, 5000);
  assert.equal(t.upstreams.web.servers[0].weight, 3);
  assert.equal(t.upstreams.web.servers[0].backup, true);
  assert.equal(t.upstreams.web.servers[0].node, 'node1');
  assert.deepEqual(t.routes, [{ host: 'web.example.com', pathPrefix: '/api', upstream: 'web' }]);
});

// The registrator now registers every tag Consul takes (gliderlabs' "/(;,:-_)/" among them), so these
// reach the renderers as given: tags no renderer reads are ignored, never pasted, and never cost the
// service or its options; an option tag whose value cannot be written is dropped with a warning.
const AS_REGISTERED = ['/(;,:-_)/', 'a;b', 'x#y', '"quoted"', "it's", '{braces}', 'back\\slash', 'has space', 'tab\there'];

test('tags registered as given (gliderlabs examples and worse) render safely: the service, its servers and options are kept', () => {
  const values = new Map<string, DependencyValue>(Object.entries({
    services: { kind: 'services', value: [{ Name: 'db', Tags: [...AS_REGISTERED, 'lb=wrr', 'max_fails=2'] }] },
    'service:db': { kind: 'service', value: [inst('db', 'db-1', 10000, [...AS_REGISTERED, 'weight=3']), inst('db', 'db-2', 10001, ['/(;,:-_)/'])] },
  }) as [string, DependencyValue][]);
  const out = balancerTpl.render({ values, env: {} });
  assert.equal(out.complete, true);
  assert.deepEqual(out.warnings, [], 'tags no renderer reads are not even warned about');
  for (const t of AS_REGISTERED) assert.ok(!out.output.includes(t), `${JSON.stringify(t)} is not pasted:\n${out.output}`);
  const t = parseBalancerConf(out.output);
  assert.deepEqual(Object.keys(t.upstreams), ['db']);
  assert.equal(t.upstreams.db.algorithm, 'wrr');
  assert.deepEqual(t.upstreams.db.servers.map((s) => [s.port, s.weight, s.maxFails]), [[10000, 3, 2], [10001, 1, 2]]);

  const nginx = nginxTpl.render({ values, env: {} });
  assert.equal(nginx.complete, true);
  assert.deepEqual([...nginx.output.matchAll(/^upstream (\S+) \{$/gm)].map((m) => m[1]), ['db']);
  assert.match(nginx.output, /server 10\.1\.0\.1:10000 weight=3 /);
  for (const tag of AS_REGISTERED) assert.ok(!nginx.output.includes(tag), `${JSON.stringify(tag)} is not pasted into nginx`);

  // an option tag holding such text: that option is dropped with a warning naming it, the rest kept
  const hostile = new Map(values);
  hostile.set('services', { kind: 'services', value: [{ Name: 'db', Tags: ['lb=wrr;', 'max_fails=2'] }] });
  const bad = balancerTpl.render({ values: hostile, env: {} });
  assert.ok(bad.warnings.some((w) => w.includes('"lb=wrr;"')), bad.warnings.join(' | '));
  const bt = parseBalancerConf(bad.output);
  assert.equal(bt.upstreams.db.algorithm, 'roundrobin');
  assert.equal(bt.upstreams.db.servers[0].maxFails, 2);
});
