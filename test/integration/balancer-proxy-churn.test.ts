// Zero failed requests while the table changes under load: 200+ swaps that add and remove
// servers (removed ones keep running, as a deregistered instance does while it drains).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { startBackends, startProxy, upstreamSpec, type Backend, type RunningProxy } from '../support/upstreams.js';
import { ENGINES, engineOptions } from '../support/engines.js';

for (const engine of ENGINES) describe(`balancer proxy: table churn under load [${engine}]`, () => {
  let backends: Backend[];
  let proxy: RunningProxy;

  before(async () => {
    backends = await startBackends(5);
    proxy = await startProxy(engineOptions(engine));
  });
  after(async () => {
    await proxy.runtime.close();
    await Promise.all(backends.map((b) => b.kill()));
  });

  it('serves every request while 200 swaps change the servers', { timeout: 60_000 }, async () => {
    let seed = 7;
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
    const subset = (): Backend[] => {
      const chosen = backends.filter(() => random() < 0.5);
      return chosen.length > 0 ? chosen : [backends[Math.floor(random() * backends.length)]];
    };
    proxy.runtime.applyTable(tableFromUpstreams({ web: upstreamSpec('web', backends.map((b) => b.spec())) }, []));
    let swapping = true;
    let swaps = 0;
    const failures: string[] = [];
    let ok = 0;
    const load = async (): Promise<void> => {
      while (swapping) {
        // a mix of quick answers and answers that outlive the table they started under
        const res = await proxy.fetch('web', random() < 0.2 ? '/sleep/20' : '/');
        if (res.status === 200) ok++;
        else failures.push(`${res.status} ${res.text}`);
      }
    };
    const loaders = Array.from({ length: 6 }, load);
    const deadline = Date.now() + 30_000;
    while (swaps < 200 && Date.now() < deadline) {
      const { changed } = proxy.runtime.applyTable(tableFromUpstreams({
        web: upstreamSpec('web', subset().map((b) => b.spec()), { algorithm: random() < 0.5 ? 'roundrobin' : 'wrr' }),
      }, []));
      if (changed) swaps++;
      await sleep(5);
    }
    swapping = false;
    await Promise.all(loaders);
    assert.equal(swaps, 200);
    assert.deepEqual(failures, []);
    assert.ok(ok > 200, `only ${ok} requests went through`);
  });
});
