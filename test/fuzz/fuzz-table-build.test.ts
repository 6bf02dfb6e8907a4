// Fuzz: random and mutated Consul health answers (wrong types, odd strings, IPv6, big arrays) into the
// table builder (discovery's toInstances, then buildRouteTable). Invariants: nothing throws; a
// well-formed sibling service is kept whole; every server in the table has a valid host and port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { checkHostPort } from '../../common/host-port.js';
import { toInstances } from '../../balancer/src/discovery/health-entries.js';
import { buildRouteTable } from '../../balancer/src/routing/build-table.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import { anyValue, chance, fuzz, GOOD_HOSTS, holds, hostileString, int, pick, type Rng } from '../support/fuzz.js';

function entry(rng: Rng, i: number): unknown {
  const e: Record<string, unknown> = {
    Node: { Node: `node${i}`, Address: pick(rng, GOOD_HOSTS) },
    Service: {
      ID: `svc-${i}`, Service: 'svc',
      Address: chance(rng, 0.7) ? pick(rng, GOOD_HOSTS) : hostileString(rng, 3),
      Port: chance(rng, 0.8) ? int(rng, 1, 65535) : pick(rng, [0, -1, 1.5, 70000, '80']),
      Tags: Array.from({ length: int(rng, 0, 5) }, () => (chance(rng, 0.8) ? pick(rng, ['lb=wrr', 'weight=2', 'backup', 'check=http:/h', 'urlprefix-/p']) : hostileString(rng, 3))),
      Meta: { zone: 'a' },
    },
    Checks: [{ Status: pick(rng, ['passing', 'passing', 'warning', 'critical', 'maintenance', hostileString(rng, 1)]) }],
  };
  // mutate one to three fields to anything at all
  for (let m = int(rng, 0, 3); m > 0; m--) {
    const path = pick(rng, ['Node', 'Service', 'Checks', 'Service.ID', 'Service.Service', 'Service.Address', 'Service.Port', 'Service.Tags', 'Service.Meta', 'Node.Address', 'Node.Node']);
    const [a, b] = path.split('.');
    if (b === undefined) e[a] = anyValue(rng);
    else if (e[a] && typeof e[a] === 'object') (e[a] as Record<string, unknown>)[b] = anyValue(rng);
  }
  return chance(rng, 0.03) ? anyValue(rng) : e;
}

test('fuzz: mutated Consul health answers into the table build', async () => {
  const good = toInstances('good', [{ Node: { Node: 'n1', Address: '10.0.0.9' }, Service: { ID: 'good-1', Service: 'good', Address: '10.0.0.9', Port: 7001, Tags: ['weight=2'] }, Checks: [] }]);
  assert.equal(good.length, 1);
  const r = await fuzz('table-build', 3000, (rng) => {
    const count = chance(rng, 0.02) ? int(rng, 500, 3000) : int(rng, 0, 6);
    const answer = chance(rng, 0.05) ? anyValue(rng) : Array.from({ length: count }, (_, i) => entry(rng, i));
    const what = () => JSON.stringify(answer)?.slice(0, 800);
    const instances = toInstances('svc', answer);
    const { table } = buildRouteTable({ snapshot: { services: { good, svc: instances } }, adminUpstreams: {}, defaults: DEFAULT_TABLE_DEFAULTS });
    const goodServers = table.upstreams.good.servers.map((s) => [s.host, s.port, s.weight]);
    holds(isDeepStrictEqual(goodServers, [['10.0.0.9', 7001, 2]]), () => `good: ${JSON.stringify(goodServers)}: ${what()}`);
    for (const u of Object.values(table.upstreams)) {
      for (const s of u.servers) holds(checkHostPort(s.host, s.port).ok, () => `server ${JSON.stringify(s.host)}:${s.port} in the table: ${what()}`);
    }
  });
  assert.ok(r.cases > 50, `only ${r.cases} cases ran`);
});
