// watchSlot: a watcher blocks on a reserved slot while the budget has one to give (reads always keep
// one), else polls with plain reads inside the read share after a jittered, bounded pause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsulBudget } from '../../balancer/src/discovery/consul-budget.js';
import { pollDelay, watchSlot, type WatchCall } from '../../balancer/src/discovery/watch-slot.js';

const never = new AbortController().signal;

test('slots are granted while the budget leaves the reads one connection, then watchers poll', () => {
  const budget = new ConsulBudget({ maxConns: 4, dispatcher: {} as never });
  assert.equal(budget.reserve(2), 2); // the catalog signals, first
  const a = watchSlot(budget);
  const b = watchSlot(budget);
  const c = watchSlot(budget);
  assert.deepEqual([a.blocking, b.blocking, c.blocking], [true, false, false]);
  assert.equal(budget.stats().reserved, 3);
  assert.equal(budget.stats().readLimit, 1, 'the reads keep one connection');
  a.release();
  a.release();
  assert.equal(budget.stats().reserved, 2, 'release is idempotent');
});

test('a blocking slot passes the index; a polling one reads with index 0 and a deadline, inside the read share', async () => {
  const budget = new ConsulBudget({ maxConns: 4, dispatcher: {} as never });
  budget.reserve(3);
  const blocking = watchSlot(undefined);
  const calls: WatchCall[] = [];
  await blocking.query(never, 42, async (c) => void calls.push(c));
  const polling = watchSlot(budget, { pollMs: 100, random: () => 0 });
  assert.equal(polling.blocking, false);
  let inFlightDuring = -1;
  await polling.query(never, 0, async (c) => {
    calls.push(c);
    inFlightDuring = budget.stats().readsInFlight;
  });
  assert.deepEqual(calls[0], { index: 42 });
  assert.equal(calls[1].index, 0);
  assert.ok((calls[1].timeoutMs ?? 0) > 0, 'a poll has a deadline');
  assert.equal(inFlightDuring, 1, 'the poll counted in the read share');
});

test('polls after a success wait a jittered pause; the first one and one after a failure do not', async () => {
  const budget = new ConsulBudget({ maxConns: 4, dispatcher: {} as never });
  budget.reserve(3);
  const slot = watchSlot(budget, { pollMs: 1000, random: () => 0 }); // pause = 750 ms
  const timed = async (fail = false): Promise<number> => {
    const t0 = performance.now();
    await slot.query(never, 7, async () => { if (fail) throw new Error('down'); }).catch(() => undefined);
    return performance.now() - t0;
  };
  assert.ok(await timed() < 500, 'first poll at once');
  assert.ok(await timed(true) >= 740, 'after a success: paused');
  assert.ok(await timed() < 500, 'after a failure (the watcher backed off itself): at once');
});

test('pollDelay: 75-125 % of the interval, never below 100 ms', () => {
  assert.equal(pollDelay(2000, () => 0), 1500);
  assert.equal(pollDelay(2000, () => 1), 2500);
  assert.equal(pollDelay(0, () => 0), 100);
  assert.equal(pollDelay(Number.NaN, () => 0.5), 2000);
});
