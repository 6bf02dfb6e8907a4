// The KV certificate source (--tls-kv-prefix) shares the primary's Consul connection budget: with 60
// services being read, the agent never sees more than --consul-max-conns connections from the
// balancer, the KV watch holds one reserved slot of the budget, and certificates put in KV still load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulPutOwnConnection } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { until } from '../support/poll.js';
import { makeTestCa } from '../support/tls-certs.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const BUDGET = 6;

test('--tls-kv-prefix watches through the discovery budget: the agent never sees more than --consul-max-conns', { timeout: 60_000 }, async (t) => {
  const consul = await consulForTest();
  const scope = testScope();
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  t.after(async () => {
    await primary?.stop();
    await scope.clean(consul);
    await consul.close();
    await ca?.close();
  });
  let ca: Awaited<ReturnType<typeof makeTestCa>> | undefined;
  ca = await makeTestCa('kv-budget');
  const leaf = await ca.issue(['kv.example.test']);
  await consulPutOwnConnection(consul, `/v1/kv/${scope.kv('certs/kv.example.test/cert')}`, leaf.cert);
  await consulPutOwnConnection(consul, `/v1/kv/${scope.kv('certs/kv.example.test/key')}`, leaf.key);
  const names = Array.from({ length: 60 }, (_, i) => scope.name(`s${i}`));
  for (const [i, name] of names.entries()) await consulPutOwnConnection(consul, '/v1/agent/service/register', { ID: `${name}-0`, Name: name, Address: '127.0.0.1', Port: 10_000 + i });
  if (consul.double) {
    const double = consul.double;
    await until('registration connections closed', () => double.stats().open === 0, 5000);
    double.resetStats();
  }
  primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
    '--consul-wait', '5s', '--consul-max-conns', String(BUDGET), '--tls-listen', '127.0.0.1:0', '--tls-kv-prefix', scope.kv('certs/'),
    '--log-level', 'warn', '--services', names.join(',')]), logger);
  const p = primary;
  await until('every service in the table', () => names.every((n) => p.holder.current().upstreams[n] !== undefined), 20_000);
  await until('the KV certificate loaded', () => p.tls?.handle.store.entryFor('kv.example.test') !== undefined, 10_000);
  if (consul.double) {
    const s = consul.double.stats();
    t.diagnostic(`agent: peak ${s.peakPerClient} connections, ${s.requests} requests, ${s.rejected} refused`);
    assert.ok(s.peakPerClient <= BUDGET, `agent saw ${s.peakPerClient} connections at once (budget ${BUDGET})`);
  } else {
    t.diagnostic('real agent: connection figures not observable, budget assertion not made');
  }
});
