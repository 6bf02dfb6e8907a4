// Seeded random sequences of container changes on the registrator's side of a real agent (the double
// follows agent.go: script checks refused by default, old checks kept without ?replace-existing-checks):
// checks added, dropped and renumbered (service:<id> <-> service:<id>:<n>), script checks that the
// agent refuses, tags with any character, containers dying and coming back. After every step the agent
// holds exactly what each container asks for: a service's checks are exactly its current ones, a
// refused service is not registered, the others are. REGISTRATOR_OPS (default 120) and
// REGISTRATOR_SEED replay; a failure prints the seed and the steps so far.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Bridge } from '../../registrator/src/bridge.js';
import { ConsulRegistry } from '../../registrator/src/registry/consul-backend.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { chance, int, mulberry32, pick, type Rng } from '../support/fuzz.js';
import { FakeDocker } from '../support/registrator-fakes.js';
import { agentChecks, agentServices } from '../support/registrator-process.js';

const OPS = Number(process.env.REGISTRATOR_OPS ?? 120);
const SEED = Number(process.env.REGISTRATOR_SEED ?? Date.now() % 2 ** 31);
const runTag = `rr${process.pid}x${Date.now().toString(36)}`;
// as written in SERVICE_TAGS ("\\," is a literal comma)
const TAGS = ['blue', '/(;\\,:-_)/', 'a;b', 'x#y', '{b}', 'lb=wrr'];

interface Want { running: boolean; ttl: number; http: boolean; script: boolean; tags: string[] }

function envOf(name: string, w: Want): string[] {
  const env = [`SERVICE_NAME=${name}`];
  if (w.tags.length > 0) env.push(`SERVICE_TAGS=${w.tags.join(',')}`);
  // the first check is unnumbered, the rest SERVICE_CHECK_<n>_*: one check is service:<id>, several :1..:n
  const kinds: string[] = [];
  for (let i = 0; i < w.ttl; i++) kinds.push(`TTL=${30 + i}s`);
  if (w.http) kinds.push('HTTP=/health');
  if (w.script) kinds.push('SCRIPT=true');
  kinds.forEach((k, i) => env.push(i === 0 ? `SERVICE_CHECK_${k}` : `SERVICE_CHECK_${i + 1}_${k}`));
  return env;
}

function step(rng: Rng, w: Want): string {
  switch (int(rng, 0, 5)) {
    case 0: w.ttl = int(rng, 0, 3); return `ttl=${w.ttl}`;
    case 1: w.http = !w.http; return `http=${w.http}`;
    case 2: w.script = chance(rng, 0.3) ? !w.script : false; return `script=${w.script}`;
    case 3: w.tags = TAGS.filter(() => chance(rng, 0.4)); return `tags=${JSON.stringify(w.tags)}`;
    case 4: w.running = !w.running; return `running=${w.running}`;
    default: return 'resync';
  }
}

describe('registrator on an agent that follows agent.go: randomized', () => {
  let consul: ConsulTarget;
  let bridge: Bridge | undefined;

  before(async () => {
    consul = await consulForTest();
  });

  after(async () => {
    await bridge?.stop(1000);
    await cleanConsul(consul, `${runTag}-`).catch(() => undefined);
    await consul.close();
  });

  test(`${OPS} steps (REGISTRATOR_SEED=${SEED}): the agent holds exactly each container's current checks; refused ones are absent`, async () => {
    const rng = mulberry32(SEED);
    const hostname = `${runTag}-h`;
    const docker = new FakeDocker();
    const registry = new ConsulRegistry({ host: consul.host, port: consul.port, secure: false, instanceMarker: hostname, callTimeoutMs: 3000 });
    bridge = new Bridge({
      docker: docker.asDocker(), registry, logger: pino({ level: 'silent' }),
      mapping: { hostname, internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: hostname },
      deregister: 'always', cleanup: false, resyncSeconds: 0, driftCheckSeconds: 0, recordRetry: { baseMs: 600_000, maxMs: 600_000 },
    });
    const wants = new Map<string, Want>();
    for (let i = 0; i < 4; i++) wants.set(`c${i}`, { running: true, ttl: int(rng, 0, 2), http: chance(rng, 0.5), script: false, tags: [] });
    const apply = () => {
      for (const [id, w] of wants) docker.containers.set(id, { running: w.running, env: envOf(`${hostname}-s${id}`, w) });
    };
    apply();
    await bridge.requestResync('startup');
    const steps: string[] = [];
    const scriptsRefused = !consul.real; // a real agent may have enable_script_checks on; the double never does
    for (let n = 0; n < OPS; n++) {
      const id = pick(rng, [...wants.keys()]);
      const w = wants.get(id)!;
      const what = step(rng, w);
      steps.push(`${id} ${what}`);
      apply();
      if (what === 'resync') await bridge.requestResync('periodic');
      else await bridge.syncContainer(id, 'docker-event');

      const services = await agentServices(consul.url);
      const checks = Object.values(await agentChecks(consul.url));
      const context = () => `REGISTRATOR_SEED=${SEED}, step ${n + 1}:\n  ${steps.slice(-12).join('\n  ')}`;
      for (const [cid, cw] of wants) {
        const sid = `${hostname}:${cid}:80`;
        const count = cw.ttl + (cw.http ? 1 : 0) + (cw.script ? 1 : 0);
        const registered = cw.running && !(cw.script && scriptsRefused);
        assert.equal(sid in services, registered, `${sid} registered: ${context()}`);
        const want = !registered ? [] : count === 1 ? [`service:${sid}`] : Array.from({ length: count }, (_, i) => `service:${sid}:${i + 1}`);
        assert.deepEqual(checks.filter((c) => c.ServiceID === sid).map((c) => c.CheckID).sort(), want.sort(), `${sid} checks: ${context()}`);
        if (registered) assert.deepEqual([...(services[sid].Tags ?? [])].sort(), [...new Set(cw.tags.map((t) => t.replace(/\\,/g, ',')))].sort(), `${sid} tags as given: ${context()}`);
      }
    }
    assert.equal(bridge.stats.recordFailures, 0, 'a refusal is never a failure to retry');
  });
});
