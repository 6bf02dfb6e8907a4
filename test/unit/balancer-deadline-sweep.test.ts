// The native engine's shared connection clock: deadlines are plain fields, one sweep expires the
// members whose deadline passed, a member that throws is dropped without stopping the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineSweep, tickFor, type Expiring } from '../../balancer/src/proxy/deadline-sweep.js';

function member(deadline: number, onExpire: (m: Expiring, now: number) => void = () => undefined): Expiring & { expired: number[] } {
  const m = {
    deadline, expired: [] as number[],
    expire(now: number): void { m.expired.push(now); onExpire(m, now); },
  };
  return m;
}

test('tickFor: an eighth of the shortest timeout, within 10..500 ms, zeros ignored', () => {
  const cases: Array<[number[], number]> = [
    [[5_000, 10_000], 500], [[1_000], 125], [[200, 60_000], 25], [[40], 10], [[0, 800], 100], [[], 500],
  ];
  for (const [input, want] of cases) assert.equal(tickFor(input), want, JSON.stringify(input));
});

test('sweep expires only passed, non-zero deadlines; a member may move its deadline or leave', () => {
  let now = 1_000;
  const sweep = new DeadlineSweep(1_000_000, () => now);
  const none = member(0);
  const later = member(2_000);
  const due = member(1_000, (m) => { m.deadline = 0; });
  const moving = member(500, (m, t) => { m.deadline = t + 100; });
  const leaving = member(900, (m) => sweep.delete(m));
  for (const m of [none, later, due, moving, leaving]) sweep.add(m);
  sweep.sweep();
  assert.deepEqual([none.expired, later.expired, due.expired, moving.expired, leaving.expired], [[], [], [1_000], [1_000], [1_000]]);
  assert.equal(sweep.size, 4);
  now = 1_100;
  sweep.sweep();
  assert.deepEqual(moving.expired, [1_000, 1_100]);
  assert.deepEqual(due.expired, [1_000], 'a cleared deadline does not fire again');
  sweep.stop();
  assert.equal(sweep.size, 0);
});

test('a member that throws is dropped and reported; the others still expire', () => {
  const errors: unknown[] = [];
  const sweep = new DeadlineSweep(1_000_000, () => 10, (err, m) => errors.push([err, m]));
  const bad = member(1, () => { throw new Error('bug'); });
  const good = member(1, (m) => { m.deadline = 0; });
  sweep.add(bad);
  sweep.add(good);
  sweep.sweep();
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as [Error, Expiring])[1], bad);
  assert.deepEqual(good.expired, [10]);
  assert.equal(sweep.size, 1);
  sweep.stop();
});

test('the interval runs while there are members and fires deadlines within a tick', async () => {
  const sweep = new DeadlineSweep(10);
  const fired = new Promise<number>((resolve) => sweep.add(member(Date.now() + 30, (m, t) => { m.deadline = 0; resolve(t); })));
  // the sweep's interval is unref'd: a ref'd guard keeps the loop alive and bounds the wait
  let guard: NodeJS.Timeout | undefined;
  const at = await Promise.race([fired, new Promise<never>((_, reject) => { guard = setTimeout(() => reject(new Error('deadline not fired within 2 s')), 2_000); })])
    .finally(() => { clearTimeout(guard); sweep.stop(); });
  assert.ok(at > 0);
});
