// Two registrators with -cleanup on one Docker engine (different -hostname, one Consul) leave each other's
// services alone: records are matched by instance marker first, and by engine ID only when their marker
// names no live registrator (no fresh presence record in KV registrator/instances/<engine>/<marker>).
// Real Consul backend against the double (or a real agent); Docker is an in-memory fake.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { Bridge } from '../../registrator/src/bridge.js';
import { ConsulRegistry, PRESENCE_PREFIX } from '../../registrator/src/registry/consul-backend.js';
import { cleanConsul, consulForTest, type ConsulTarget } from '../support/consul.js';
import { FakeDocker } from '../support/registrator-fakes.js';
import { agentServices } from '../support/registrator-process.js';

const runTag = `ct${process.pid}x${Date.now().toString(36)}`;
const engineId = `engine-${runTag}`;

describe('two registrators with -cleanup on one engine', () => {
  let consul: ConsulTarget;
  const docker = new FakeDocker();
  const started: Bridge[] = [];

  before(async () => {
    consul = await consulForTest();
    docker.containers.set('c1', { running: true, env: [`SERVICE_NAME=${runTag}-web`] });
  });

  after(async () => {
    await Promise.all(started.map((b) => b.stop(1000)));
    await cleanConsul(consul, `${runTag}-`).catch(() => undefined);
    await fetch(`${consul.url}/v1/kv/${PRESENCE_PREFIX}${engineId}?recurse`, { method: 'DELETE' }).catch(() => undefined);
    await consul.close();
  });

  function registrator(hint: string, now: () => number = Date.now) {
    const hostname = `${runTag}-${hint}`;
    const registry = new ConsulRegistry({
      host: consul.host, port: consul.port, secure: false, instanceMarker: hostname, engineId, adoptSameEngine: true,
      callTimeoutMs: 3000, presenceIntervalMs: 1000, now,
    });
    const bridge = new Bridge({
      docker: docker.asDocker(), registry, logger: pino({ level: 'silent' }),
      mapping: { hostname, internal: false, explicit: false, forceTags: [], healthGate: 'off', instanceMarker: hostname },
      deregister: 'always', cleanup: true, resyncSeconds: 0, driftCheckSeconds: 0,
    });
    started.push(bridge);
    return { hostname, bridge };
  }

  const ids = async () => Object.keys(await agentServices(consul.url)).filter((id) => id.startsWith(`${runTag}-`)).sort();

  test('both live: repeated resyncs keep both sets; one stops: the other adopts (moves) its services', async () => {
    const a = registrator('a');
    const b = registrator('b');
    await a.bridge.heartbeat();
    await b.bridge.heartbeat();
    await a.bridge.requestResync('startup');
    await b.bridge.requestResync('startup');
    for (let i = 0; i < 3; i++) {
      await a.bridge.requestResync('periodic');
      await b.bridge.requestResync('periodic');
    }
    assert.deepEqual(await ids(), [`${a.hostname}:c1:80`, `${b.hostname}:c1:80`]);

    await b.bridge.stop(1000); // withdraws its presence; its services stay registered
    assert.deepEqual(await ids(), [`${a.hostname}:c1:80`, `${b.hostname}:c1:80`]);
    await a.bridge.requestResync('periodic');
    assert.deepEqual(await ids(), [`${a.hostname}:c1:80`], 'B is gone: its record of a live container is adopted and moved');
  });

  test('a registrator that died without withdrawing is taken for gone once its heartbeat is three periods old', async () => {
    let offset = 0;
    const c = registrator('c', () => Date.now() + offset);
    const d = registrator('d');
    await c.bridge.heartbeat();
    await d.bridge.heartbeat();
    await d.bridge.requestResync('startup');
    await c.bridge.requestResync('startup');
    const mine = (await ids()).filter((id) => id.startsWith(`${c.hostname}:`) || id.startsWith(`${d.hostname}:`));
    assert.deepEqual(mine, [`${c.hostname}:c1:80`, `${d.hostname}:c1:80`]);
    offset = 3500; // d's last heartbeat (period 1 s) is now older than three periods, in c's eyes
    await c.bridge.requestResync('periodic');
    const after = (await ids()).filter((id) => id.startsWith(`${c.hostname}:`) || id.startsWith(`${d.hostname}:`));
    assert.deepEqual(after, [`${c.hostname}:c1:80`]);
  });
});
