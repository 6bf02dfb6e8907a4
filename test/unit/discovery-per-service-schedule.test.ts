// The per-service design's pure parts (discovery/per-service/stream-schedule.ts): which HTTP/2 session a
// stream goes on within the connection budget, what to start and stop watching, and what a service's
// loop queries next.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blockingCapacity, nextQuery, pickSession, plainReadLimit, planWatches, pollPause, sessionsFor, SHORT_READ_HEADROOM, type QueryOutcome, type SessionLoad } from '../../balancer/src/discovery/per-service/stream-schedule.js';
import { ReadGate } from '../../balancer/src/discovery/per-service/read-gate.js';

const s = (streams: number, maxStreams = 250, usable = true): SessionLoad => ({ streams, maxStreams, usable });

describe('pickSession', () => {
  const rows: { name: string; sessions: SessionLoad[]; max: number; blocking: boolean; want: ReturnType<typeof pickSession> }[] = [
    { name: 'no session yet: open one', sessions: [], max: 16, blocking: true, want: { kind: 'open' } },
    { name: 'fill first: the fullest session with room', sessions: [s(10), s(200), s(3)], max: 16, blocking: true, want: { kind: 'use', index: 1 } },
    { name: 'a blocking query leaves the short-read headroom', sessions: [s(250 - SHORT_READ_HEADROOM)], max: 16, blocking: true, want: { kind: 'open' } },
    { name: 'a short read may use the headroom', sessions: [s(250 - SHORT_READ_HEADROOM)], max: 16, blocking: false, want: { kind: 'use', index: 0 } },
    { name: 'a session past GOAWAY takes nothing, and does not count against the budget', sessions: [s(0, 250, false)], max: 1, blocking: true, want: { kind: 'open' } },
    { name: 'budget reached, all full: full', sessions: [s(248), s(248)], max: 2, blocking: true, want: { kind: 'full' } },
    { name: 'budget reached, headroom left for a short read', sessions: [s(248), s(249)], max: 2, blocking: false, want: { kind: 'use', index: 1 } },
    { name: 'a peer announcing fewer streams is respected', sessions: [s(8, 10)], max: 4, blocking: true, want: { kind: 'open' } },
    { name: 'budget 0: full', sessions: [], max: 0, blocking: false, want: { kind: 'full' } },
  ];
  for (const r of rows) it(r.name, () => assert.deepEqual(pickSession(r.sessions, r.max, r.blocking), r.want));
});

describe('capacity within the connection budget', () => {
  it('16 connections at Go\'s 250 streams hold 3,968 services (2 streams each kept for short reads)', () => {
    assert.equal(blockingCapacity(16, 250), 16 * 248);
  });
  it('sessions needed grow with the services and stop at the budget', () => {
    assert.equal(sessionsFor(0, 250, 16), 1);
    assert.equal(sessionsFor(248, 250, 16), 1);
    assert.equal(sessionsFor(249, 250, 16), 2);
    assert.equal(sessionsFor(1000, 250, 16), 5);
    assert.equal(sessionsFor(5000, 250, 16), 16);
    assert.equal(sessionsFor(5000, 250, 24), 21);
  });
});

describe('planWatches', () => {
  it('starts new names and stops gone ones, each once, sorted', () => {
    assert.deepEqual(planWatches(new Set(['c', 'a', 'b']), new Set(['b', 'd'])), { start: ['a', 'c'], stop: ['d'] });
  });
  it('the same names: nothing to do (a re-tag is read by the service\'s own query)', () => {
    assert.deepEqual(planWatches(new Set(['a']), new Set(['a'])), { start: [], stop: [] });
  });
  it('an empty catalog stops everything', () => {
    assert.deepEqual(planWatches(new Set(), new Set(['a', 'b'])), { start: [], stop: ['a', 'b'] });
  });
});

describe('nextQuery', () => {
  const o = (over: Partial<QueryOutcome>): QueryOutcome => ({ sentIndex: 5, answeredIndex: 9, failuresInRow: 0, elapsedMs: 50, minIntervalMs: 10, backoffMs: 0, overflow: false, pollMs: 2000, ...over });
  const rows: { name: string; outcome: QueryOutcome; want: ReturnType<typeof nextQuery> }[] = [
    { name: 'an answer re-arms at its index at once', outcome: o({}), want: { kind: 'block', index: 9, afterMs: 0 } },
    { name: 'an answer that came at once waits out the rate limit (no hot loop)', outcome: o({ answeredIndex: 5, elapsedMs: 2, minIntervalMs: 10 }), want: { kind: 'block', index: 5, afterMs: 8 } },
    { name: 'an index reset (0) reads again from 0', outcome: o({ answeredIndex: 0 }), want: { kind: 'block', index: 0, afterMs: 0 } },
    { name: 'a failure starts over from 0 after its backoff', outcome: o({ answeredIndex: undefined, backoffMs: 750 }), want: { kind: 'block', index: 0, afterMs: 750 } },
    { name: 'past the budget: poll after the poll pause', outcome: o({ overflow: true }), want: { kind: 'poll', afterMs: 2000 } },
    { name: 'past the budget and failing: the longer of backoff and poll pause', outcome: o({ overflow: true, answeredIndex: undefined, backoffMs: 5000 }), want: { kind: 'poll', afterMs: 5000 } },
  ];
  for (const r of rows) it(r.name, () => assert.deepEqual(nextQuery(r.outcome), r.want));
});

describe('pollPause: every poll past the budget together stays under maxPollsPerSec', () => {
  const rows: { name: string; polled: number; pollMs: number; maxPollsPerSec: number; want: number }[] = [
    { name: 'a few polled services: the plain pause', polled: 10, pollMs: 2000, maxPollsPerSec: 200, want: 2000 },
    { name: 'exactly at the rate', polled: 400, pollMs: 2000, maxPollsPerSec: 200, want: 2000 },
    { name: '1,032 polled (5,000 services at 16 connections): stretched to 200/s', polled: 1032, pollMs: 2000, maxPollsPerSec: 200, want: 5160 },
    { name: '20,000 polled: still 200/s', polled: 20_000, pollMs: 2000, maxPollsPerSec: 200, want: 100_000 },
    { name: 'no bound (0): the plain pause', polled: 5000, pollMs: 2000, maxPollsPerSec: 0, want: 2000 },
    { name: 'nothing polled', polled: 0, pollMs: 2000, maxPollsPerSec: 200, want: 2000 },
  ];
  for (const r of rows) it(r.name, () => {
    const pause = pollPause(r.polled, r.pollMs, r.maxPollsPerSec);
    assert.equal(pause, r.want);
    if (r.maxPollsPerSec > 0 && r.polled > 0) assert.ok((r.polled * 1000) / pause <= r.maxPollsPerSec, 'the rate bound holds');
  });
});

describe('ReadGate: at most `limit` plain reads in flight, first come first served', () => {
  it('admits up to the limit at once, the next ones in order as reads end', async () => {
    const gate = new ReadGate(2);
    const signal = new AbortController().signal;
    const a = await gate.enter(signal);
    const b = await gate.enter(signal);
    const order: string[] = [];
    const c = gate.enter(signal).then((end) => (order.push('c'), end));
    const d = gate.enter(signal).then((end) => (order.push('d'), end));
    assert.deepEqual(gate.stats(), { limit: 2, peakLimit: 2, inFlight: 2, peak: 2, waiting: 2 });
    a!();
    a!(); // ending twice frees one place only
    const endC = await c;
    assert.deepEqual(order, ['c']);
    assert.deepEqual(gate.stats(), { limit: 2, peakLimit: 2, inFlight: 2, peak: 2, waiting: 1 });
    b!();
    const endD = await d;
    assert.deepEqual(order, ['c', 'd']);
    endC!();
    endD!();
    assert.deepEqual(gate.stats(), { limit: 2, peakLimit: 2, inFlight: 0, peak: 2, waiting: 0 });
  });

  it('a waiting read whose signal aborts leaves the queue with undefined and takes no place', async () => {
    const gate = new ReadGate(1);
    const end = await gate.enter(new AbortController().signal);
    const ac = new AbortController();
    const waiting = gate.enter(ac.signal);
    ac.abort();
    assert.equal(await waiting, undefined);
    assert.equal(await gate.enter(ac.signal), undefined, 'an aborted signal never enters');
    end!();
    assert.deepEqual(gate.stats(), { limit: 1, peakLimit: 1, inFlight: 0, peak: 1, waiting: 0 });
    assert.ok(await gate.enter(new AbortController().signal), 'the place is free again');
  });
});

describe('plainReadLimit: as many plain reads as the agent answers in a quarter of the read deadline', () => {
  const rows: { name: string; answered: number; windowMs: number; readTimeoutMs: number; want: number }[] = [
    { name: 'a busy agent, 10 answers/s, 30 s deadline: 75', answered: 10, windowMs: 1000, readTimeoutMs: 30_000, want: 75 },
    { name: 'the answers of a late window count per second', answered: 15, windowMs: 1500, readTimeoutMs: 30_000, want: 75 },
    { name: 'a round-trip-bound start (32 answered in 1 s) grows 7.5x', answered: 32, windowMs: 1000, readTimeoutMs: 30_000, want: 240 },
    { name: 'a fast agent: capped at 4,096', answered: 2000, windowMs: 1000, readTimeoutMs: 30_000, want: 4096 },
    { name: 'nothing answered (idle, or nothing asked): the floor of 32', answered: 0, windowMs: 1000, readTimeoutMs: 30_000, want: 32 },
    { name: 'a short deadline: 200/s x 250 ms = 50', answered: 200, windowMs: 1000, readTimeoutMs: 1000, want: 50 },
    { name: 'no window (a clock that did not move): the floor', answered: 50, windowMs: 0, readTimeoutMs: 30_000, want: 32 },
  ];
  for (const r of rows) it(r.name, () => assert.equal(plainReadLimit(r.answered, r.windowMs, r.readTimeoutMs), r.want));
});

describe('ReadGate.setLimit', () => {
  it('a higher limit admits waiting reads at once, a lower one lets those in flight finish', async () => {
    const gate = new ReadGate(1);
    const signal = new AbortController().signal;
    const first = await gate.enter(signal);
    const second = gate.enter(signal);
    const third = gate.enter(signal);
    gate.setLimit(3);
    const [endSecond, endThird] = await Promise.all([second, third]);
    assert.deepEqual(gate.stats(), { limit: 3, peakLimit: 3, inFlight: 3, peak: 3, waiting: 0 });
    gate.setLimit(1);
    const fourth = gate.enter(signal);
    first!();
    endSecond!();
    assert.equal(gate.stats().waiting, 1, 'two of three ended: still at the lower limit of 1');
    endThird!();
    (await fourth)!();
    assert.deepEqual(gate.stats(), { limit: 1, peakLimit: 3, inFlight: 0, peak: 3, waiting: 0 });
  });
});
