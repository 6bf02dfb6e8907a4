// The registrator's side of the randomized test: a seeded sequence of check changes for one container
// (generateCheckEnvs: checks added, dropped, renumbered, now and then a script/docker check a default
// agent refuses) synced step by step through the real Consul backend against the double (or a real
// agent). After every step the agent holds no check the container does not ask for: exactly the asked
// number, `service:<id>` for one and `service:<id>:<n>` for several; a refused step registers nothing
// new, and the next accepted step is exact again. Docker is an in-memory fake. CHECKS_SEED replays.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { Bridge } from '../../registrator/src/bridge.js';
import { ConsulRegistry } from '../../registrator/src/registry/consul-backend.js';
import { generateCheckEnvs } from '../support/consul-ops-generator.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { FakeDocker } from '../support/registrator-fakes.js';
import { agentChecks } from '../support/registrator-process.js';

const SEED = process.env.CHECKS_SEED !== undefined ? Number(process.env.CHECKS_SEED) : Math.floor(Math.random() * 2 ** 31);
const STEPS = 40;
const runTag = `rr${process.pid}x${Date.now().toString(36)}`;
let consul: ConsulTarget;
const bridges: Bridge[] = [];

before(async () => {
  consul = await consulForTest();
});

after(async () => {
  await Promise.all(bridges.map((b) => b.stop(1000)));
  await cleanConsul(consul, `${runTag}-`).catch(() => undefined);
  await consul.close();
});

test(`${STEPS} random check changes of one container leave exactly the asked checks on the agent (seed ${SEED})`, async () => {
  const hostname = `${runTag}-h`;
  const docker = new FakeDocker();
  const steps = generateCheckEnvs(SEED, STEPS, `${hostname}-web`);
  docker.containers.set('c0', { running: true, env: [`SERVICE_NAME=${hostname}-web`] });
  const registry = new ConsulRegistry({ host: consul.host, port: consul.port, secure: false, instanceMarker: hostname, callTimeoutMs: 3000 });
  const bridge = new Bridge({
    docker: docker.asDocker(), registry, logger: pino({ level: 'silent' }),
    mapping: { hostname, internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: hostname },
    deregister: 'always', cleanup: false, resyncSeconds: 0, driftCheckSeconds: 0,
  });
  bridges.push(bridge);
  await bridge.requestResync('startup');
  const id = `${hostname}:c0:80`;
  const checksOf = async () => Object.values(await agentChecks(consul.url)).filter((c) => c.ServiceID === id).map((c) => c.CheckID).sort();
  const expectedIds = (n: number) => (n === 1 ? [`service:${id}`] : Array.from({ length: n }, (_, i) => `service:${id}:${i + 1}`).sort());
  let refusedSteps = 0;
  for (const [i, step] of steps.entries()) {
    docker.containers.set('c0', { running: true, env: [...step.env] });
    await bridge.syncContainer('c0', 'docker-update');
    const held = await checksOf();
    const why = `seed ${SEED} step ${i} (${step.env.slice(1).join(' ') || 'no check'})`;
    if (step.refused) {
      refusedSteps++;
      // nothing of the refused registration reaches the agent: no check it names beyond what it asks
      assert.ok(held.length <= Math.max(step.checks, steps[i - 1]?.checks ?? 0), `${why}: ${held.join(' ')}`);
      continue;
    }
    assert.deepEqual(held, expectedIds(step.checks), why);
  }
  assert.ok(refusedSteps > 0, `seed ${SEED}: no refused step in ${STEPS}`);
});
