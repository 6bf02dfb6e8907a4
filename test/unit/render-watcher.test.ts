import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import type { FetchOptions, FetchResult } from '../../balancer/src/render/consul-fetch.js';
import { aggregateStatus, instancesView, kvPairsView, servicesView } from '../../balancer/src/render/consul-fetch.js';
import type { Dependency, DependencyValue } from '../../balancer/src/render/dependencies.js';
import { DependencyWatcher } from '../../balancer/src/render/dependency-watcher.js';

const logger = pino({ level: 'silent' });
const endpoint = { baseUrl: 'http://127.0.0.1:1' };

function until(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out: ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

test('reports a value only when its content changed; passes the returned index on', async () => {
  const ac = new AbortController();
  const answers: DependencyValue[] = [
    { kind: 'key', value: 'a' },
    { kind: 'key', value: 'a' },
    { kind: 'key', value: 'b' },
  ];
  const indexes: number[] = [];
  let call = 0;
  const got: unknown[] = [];
  const w = new DependencyWatcher({
    endpoint, logger, signal: ac.signal, minIntervalMs: 0,
    fetch: async (_e, _d, o: FetchOptions): Promise<FetchResult> => {
      indexes.push(o.index);
      if (call >= answers.length) {
        await new Promise<void>((r) => o.signal.addEventListener('abort', () => r(), { once: true }));
        throw new Error('aborted');
      }
      return { value: answers[call++], index: 10 + call };
    },
    onValue: (key, v) => got.push([key, v.kind === 'key' ? v.value : undefined]),
  });
  w.set([{ kind: 'key', path: 'k' }]);
  await until('three answers', () => call === 3 && indexes.length === 4);
  assert.deepEqual(got, [['key:k', 'a'], ['key:k', 'b']]);
  assert.deepEqual(indexes, [0, 11, 12, 13]);
  ac.abort();
});

test('errors back off with full jitter, reset the index, and recover', async () => {
  const ac = new AbortController();
  const times: number[] = [];
  const indexes: number[] = [];
  let call = 0;
  const errors: string[] = [];
  let value: string | undefined;
  const w = new DependencyWatcher({
    endpoint, logger, signal: ac.signal, minIntervalMs: 0, baseBackoffMs: 40, maxBackoffMs: 100, random: () => 1,
    fetch: async (_e, _d, o): Promise<FetchResult> => {
      times.push(Date.now());
      indexes.push(o.index);
      call++;
      if (call === 1) return { value: { kind: 'key', value: 'first' }, index: 5 };
      if (call <= 4) throw Object.assign(new Error(`boom ${call}`), { code: 'ERR_TEST' });
      if (call === 5) return { value: { kind: 'key', value: 'recovered' }, index: 7 };
      await new Promise<void>((r) => o.signal.addEventListener('abort', () => r(), { once: true }));
      throw new Error('aborted');
    },
    onValue: (_k, v) => (value = v.kind === 'key' ? (v.value ?? undefined) : undefined),
    onError: (_k, err) => errors.push(err.message),
  });
  w.set([{ kind: 'key', path: 'k' }]);
  await until('recovered', () => value === 'recovered');
  assert.deepEqual(errors, ['boom 2', 'boom 3', 'boom 4']);
  // delays with random() = 1: 40, 80, 100 (capped)
  const gaps = [times[2] - times[1], times[3] - times[2], times[4] - times[3]];
  assert.ok(gaps[0] >= 35 && gaps[1] >= 75 && gaps[2] >= 95, `gaps ${gaps.join(',')}`);
  assert.deepEqual(indexes.slice(0, 5), [0, 5, 0, 0, 0], 'index reset after an error');
  ac.abort();
});

test('set() starts new loops and stops the ones no longer needed; abort stops everything', async () => {
  const ac = new AbortController();
  const active = new Set<string>();
  const fetch = async (_e: unknown, d: Dependency, o: FetchOptions): Promise<FetchResult> => {
    const k = JSON.stringify(d);
    active.add(k);
    await new Promise<void>((r) => o.signal.addEventListener('abort', () => r(), { once: true }));
    active.delete(k);
    throw new Error('aborted');
  };
  const w = new DependencyWatcher({ endpoint, logger, signal: ac.signal, fetch, onValue: () => undefined });
  assert.deepEqual(w.set([{ kind: 'services' }, { kind: 'service', name: 'web' }]), { added: ['services', 'service:web'], removed: [] });
  await until('two loops', () => active.size === 2);
  assert.deepEqual(w.set([{ kind: 'services' }, { kind: 'prefix', prefix: 'cfg/' }]), { added: ['prefix:cfg/'], removed: ['service:web'] });
  await until('web loop stopped', () => active.size === 2 && !active.has(JSON.stringify({ kind: 'service', name: 'web' })));
  ac.abort();
  await until('all stopped', () => active.size === 0);
});

test('Consul JSON -> template views', () => {
  assert.deepEqual(servicesView({ web: ['b', 'a'], api: null as unknown as string[] }), [{ Name: 'api', Tags: [] }, { Name: 'web', Tags: ['a', 'b'] }]);
  assert.equal(aggregateStatus([{ Status: 'passing' }, { Status: 'warning' }]), 'warning');
  assert.equal(aggregateStatus([{ Status: 'warning' }, { Status: 'critical' }, { Status: 'passing' }]), 'critical');
  assert.equal(aggregateStatus([{ CheckID: '_service_maintenance:web-1', Status: 'critical' }]), 'maintenance');
  assert.equal(aggregateStatus([]), 'passing');
  const inst = instancesView([
    { Node: { Node: 'n2', Address: '10.0.0.2' }, Service: { ID: 'b', Service: 'web', Address: '', Port: 80, Tags: null, Meta: null }, Checks: [{ Status: 'passing' }] },
    { Node: { Node: 'n1', Address: '10.0.0.1' }, Service: { ID: 'a', Service: 'web', Address: '192.168.0.1', Port: 81, Tags: ['x'], Meta: { zone: 'z' } }, Checks: [] },
  ]);
  assert.deepEqual(inst.map((i) => [i.ID, i.Node, i.Address, i.NodeAddress, i.Port, i.Tags, i.Meta, i.Status]), [
    ['a', 'n1', '192.168.0.1', '10.0.0.1', 81, ['x'], { zone: 'z' }, 'passing'],
    ['b', 'n2', '10.0.0.2', '10.0.0.2', 80, [], {}, 'passing'],
  ]);
  assert.deepEqual(kvPairsView('cfg/', [{ Key: 'cfg/b', Value: Buffer.from('2').toString('base64') }, { Key: 'cfg/a', Value: null }]), [
    { Key: 'a', Path: 'cfg/a', Value: '' },
    { Key: 'b', Path: 'cfg/b', Value: '2' },
  ]);
});
