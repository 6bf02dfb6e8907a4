// Rescans one at a time (rescan-queue.ts): the gaps found while one runs fold into at most one more.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RescanQueue } from '../../balancer/src/discovery/rescan-queue.js';

describe('rescan queue', () => {
  it('starts a rescan when none runs', () => {
    const q = new RescanQueue();
    assert.deepEqual(q.ask({ reason: 'gap', threshold: 10 }), { kind: 'start', rescan: { reason: 'gap', threshold: 10 } });
    assert.equal(q.running, true);
  });

  it('queues one asked for meanwhile, folds later ones into it with the highest threshold and the first reason', () => {
    const q = new RescanQueue();
    q.ask({ reason: 'gap', threshold: 10 });
    assert.deepEqual(q.ask({ reason: 'gap', threshold: 14 }), { kind: 'queued', coalesced: false });
    assert.deepEqual(q.ask({ reason: 'periodic resync', threshold: Number.POSITIVE_INFINITY }), { kind: 'queued', coalesced: true });
    assert.deepEqual(q.ask({ reason: 'gap', threshold: 12 }), { kind: 'queued', coalesced: true });
    assert.deepEqual(q.queued, { reason: 'gap', threshold: Number.POSITIVE_INFINITY });
  });

  it('when the running one ends, the queued one runs; when that ends, none', () => {
    const q = new RescanQueue();
    q.ask({ reason: 'gap', threshold: 10 });
    q.ask({ reason: 'gap', threshold: 14 });
    assert.deepEqual(q.finished(), { reason: 'gap', threshold: 14 });
    assert.equal(q.running, true);
    assert.equal(q.queued, undefined);
    assert.equal(q.finished(), undefined);
    assert.equal(q.running, false);
    assert.equal(q.finished(), undefined, 'nothing runs: nothing to end');
    assert.equal(q.ask({ reason: 'gap', threshold: 20 }).kind, 'start');
  });
});
