// Fuzz: random tag sets, names and addresses into reload mode's template (templates/balancer.conf.hbs)
// and the nginx template. Invariants: rendering never throws; the balancer config always parses; no
// block or server comes from tag text; a well-formed sibling service is rendered unchanged; every
// option tag that could not be written is named by a warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBalancerConf } from '../../balancer/src/render/balancer-conf.js';
import type { DependencyValue, ServiceInstanceView } from '../../balancer/src/render/dependencies.js';
import { quoteForReason } from '../../common/host-port.js';
import { unsafeWordReason } from '../../balancer/src/render/helpers.js';
import { shippedTemplate } from '../support/repo-templates.js';
import { chance, fuzz, GOOD_HOSTS, holds, hostileString, int, pick, type Rng } from '../support/fuzz.js';

const balancerTpl = shippedTemplate('balancer.conf.hbs');
const nginxTpl = shippedTemplate('nginx-upstreams.conf.hbs');
const OPTION_KEYS = ['lb', 'hash', 'max_fails', 'fail_timeout', 'retries'];

function tag(rng: Rng): string {
  switch (int(rng, 0, 5)) {
    case 0: return `${pick(rng, OPTION_KEYS)}=${chance(rng, 0.4) ? pick(rng, ['wrr', 'chash', 'ip', 'header:x-user', '3', '10s']) : hostileString(rng, 4)}`;
    case 1: return `urlprefix-${chance(rng, 0.5) ? '/ok' : hostileString(rng, 3)}`;
    case 2: return `weight=${chance(rng, 0.5) ? String(int(rng, 1, 9)) : hostileString(rng, 2)}`;
    case 3: return pick(rng, ['backup', 'down']);
    default: return hostileString(rng, 4);
  }
}

function instance(rng: Rng, name: string, i: number): ServiceInstanceView {
  return {
    ID: chance(rng, 0.85) ? `${name}-${i}` : hostileString(rng, 3),
    Name: name,
    Node: chance(rng, 0.85) ? 'node1' : hostileString(rng, 3),
    NodeAddress: '127.0.0.1',
    Address: chance(rng, 0.8) ? pick(rng, GOOD_HOSTS) : hostileString(rng, 3),
    Port: chance(rng, 0.85) ? int(rng, 1, 65535) : (pick(rng, [0, -1, 70000, 1.5, Number.NaN]) as number),
    Tags: Array.from({ length: int(rng, 0, 4) }, () => tag(rng)),
    Meta: {},
    Status: 'passing',
  };
}

test('fuzz: random tag sets into the reload-mode and nginx templates', async () => {
  const r = await fuzz('render-tags', 600, (rng) => {
    const names = ['svc', ...(chance(rng, 0.2) ? [hostileString(rng, 2)] : [])];
    const summaries = [
      { Name: 'good', Tags: ['lb=wrr', 'urlprefix-good.example.com/g'] },
      ...names.map((n) => ({ Name: n, Tags: Array.from({ length: int(rng, 0, 6) }, () => tag(rng)) })),
    ];
    const values = new Map<string, DependencyValue>([['services', { kind: 'services', value: summaries }]]);
    values.set('service:good', { kind: 'service', value: [
      { ID: 'good-1', Name: 'good', Node: 'n', NodeAddress: '127.0.0.1', Address: '10.9.0.1', Port: 7001, Tags: ['weight=2'], Meta: {}, Status: 'passing' },
    ] });
    for (const n of names) values.set(`service:${n}`, { kind: 'service', value: Array.from({ length: int(rng, 0, 3) }, (_, i) => instance(rng, n, i)) });
    const data = { values, env: {} };
    const what = () => JSON.stringify(summaries).slice(0, 600);

    const out = balancerTpl.render(data);
    holds(out.complete === true, what);
    let table;
    try {
      table = parseBalancerConf(out.output);
    } catch (err) {
      assert.fail(`rendered config does not parse: ${(err as Error).message}\n${out.output}\n${what()}`);
    }
    const good = table.upstreams.good;
    holds(good, what);
    assert.equal(good.algorithm, 'wrr');
    assert.deepEqual(good.servers.map((s) => [s.host, s.port, s.weight]), [['10.9.0.1', 7001, 2]]);
    holds(table.routes.some((x) => x.upstream === 'good' && x.host === 'good.example.com'), what);
    for (const name of Object.keys(table.upstreams)) holds(name === 'good' || names.includes(name), () => `upstream ${name} from tag text: ${what()}`);
    for (const u of Object.values(table.upstreams)) {
      for (const s of u.servers) assert.ok(u.name === 'good' ? s.port === 7001 : true);
    }
    // each option tag of "svc" whose value is not a safe word is named by a warning
    const svc = summaries.find((s) => s.Name === 'svc');
    for (const t of svc?.Tags ?? []) {
      const key = t.slice(0, t.indexOf('='));
      if (!OPTION_KEYS.includes(key)) continue;
      if (svc!.Tags.find((x) => x.startsWith(`${key}=`)) !== t) continue; // first value wins
      const value = t.slice(key.length + 1).trim(); // the option parser trims, as in dynamic mode
      if (unsafeWordReason(value) !== undefined) {
        assert.ok(out.warnings.some((w) => w.includes(`tag ${quoteForReason(t)} dropped`)), `no warning names ${JSON.stringify(t)}: ${out.warnings.join(' | ')}`);
      }
    }

    const nginx = nginxTpl.render(data);
    assert.equal(nginx.complete, true);
    const blocks = [...nginx.output.matchAll(/^upstream (\S+) \{$/gm)].map((m) => m[1]);
    for (const b of blocks) assert.ok(b === 'good' || names.includes(b), `nginx upstream ${b} from tag text`);
    assert.equal((nginx.output.match(/\{/g) ?? []).length, (nginx.output.match(/\}/g) ?? []).length, nginx.output);
    for (const line of nginx.output.split('\n')) {
      if (line === '  server 127.0.0.1:9 down;') continue; // the template's placeholder for an empty upstream
      if (/^\s+server /.test(line)) assert.match(line, /^ {2}server (\[[0-9a-f:.]+\]|[A-Za-z0-9._-]+):\d+ weight=\d+ max_fails=1 fail_timeout=10s( backup)?( down)?;$/, line);
    }
  });
  assert.ok(r.cases > 50, `only ${r.cases} cases ran`);
});
