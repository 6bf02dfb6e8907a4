import { test } from 'node:test';
import assert from 'node:assert/strict';
import { depKey, type DependencyValue, type RenderData, type ServiceInstanceView } from '../../balancer/src/render/dependencies.js';
import { parseServiceQuery } from '../../balancer/src/render/helpers.js';
import { compileTemplate, TemplateError } from '../../balancer/src/render/template.js';

function inst(id: string, port: number, extra: Partial<ServiceInstanceView> = {}): ServiceInstanceView {
  return { ID: id, Name: 'web', Node: 'n1', NodeAddress: '10.0.0.9', Address: '10.0.0.1', Port: port, Tags: [], Meta: {}, Status: 'passing', ...extra };
}

function data(values: Record<string, DependencyValue>, env: Record<string, string> = {}): RenderData {
  return { values: new Map(Object.entries(values)), env };
}

const WEB = [
  inst('web-3', 8083, { Tags: ['v2', 'weight=3'] }),
  inst('web-1', 8081, { Tags: ['v1'] }),
  inst('web-2', 8082, { Tags: ['v1', 'v2'], Status: 'critical' }),
  inst('web-4', 8084, { Status: 'warning' }),
];

function render(src: string, d: RenderData) {
  return compileTemplate(src, 't').render(d);
}

test('services lists catalog services and records the dependency', () => {
  const out = render('{{#each (services)}}{{Name}}[{{join Tags ","}}] {{/each}}', data({
    services: { kind: 'services', value: [{ Name: 'api', Tags: [] }, { Name: 'web', Tags: ['a', 'b'] }] },
  }));
  assert.equal(out.output, 'api[] web[a,b] ');
  assert.deepEqual(out.deps, [{ kind: 'services' }]);
  assert.equal(out.complete, true);
});

test('a dependency without data makes the render incomplete and is reported missing', () => {
  const out = render('{{#each (services)}}{{#each (service Name)}}{{Port}}{{/each}}{{/each}}', data({}));
  assert.equal(out.complete, false);
  assert.deepEqual(out.missing, [{ kind: 'services' }]);
});

test('nested service calls are discovered from the services answer', () => {
  const out = render('{{#each (services)}}{{#each (service Name)}}{{ID}} {{/each}}{{/each}}', data({
    services: { kind: 'services', value: [{ Name: 'web', Tags: [] }] },
  }));
  assert.deepEqual(out.missing, [{ kind: 'service', name: 'web' }]);
});

test('service defaults to passing instances only', () => {
  const out = render('{{#each (service "web")}}{{ID}} {{/each}}', data({ 'service:web': { kind: 'service', value: WEB } }));
  assert.equal(out.output, 'web-3 web-1 ');
});

test('service health filter: "any", pipe form, comma list and positional form', () => {
  const d = data({ 'service:web': { kind: 'service', value: WEB } });
  assert.equal(render('{{#each (service "web|any")}}{{ID}} {{/each}}', d).output, 'web-3 web-1 web-2 web-4 ');
  assert.equal(render('{{#each (service "web" "any")}}{{ID}} {{/each}}', d).output, 'web-3 web-1 web-2 web-4 ');
  assert.equal(render('{{#each (service "web|passing,warning")}}{{ID}} {{/each}}', d).output, 'web-3 web-1 web-4 ');
  assert.equal(render('{{#each (service "web" filter="critical")}}{{ID}} {{/each}}', d).output, 'web-2 ');
});

test('service tag filter: "tag.name" form and tag= hash argument query Consul by tag', () => {
  const d = data({ 'service:web:v1': { kind: 'service', value: [inst('web-1', 8081, { Tags: ['v1'] })] } });
  const a = render('{{#each (service "v1.web")}}{{ID}}{{/each}}', d);
  assert.equal(a.output, 'web-1');
  assert.deepEqual(a.deps, [{ kind: 'service', name: 'web', tag: 'v1' }]);
  const b = render('{{#each (service "web" tag="v1")}}{{ID}}{{/each}}', d);
  assert.equal(b.output, 'web-1');
  assert.equal(depKey(b.deps[0]), 'service:web:v1');
});

test('parseServiceQuery rejects bad specs', () => {
  assert.throws(() => parseServiceQuery('web|any,passing'), /cannot be combined/);
  assert.throws(() => parseServiceQuery('web|bogus'), /unknown health filter/);
  assert.throws(() => parseServiceQuery('web@dc2'), /datacenters/);
  assert.throws(() => parseServiceQuery(''), /expected a service name/);
  assert.deepEqual(parseServiceQuery('a.b.web'), { name: 'web', tag: 'a.b', statuses: ['passing'] });
});

test('key renders the value; an absent key blocks the render (consul-template semantics)', () => {
  assert.equal(render('x={{key "cfg/x"}}', data({ 'key:cfg/x': { kind: 'key', value: '42' } })).output, 'x=42');
  const absent = render('x={{key "cfg/x"}}', data({ 'key:cfg/x': { kind: 'key', value: null } }));
  assert.equal(absent.complete, false);
  assert.deepEqual(absent.absentKeys, ['cfg/x']);
  assert.equal(render('x={{key "/cfg/x"}}', data({})).missing[0].kind, 'key');
});

test('keyOrDefault falls back when the key is absent', () => {
  assert.equal(render('{{keyOrDefault "a" "dflt"}}', data({ 'key:a': { kind: 'key', value: null } })).output, 'dflt');
  assert.equal(render('{{keyOrDefault "a" "dflt"}}', data({ 'key:a': { kind: 'key', value: 'v' } })).output, 'v');
  const r = render('{{keyOrDefault "a" "dflt"}}', data({ 'key:a': { kind: 'key', value: null } }));
  assert.equal(r.complete, true);
});

test('ls lists the top level of a prefix, tree everything below it, folders skipped', () => {
  const d = data({
    'prefix:cfg/': {
      kind: 'prefix',
      value: [
        { Key: 'a', Path: 'cfg/a', Value: '1' },
        { Key: 'sub/', Path: 'cfg/sub/', Value: '' },
        { Key: 'sub/b', Path: 'cfg/sub/b', Value: '2' },
      ],
    },
  });
  assert.equal(render('{{#each (ls "cfg")}}{{Key}}={{Value}};{{/each}}', d).output, 'a=1;');
  assert.equal(render('{{#each (tree "/cfg/")}}{{Key}}={{Value}};{{/each}}', d).output, 'a=1;sub/b=2;');
});

test('env and envOrDefault read the injected environment', () => {
  const d = data({}, { PORT: '8080', EMPTY: '' });
  assert.equal(render('{{env "PORT"}}|{{env "NOPE"}}', d).output, '8080|');
  assert.equal(render('{{envOrDefault "NOPE" "9"}}|{{envOrDefault "EMPTY" "7"}}|{{envOrDefault "PORT" "1"}}', d).output, '9|7|8080');
});

test('byTag groups instances by tag, tags sorted', () => {
  const d = data({ 'service:web': { kind: 'service', value: WEB } });
  const out = render('{{#each (byTag (service "web|any"))}}{{@key}}:{{#each this}}{{ID}},{{/each}} {{/each}}', d);
  assert.equal(out.output, 'v1:web-1,web-2, v2:web-3,web-2, weight=3:web-3, ');
});

test('sortBy sorts by a field (numbers numerically), sort sorts values', () => {
  const d = data({ 'service:web': { kind: 'service', value: WEB } });
  assert.equal(render('{{#each (sortBy (service "web|any") "Port")}}{{Port}} {{/each}}', d).output, '8081 8082 8083 8084 ');
  assert.equal(render('{{#each (sortBy (service "web|any") "ID")}}{{ID}} {{/each}}', d).output, 'web-1 web-2 web-3 web-4 ');
  assert.equal(render('{{join (sort (split "c,a,b" ",")) "-"}}', d).output, 'a-b-c');
  assert.throws(() => render('{{sortBy (service "web") ""}}', d), (e: unknown) => e instanceof TemplateError && e.code === 'ERR_TEMPLATE_RENDER');
});

test('join, contains, eq/ne, tagValue, hasPrefix/trimPrefix, toLower/toUpper', () => {
  const d = data({ 'service:web': { kind: 'service', value: WEB } });
  assert.equal(render('{{#each (service "web")}}{{#if (contains Tags "v2")}}{{ID}}{{/if}}{{/each}}', d).output, 'web-3');
  assert.equal(render('{{#each (service "web")}}{{tagValue Tags "weight" 1}} {{/each}}', d).output, '3 1 ');
  assert.equal(render('{{#if (eq 1 1)}}y{{/if}}{{#if (ne "a" "a")}}n{{/if}}', d).output, 'y');
  assert.equal(render('{{#if (hasPrefix "urlprefix-/x" "urlprefix-")}}{{trimPrefix "urlprefix-/x" "urlprefix-"}}{{/if}}', d).output, '/x');
  assert.equal(render('{{toLower "AbC"}}{{toUpper "x"}}', d).output, 'abcX');
  assert.equal(render('{{join (service "web") ","}}', data({ 'service:web': { kind: 'service', value: [] } })).output, '');
});

test('output is never HTML-escaped', () => {
  assert.equal(render('{{env "X"}}', data({}, { X: '<a & "b">' })).output, '<a & "b">');
});

test('a syntax error is ERR_TEMPLATE_COMPILE naming the template; an unknown helper is a render error', () => {
  assert.throws(() => compileTemplate('{{#each x}}', 'bad.hbs'), (e: unknown) => e instanceof TemplateError && e.code === 'ERR_TEMPLATE_COMPILE' && /bad\.hbs/.test(e.message));
  const withServices = data({ services: { kind: 'services', value: [] } });
  assert.throws(() => render('{{nope (services)}}', withServices), (e: unknown) => e instanceof TemplateError && e.code === 'ERR_TEMPLATE_RENDER');
});

test('while data is missing, a helper choking on an empty value is not an error: the render is incomplete', () => {
  const out = render('{{#each (sortBy (service "web") (key "field"))}}{{Port}}{{/each}}', data({}));
  assert.equal(out.complete, false);
  assert.deepEqual(out.missing.map(depKey), ['service:web', 'key:field']);
});

test('rendering is pure: same input, same output, repeated', () => {
  const t = compileTemplate('{{#each (service "web")}}{{Address}}:{{Port}} {{/each}}', 't');
  const d = data({ 'service:web': { kind: 'service', value: WEB } });
  assert.equal(t.render(d).output, t.render(d).output);
});
