// Docker event decoding, backoff schedule and the per-container serial queue.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from '../../common/backoff.js';
import { toContainerEvent } from '../../registrator/src/docker/events.js';
import { KeyedSerialQueue } from '../../registrator/src/keyed-queue.js';

test('container events decode from the modern and the legacy shape; others are ignored', () => {
  assert.deepEqual(toContainerEvent({ Type: 'container', Action: 'die', Actor: { ID: 'abc', Attributes: { name: 'web', exitCode: '3' } } }),
    { containerId: 'abc', action: 'die', name: 'web', exitCode: 3 });
  assert.deepEqual(toContainerEvent({ status: 'start', id: 'abc' }), { containerId: 'abc', action: 'start' });
  assert.deepEqual(toContainerEvent({ Type: 'container', Action: 'health_status: healthy', Actor: { ID: 'abc' } }),
    { containerId: 'abc', action: 'health_status: healthy' });
  assert.equal(toContainerEvent({ Type: 'network', Action: 'connect', Actor: { ID: 'n' } }), undefined);
  assert.equal(toContainerEvent(null), undefined);
  assert.equal(toContainerEvent({ Type: 'container' }), undefined);
});

test('backoff grows exponentially, is capped, and jitters within [cap/2, cap]', () => {
  const policy = { baseMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(policy, 0, () => 0), 50);
  assert.equal(backoffDelay(policy, 0, () => 1), 100);
  assert.equal(backoffDelay(policy, 3, () => 1), 800);
  assert.equal(backoffDelay(policy, 10, () => 1), 1000);
  assert.equal(backoffDelay(policy, 10, () => 0), 500);
  assert.equal(backoffDelay(policy, 1e9, () => 0.5), 750);
});

test('one key runs serially and in order; other keys run concurrently; waiting calls coalesce', async () => {
  const q = new KeyedSerialQueue();
  const log: string[] = [];
  let active = 0;
  let maxActive = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const task = (label: string, wait?: Promise<void>) => async () => {
    active += 1;
    maxActive = Math.max(maxActive, active);
    log.push(`start ${label}`);
    await (wait ?? Promise.resolve());
    log.push(`end ${label}`);
    active -= 1;
  };
  const first = q.run('a', task('a1', gate));
  const second = q.run('a', task('a2'));
  const third = q.run('a', task('a3')); // joins the waiting a2 run
  assert.equal(third, second);
  const other = q.run('b', task('b1'));
  await other;
  assert.deepEqual(log, ['start a1', 'start b1', 'end b1']);
  release();
  await Promise.all([first, second]);
  assert.deepEqual(log, ['start a1', 'start b1', 'end b1', 'end a1', 'start a2', 'end a2']);
  await q.idle();
  assert.equal(q.activeKeys, 0);
  assert.ok(maxActive <= 2);
});

test('a failing task rejects its callers and does not block the key', async () => {
  const q = new KeyedSerialQueue();
  await assert.rejects(q.run('a', async () => { throw new Error('boom'); }), /boom/);
  let ran = false;
  await q.run('a', async () => { ran = true; });
  assert.ok(ran);
});

test('the event watcher reconnects after the stream ends or fails, reporting every connect before its events', async () => {
  const { PassThrough } = await import('node:stream');
  const { pino } = await import('pino');
  const { watchContainerEvents } = await import('../../registrator/src/docker/events.js');
  let calls = 0;
  const seen: string[] = [];
  const stop = new AbortController();
  const docker = {
    getEvents: async () => {
      calls += 1;
      if (calls === 2) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      const stream = new PassThrough();
      if (calls < 4) {
        setImmediate(() => stream.end());
      } else {
        // a line split over two chunks, then one more event
        setImmediate(() => {
          stream.write('{"Type":"container","Action":"start","Actor":{"ID":"c1"}}\n{"Type":"container",');
          stream.write('"Action":"die","Actor":{"ID":"c1","Attributes":{"exitCode":"0"}}}\n');
        });
      }
      return stream;
    },
  };
  const done = watchContainerEvents({
    docker: docker as never,
    signal: stop.signal,
    logger: pino({ level: 'silent' }),
    backoff: { baseMs: 1, maxMs: 5 },
    onConnected: (n) => seen.push(`connected ${n}`),
    onEvent: (e) => {
      seen.push(`${e.action} ${e.containerId}`);
      if (e.action === 'die') stop.abort();
    },
  });
  await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('watcher did not finish')), 3000))]);
  assert.equal(calls, 4);
  assert.deepEqual(seen, ['connected 1', 'connected 2', 'connected 3', 'start c1', 'die c1']);
});
