// The follower's decision on a catalog index move it has not explained yet (explain-step.ts), one row per
// situation a real Consul produces: a node leaving (one index, many services), index noise (KV and
// coordinate writes between two catalog answers), a count-preserving change, the extinction index, a
// /v1/txn writing several services at one index.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextExplainStep, VERIFY_REASON, type ExplainInputs, type ExplainStep } from '../../balancer/src/discovery/explain-step.js';

const base: ExplainInputs = {
  notByInstance: 1,
  unnamed: 1,
  answersUnnamed: 1,
  ownReadsPending: false,
  anyReadUnderWay: false,
  waitLeftMs: 0,
  checksCaughtUp: true,
  checksGraceLeftMs: 0,
  guess: undefined,
  summaryUsable: true,
  summaryReflects: false,
  summariesLeft: true,
  summaryInFlight: false,
};

const rows: { name: string; inputs: Partial<ExplainInputs>; step: ExplainStep['kind'] }[] = [
  // the randomized follower test's divergence (seeds 1926614422, 442435732, 499546337): an ID re-registered
  // on another port at g, another services write at I in the same answer, a read names I; the summary
  // matches every count. g looks exactly like KV noise: it must be read, not accepted ('accept-gaps' was)
  { name: 'count-preserving move below a named catalog write (the divergence)', inputs: { summaryReflects: true, answersUnnamed: 0, notByInstance: 2, unnamed: 1 }, step: 'rescan' },
  { name: 'a deregistration and a registration of one service below a named write', inputs: { summaryReflects: true, answersUnnamed: 0, notByInstance: 3, unnamed: 2 }, step: 'rescan' },
  // KV writes between two answers, the summary read: on plain HTTP the same inputs as the rows above
  { name: 'index noise around a read registration, the summary read', inputs: { summaryReflects: true, answersUnnamed: 0, notByInstance: 7, unnamed: 7 }, step: 'rescan' },
  { name: 'a gap left, checks signal not caught up, grace left', inputs: { summaryReflects: true, answersUnnamed: 0, unnamed: 1, checksCaughtUp: false, checksGraceLeftMs: 20 }, step: 'wait' },
  // node leave: the leave index named by reads as their own index only, the summary counted every service
  { name: 'node leave: what is left is a deletion a read named, every count matches', inputs: { summaryReflects: true, answersUnnamed: 0, notByInstance: 1, unnamed: 0 }, step: 'deletions-counted' },
  { name: 'a registration with checks, read: its instance names the only write', inputs: { notByInstance: 0, answersUnnamed: 0 }, step: 'explained' },
  // one /v1/txn at one index: an instance of quiet moved to another port (count kept), an instance of web
  // added; the summary sent a read of web, whose new instance names the index: every index is named, yet
  // quiet's move is not read (the step says so: `verify`)
  { name: 'a txn writing two services at one index, a read names one of them', inputs: { notByInstance: 0, unnamed: 0, answersUnnamed: 0, summaryReflects: true }, step: 'explained' },
  // the same txn deleting web's instance instead: named by web's read as its own index, counts match
  { name: 'a txn deleting one service and moving another at one index', inputs: { summaryReflects: true, answersUnnamed: 0, notByInstance: 1, unnamed: 0 }, step: 'deletions-counted' },
  { name: 'the guess is being read', inputs: { ownReadsPending: true }, step: 'await-reads' },
  { name: 'another read under way may name it, time left', inputs: { anyReadUnderWay: true, waitLeftMs: 120 }, step: 'wait' },
  { name: 'a check-less registration: guess the service changed last', inputs: { guess: 'web' }, step: 'guess' },
  { name: 'checks signal not caught up: the summary does not wait for it', inputs: { checksCaughtUp: false, waitLeftMs: 80 }, step: 'summary' },
  { name: 'not located by the summary, checks signal not caught up, time left', inputs: { summaryReflects: true, checksCaughtUp: false, waitLeftMs: 80, checksGraceLeftMs: 20 }, step: 'wait' },
  { name: 'not located by the summary, checks grace over', inputs: { summaryReflects: true, checksCaughtUp: false, waitLeftMs: 80 }, step: 'rescan' },
  // the guess read named the node-leave index as its own index only: 49 other services may have lost instances
  { name: 'node leave: the guess named the index only as its own (a deletion)', inputs: { answersUnnamed: 0, unnamed: 0 }, step: 'summary' },
  // KV writes between two answers: the registration is named, the gap is not
  { name: 'index noise around a read registration', inputs: { notByInstance: 7, unnamed: 7, answersUnnamed: 0 }, step: 'summary' },
  { name: 'summary read, its re-reads under way', inputs: { summaryReflects: true, ownReadsPending: true }, step: 'await-reads' },
  // one instance out and another in inside one answer, no check, nothing guessed it: the summary cannot see it
  { name: 'count-preserving change the summary cannot see', inputs: { summaryReflects: true, answersUnnamed: 1 }, step: 'rescan' },
  { name: 'no guess after the summary (it already had its chance)', inputs: { summaryReflects: true, answersUnnamed: 1, guess: 'web' }, step: 'rescan' },
  { name: 'a later move guesses while the summary of an earlier one is read', inputs: { summaryInFlight: true, guess: 'web' }, step: 'guess' },
  { name: 'the summary of an earlier move is read, nothing to guess', inputs: { summaryInFlight: true }, step: 'await-reads' },
  { name: 'no summary on this agent', inputs: { summaryUsable: false }, step: 'rescan' },
  { name: 'summaries used up', inputs: { summariesLeft: false }, step: 'rescan' },
];

describe('explain step', () => {
  for (const r of rows) {
    it(r.name, () => assert.equal(nextExplainStep({ ...base, ...r.inputs }).kind, r.step));
  }
  it('a window closed with every index named is still verified: one index may write services no read names', () => {
    assert.deepEqual(nextExplainStep({ ...base, notByInstance: 0 }), { kind: 'explained', verify: VERIFY_REASON });
    assert.deepEqual(nextExplainStep({ ...base, summaryReflects: true, answersUnnamed: 0, unnamed: 0 }), { kind: 'deletions-counted', verify: VERIFY_REASON });
  });
  it('a guess names its service and a wait its time', () => {
    assert.deepEqual(nextExplainStep({ ...base, guess: 'web' }), { kind: 'guess', service: 'web' });
    assert.deepEqual(nextExplainStep({ ...base, anyReadUnderWay: true, waitLeftMs: 42 }), { kind: 'wait', ms: 42 });
  });
});
