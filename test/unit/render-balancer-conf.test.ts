import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BalancerConfError, formatBalancerConf, parseBalancerConf } from '../../balancer/src/render/balancer-conf.js';
import { DEFAULT_ACTIVE_CHECK, DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

const GOOD = `# a comment
upstream web {
  lb wrr;   # trailing comment
  max_fails 2; fail_timeout 5s;
  retries 1; retry_timeout 3s; retry_on 502,503; retry_non_idempotent on;
  check http:/health interval=1s timeout=500ms rise=1 fall=2 expect=200-204;
  server 10.0.0.2:8080 weight=3 node=n2 id=web-2;
  server 10.0.0.1:8080 max_fails=0 fail_timeout=1s backup;
  server [::1]:8081 down zone=z1;
}
upstream api { lb chash; hash header:X-User; server 127.0.0.1:9000; }
upstream empty { }
route web.example.com/api web;
route /static web;
route API.example.com api;
`;

test('parses upstreams, servers, options and routes into a frozen, versioned table', () => {
  const t = parseBalancerConf(GOOD);
  assert.ok(t.version.length > 0);
  assert.ok(Object.isFrozen(t));
  assert.deepEqual(Object.keys(t.upstreams), ['api', 'empty', 'web']);
  const web = t.upstreams.web;
  assert.equal(web.algorithm, 'wrr');
  assert.equal(web.origin, 'config');
  assert.deepEqual(web.retry, { tries: 2, timeoutMs: 3000, onStatuses: [502, 503], nonIdempotent: true });
  assert.equal(web.check?.path, '/health');
  assert.equal(web.check?.intervalMs, 1000);
  assert.equal(web.check?.timeoutMs, 500);
  assert.deepEqual(web.check?.expectStatuses, [200, 201, 202, 203, 204]);
  const byId = Object.fromEntries(web.servers.map((s) => [s.id, s]));
  assert.deepEqual(byId['10.0.0.2:8080'], { id: '10.0.0.2:8080', host: '10.0.0.2', port: 8080, weight: 3, maxFails: 2, failTimeoutMs: 5000, down: false, backup: false, node: 'n2', serviceId: 'web-2' });
  assert.equal(byId['10.0.0.1:8080'].maxFails, 0);
  assert.equal(byId['10.0.0.1:8080'].failTimeoutMs, 1000);
  assert.equal(byId['10.0.0.1:8080'].backup, true);
  assert.equal(byId['::1:8081'].down, true);
  assert.equal(byId['::1:8081'].zone, 'z1');
  assert.deepEqual(t.upstreams.api.hashKey, { source: 'header', name: 'x-user' });
  assert.deepEqual(t.upstreams.empty.servers, []);
  assert.deepEqual(
    t.routes.map((r) => [r.host, r.pathPrefix, r.upstream]).sort(),
    [['', '/static', 'web'], ['api.example.com', '/', 'api'], ['web.example.com', '/api', 'web']],
  );
});

test('equal content gives equal versions; a change gives a new version', () => {
  assert.equal(parseBalancerConf(GOOD).version, parseBalancerConf(GOOD).version);
  assert.notEqual(parseBalancerConf(GOOD).version, parseBalancerConf(GOOD.replace('weight=3', 'weight=4')).version);
});

test('defaults: roundrobin, weight 1, max_fails 1, fail_timeout 10s, 3 tries; chash without hash uses the client IP', () => {
  const t = parseBalancerConf('upstream a { server 1.2.3.4:80; }\nupstream b { lb chash; server 1.2.3.4:81; }');
  assert.equal(t.upstreams.a.algorithm, 'roundrobin');
  assert.deepEqual(t.upstreams.a.servers[0], { id: '1.2.3.4:80', host: '1.2.3.4', port: 80, weight: 1, maxFails: 1, failTimeoutMs: 10000, down: false, backup: false });
  assert.equal(t.upstreams.a.retry.tries, 3);
  assert.equal(t.upstreams.a.check, undefined);
  assert.deepEqual(t.upstreams.b.hashKey, { source: 'ip' });
});

test('an empty file is an empty table', () => {
  const t = parseBalancerConf('# nothing\n');
  assert.deepEqual(t.upstreams, {});
  assert.deepEqual(t.routes, []);
});

function problems(text: string): string[] {
  try {
    parseBalancerConf(text, { source: 'x.conf' });
  } catch (err) {
    assert.ok(err instanceof BalancerConfError);
    assert.equal(err.code, 'ERR_BALANCER_CONF');
    assert.match(err.message, /^x\.conf: line \d+: /);
    return err.problems.map((p) => `${p.line}: ${p.message}`);
  }
  assert.fail('expected a BalancerConfError');
}

test('errors carry line numbers and say what is wrong (scenario table)', () => {
  const cases: [string, RegExp][] = [
    ['upstream web {\n  server 10.0.0.1:8080\n}', /^2: missing ";" after "server 10\.0\.0\.1:8080"/],
    ['upstream web {\n  server 10.0.0.1;\n}', /^2: upstream web: bad server address "10\.0\.0\.1"/],
    ['upstream web {\n  server 10.0.0.1:99999;\n}', /^2: upstream web: bad server address/],
    ['upstream web {\n\n  server 1.1.1.1:80 weight=0;\n}', /^3: upstream web: server 1\.1\.1\.1:80: weight expects an integer >= 1/],
    ['upstream web {\n  server 1.1.1.1:80 bogus=1;\n}', /^2: .*unknown parameter "bogus=1"/],
    ['upstream web {\n  lb fastest;\n}', /^2: upstream web: unknown lb "fastest"/],
    ['upstream web {\n  hash nothing;\n}', /^2: upstream web: bad hash/],
    ['upstream web {\n  frobnicate 1;\n}', /^2: upstream web: unknown directive "frobnicate"/],
    ['upstream web {\n  check udp;\n}', /^2: upstream web: unknown check type "udp"/],
    ['upstream web {\n  check http interval=soon;\n}', /^2: upstream web: check: bad parameter "interval=soon"/],
    ['upstream web {\n  server 1.1.1.1:80;\n  server 1.1.1.1:80;\n}', /^3: upstream web: server 1\.1\.1\.1:80 already listed on line 2/],
    ['upstream web { }\nupstream web { }', /^2: upstream "web" already defined on line 1/],
    ['upstream web {\n  server 1.1.1.1:80;', /^1: block not closed/],
    ['server 1.1.1.1:80;', /^1: unknown directive "server" outside an upstream block/],
    ['route web.example.com nope;', /^1: route to unknown upstream "nope"/],
    ['route a b c;', /^1: expected "route <host>\[\/path\] <upstream>;"/],
    ['}', /^1: unexpected "}"/],
    ['listen 80;', /^1: unknown directive "listen"/],
    ['http {\n}', /^1: unknown block "http"/],
    ['upstream web {\n  location / { }\n}', /^2: nested blocks are not allowed/],
    ['upstream w!b { }', /^1: invalid upstream name "w!b"/],
    ['upstream web { server 1.1.1.1:80; }\nroute web.example.com/api web', /^2: missing ";"/],
  ];
  for (const [text, expected] of cases) {
    const got = problems(text);
    assert.ok(got.some((p) => expected.test(p)), `${JSON.stringify(text)}: got ${JSON.stringify(got)}`);
  }
});

test('every problem in the file is reported, in line order', () => {
  const got = problems('upstream a {\n  lb nope;\n  server x;\n}\nroute h b;\n');
  assert.deepEqual(got.map((p) => Number(p.split(':')[0])), [2, 3, 5]);
});

test('formatBalancerConf prints a table that parses back to the same version', () => {
  const t = parseBalancerConf(GOOD);
  const again = parseBalancerConf(formatBalancerConf(t));
  assert.equal(again.version, t.version);
});

test('formatBalancerConf leaves out Consul text that is not one safe word (the registrator registers tags and meta as given): the output parses, nothing in it comes from that text', () => {
  const t = parseBalancerConf('upstream web {\n  server 10.0.0.1:80 node=n1 zone=eu id=web-1;\n  server 10.0.0.2:80;\n}\nupstream api {\n  server 10.0.0.3:80;\n}\nroute /api api;\n');
  const hostile = {
    ...t,
    upstreams: {
      ...t.upstreams,
      web: { ...t.upstreams.web, servers: t.upstreams.web.servers.map((s, i) => (i === 1 ? { ...s, node: 'n 1 } upstream evil {', zone: 'eu; server 6.6.6.6:80', serviceId: 'x#y' } : s)) },
      'bad;name': { ...t.upstreams.api, name: 'bad;name' },
    },
    routes: [...t.routes, { host: '', pathPrefix: '/x', upstream: 'bad;name' }],
  };
  const text = formatBalancerConf(hostile);
  assert.doesNotMatch(text, /evil|6\.6\.6\.6|x#y|bad;name/, text);
  const again = parseBalancerConf(text);
  assert.deepEqual(Object.keys(again.upstreams).sort(), ['api', 'web']);
  assert.deepEqual(again.upstreams.web.servers.map((s) => [s.host, s.node, s.zone, s.serviceId]), [['10.0.0.1', 'n1', 'eu', 'web-1'], ['10.0.0.2', undefined, undefined, undefined]]);
  assert.deepEqual(again.routes.map((r) => r.upstream), ['api']);
});

test('TCP upstreams: proto, listen and proxy_protocol parse into the spec dynamic mode builds from tags; a TCP check by default', () => {
  const t = parseBalancerConf(`upstream redis { proto tcp; listen 6379; proxy_protocol v2; check http interval=1s; server 127.0.0.1:7001; }
upstream db { proto tcp+sni; listen b.example.com:6443 A.example.com:6443; listen *.db.example.com:6443; server 127.0.0.1:7002; }
upstream web { server 127.0.0.1:8080; }
route /web web;
`, { defaults: { ...DEFAULT_TABLE_DEFAULTS, check: DEFAULT_ACTIVE_CHECK } });
  assert.equal(t.upstreams.redis.protocol, 'tcp');
  assert.deepEqual(t.upstreams.redis.listen, [{ port: 6379 }]);
  assert.equal(t.upstreams.redis.proxyProtocol, 'v2');
  assert.equal(t.upstreams.redis.check?.type, 'http', 'an explicit check stands');
  assert.equal(t.upstreams.db.protocol, 'tcp+sni');
  assert.deepEqual(t.upstreams.db.listen, [{ port: 6443, sni: '*.db.example.com' }, { port: 6443, sni: 'a.example.com' }, { port: 6443, sni: 'b.example.com' }]);
  assert.equal(t.upstreams.db.check?.type, 'tcp', 'a TCP service is probed by connecting');
  assert.equal(t.upstreams.web.protocol, undefined);
  assert.equal(t.upstreams.web.listen, undefined);
  // the printed form parses back to an equal table
  assert.equal(parseBalancerConf(formatBalancerConf(t), { defaults: { ...DEFAULT_TABLE_DEFAULTS, check: DEFAULT_ACTIVE_CHECK } }).version, t.version);
  assert.match(formatBalancerConf(t), /proto tcp\+sni;\n {2}listen \*\.db\.example\.com:6443;/);
});

test('TCP upstreams: bad proto/listen lines are errors with their line numbers', () => {
  const cases: [string, RegExp][] = [
    ['upstream r { proto udp; }', /line 1: upstream r: unknown proto "udp"/],
    ['upstream r {\n listen 6379;\n server 1.2.3.4:1; }', /line 2: upstream r: "listen" needs "proto tcp" or "proto tcp\+sni"/],
    ['upstream r { proto tcp; listen 70000; }', /bad listen "70000": bad port "70000"/],
    ['upstream r { proto tcp; listen a.example.com:6379; }', /bad listen "a\.example\.com:6379": proto=tcp routes by port only/],
    ['upstream r { proto tcp+sni; listen 6443; }', /bad listen "6443"/],
    ['upstream r { proto tcp+sni; listen bad_name:6443; }', /bad listen "bad_name:6443": bad server name/],
    ['upstream r { proto tcp; proxy_protocol v3; }', /proxy_protocol expects v1 or v2/],
    ['upstream r { proto tcp; listen 6379; }\nroute /r r;', /line 2: route to TCP upstream "r"/],
    ['upstream r {\n allow 10.0.0.0/8;\n}', /line 2: upstream r: allow: "10\.0\.0\.0\/8": expected ip:<address or CIDR>/],
    ['upstream r { deny ip:nope; }', /upstream r: deny: "ip:nope" is not an IPv4 or IPv6 address/],
    ['upstream r { allow ip:10.0.0.0/8 ip:10.0.0.1; }', /upstream r: "allow" takes one value/],
    ['upstream r { rate fast; }', /upstream r: rate expects a rate such as 100\/s/],
    ['upstream r { rate 10/s; burst 0; }', /upstream r: burst expects an integer from 1/],
    ['upstream r { rate 10/s; rate_by cookie:x; }', /upstream r: rate_by expects ip or header:<name>/],
    ['upstream r {\n burst 5;\n rate_by ip;\n}', /line 2: upstream r: "burst" and "rate_by" need "rate"/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseBalancerConf(text), (e: unknown) => e instanceof BalancerConfError && re.test(e.message), text);
});

test('access rules and rate limits: allow, deny, rate, burst, rate_by parse into the policy dynamic mode builds from tags, and print back', () => {
  const t = parseBalancerConf('upstream api {\n  allow ip:10.0.0.0/8,ip:fe80::/10;\n  deny ip:10.9.9.9;\n  rate 6000/m;\n  rate_by header:X-User;\n  server 10.0.0.1:80;\n}\nupstream db {\n  proto tcp;\n  listen 6379;\n  rate 1/h;\n  server 10.0.0.2:6379;\n}\nupstream plain { server 10.0.0.3:80; }\n');
  assert.deepEqual(t.upstreams.api.policy, {
    access: { allow: ['10.0.0.0/8', 'fe80::/10'], deny: ['10.9.9.9'] },
    rateLimit: { ratePerSecond: 100, burst: 100, by: { source: 'header', name: 'x-user' } },
  });
  assert.deepEqual(t.upstreams.db.policy, { rateLimit: { ratePerSecond: 1 / 3600, burst: 1, by: { source: 'ip' } } });
  assert.equal(t.upstreams.plain.policy, undefined);
  const again = parseBalancerConf(formatBalancerConf(t));
  assert.equal(again.version, t.version);
  assert.deepEqual(again.upstreams.db.policy, t.upstreams.db.policy);
});
