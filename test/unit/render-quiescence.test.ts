import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWaitSpec, Quiescence, type TimerClock } from '../../balancer/src/render/quiescence.js';

/** A manual clock: timers fire only when the test advances time. */
class FakeClock implements TimerClock {
  now = 0;
  private seq = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const next = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }
  get pendingTimers(): number {
    return this.timers.size;
  }
}

function setup(minMs: number, maxMs: number) {
  const clock = new FakeClock();
  const fired: number[] = [];
  const q = new Quiescence({ minMs, maxMs }, () => fired.push(clock.now), clock);
  return { clock, fired, q };
}

test('one change fires after min of quiet', () => {
  const { clock, fired, q } = setup(100, 1000);
  q.notify();
  clock.advance(99);
  assert.deepEqual(fired, []);
  clock.advance(1);
  assert.deepEqual(fired, [100]);
  assert.equal(q.pending, false);
  assert.equal(clock.pendingTimers, 0, 'the max timer is cleared too');
});

test('each change restarts min; a burst fires once, min after the last change', () => {
  const { clock, fired, q } = setup(100, 1000);
  for (let i = 0; i < 5; i++) {
    q.notify();
    clock.advance(50);
  }
  assert.deepEqual(fired, []);
  clock.advance(50);
  assert.deepEqual(fired, [300]);
});

test('a burst that never goes quiet fires at max after its first change', () => {
  const { clock, fired, q } = setup(100, 350);
  for (let i = 0; i < 20; i++) {
    q.notify();
    clock.advance(60);
  }
  // fired at 350 (max), then the next burst started at 360 fires at 360 + 350 = 710, then 1070
  assert.deepEqual(fired, [350, 710, 1070]);
});

test('max counts from the first change of a burst, not from the last fire', () => {
  const { clock, fired, q } = setup(100, 300);
  q.notify();
  clock.advance(100);
  assert.deepEqual(fired, [100]);
  clock.advance(1000);
  for (let i = 0; i < 3; i++) {
    q.notify(); // at 1100, 1190, 1280: min would fire at 1380, max at 1400
    clock.advance(90);
  }
  q.notify(); // at 1370: min moves to 1470, max stays at 1400
  clock.advance(20);
  assert.deepEqual(fired, [100]);
  clock.advance(10);
  assert.deepEqual(fired, [100, 1400]);
});

test('min 0 disables waiting: every change fires at once', () => {
  const { fired, q, clock } = setup(0, 0);
  q.notify();
  q.notify();
  assert.deepEqual(fired, [0, 0]);
  assert.equal(clock.pendingTimers, 0);
});

test('cancel drops a pending burst', () => {
  const { clock, fired, q } = setup(100, 200);
  q.notify();
  q.cancel();
  clock.advance(1000);
  assert.deepEqual(fired, []);
});

test('parseWaitSpec: min:max, min only means max = 4 x min, errors', () => {
  assert.deepEqual(parseWaitSpec('5s:10s'), { minMs: 5000, maxMs: 10000 });
  assert.deepEqual(parseWaitSpec('250ms'), { minMs: 250, maxMs: 1000 });
  assert.deepEqual(parseWaitSpec('0'), { minMs: 0, maxMs: 0 });
  assert.throws(() => parseWaitSpec('10s:5s'), /max must be >= min/);
  assert.throws(() => parseWaitSpec('x'), (e: unknown) => (e as { code?: string }).code === 'ERR_WAIT_SPEC');
  assert.throws(() => parseWaitSpec('1s:2s:3s'), /min or min:max/);
  assert.throws(() => parseWaitSpec('1s:999h'), /timer/);
  assert.throws(() => parseWaitSpec('200h'), /timer/, 'min only: max = 4 x min = 800h');
});
