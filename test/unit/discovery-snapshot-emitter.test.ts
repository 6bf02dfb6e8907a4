// The emitter both catalog designs share (discovery/snapshot-emitter.ts): nothing before the follower
// is complete, the first complete snapshot resolves `ready` even with nothing marked changed, a burst of
// changes is one snapshot after one fixed window naming every change, an unchanged follower emits
// nothing, and nothing goes out after the lifetime aborted. Timers are node:test's mock timers.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import pino from 'pino';
import { SnapshotEmitter } from '../../balancer/src/discovery/snapshot-emitter.js';
import type { CatalogInstance, CatalogSnapshot } from '../../balancer/src/routing/types.js';

const logger = pino({ level: 'silent' });
const inst = (port: number) => ({ port }) as unknown as CatalogInstance;

function setup() {
  const entries = new Map<string, { instances: readonly CatalogInstance[] }>();
  let complete = false;
  const seen: { snapshot: CatalogSnapshot; changed: string[] }[] = [];
  const ac = new AbortController();
  const emitter = new SnapshotEmitter({
    debounceMs: 20, entries, complete: () => complete, logger, signal: ac.signal,
    onSnapshot: () => undefined,
    onChange: (snapshot, changed) => seen.push({ snapshot, changed: [...changed].sort() }),
  });
  return { entries, emitter, seen, ac, setComplete: (v: boolean) => (complete = v) };
}

describe('snapshot emitter', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('emits nothing before the follower is complete, then the first snapshot resolves ready', async () => {
    const { entries, emitter, seen, setComplete } = setup();
    entries.set('web', { instances: [inst(1)] });
    emitter.schedule();
    mock.timers.tick(20);
    assert.equal(seen.length, 0);
    assert.equal(emitter.readyResolved, false);
    setComplete(true);
    emitter.schedule();
    assert.equal(emitter.scheduled, true);
    mock.timers.tick(20);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0].snapshot.services, { web: [inst(1)] });
    assert.deepEqual(await emitter.ready, seen[0].snapshot);
    assert.equal(emitter.current(), seen[0].snapshot);
  });

  it('coalesces a burst into one snapshot after one fixed window, naming every change', () => {
    const { entries, emitter, seen, setComplete } = setup();
    setComplete(true);
    emitter.emitNow();
    entries.set('a', { instances: [inst(1)] });
    emitter.changed('a');
    emitter.schedule();
    mock.timers.tick(15);
    entries.set('b', { instances: [inst(2)] });
    emitter.changed('b');
    emitter.schedule(); // does not extend the window
    mock.timers.tick(5);
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[1].changed, ['a', 'b']);
    assert.equal(emitter.pendingChanges, 0);
    assert.equal(emitter.emits, 2);
  });

  it('emits nothing without a change once ready, and nothing after the lifetime aborted', () => {
    const { emitter, seen, ac, setComplete } = setup();
    setComplete(true);
    emitter.emitNow();
    emitter.schedule();
    mock.timers.tick(20);
    assert.equal(seen.length, 1);
    emitter.changed('a');
    emitter.schedule();
    ac.abort();
    assert.equal(emitter.scheduled, false);
    mock.timers.tick(20);
    emitter.emitNow();
    assert.equal(seen.length, 1);
  });
});
