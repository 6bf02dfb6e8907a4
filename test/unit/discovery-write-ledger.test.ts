// Which writes a catalog move covered and which are accounted for (write-ledger.ts), the catalog
// summary's instance counts (catalog-summary.ts) and the raft indexes a health answer names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_WINDOW, WriteLedger } from '../../balancer/src/discovery/write-ledger.js';
import { parseCatalogSummary, servicesWithOtherCounts } from '../../balancer/src/discovery/catalog-summary.js';
import { answerIndexes } from '../../balancer/src/discovery/health-entries.js';

describe('write ledger', () => {
  const cases: { name: string; baseline: number; attributed: number[]; target: number; open: number }[] = [
    { name: 'one write, read', baseline: 10, attributed: [11], target: 11, open: 0 },
    { name: 'one write, nothing read', baseline: 10, attributed: [], target: 11, open: 1 },
    // a deregistration (12) and a registration (13) in one answer: reading the registration leaves one open
    { name: 'two writes, the later read', baseline: 10, attributed: [13], target: 13, open: 2 },
    { name: 'a check write read before, then a deregistration read', baseline: 10, attributed: [11, 12], target: 12, open: 0 },
    { name: 'indexes at or below the baseline do not count', baseline: 10, attributed: [9, 10], target: 11, open: 1 },
    { name: 'indexes past the target do not matter', baseline: 10, attributed: [11, 12, 40], target: 12, open: 0 },
    { name: 'a window larger than the bound', baseline: 10, attributed: [], target: 10 + MAX_WINDOW + 5, open: MAX_WINDOW + 1 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const l = new WriteLedger();
      l.reset(c.baseline);
      l.attribute(c.attributed);
      assert.equal(l.unattributed(c.target), c.open);
    });
  }

  it('closing a window moves the baseline and forgets what it held, later indexes stay', () => {
    const l = new WriteLedger();
    l.reset(5);
    l.attribute([6, 7, 9]);
    l.close(7);
    assert.equal(l.coveredTo, 7);
    assert.equal(l.unattributed(9), 1); // 8 open, 9 kept
    l.close(3); // never backwards
    assert.equal(l.coveredTo, 7);
  });
});

describe('catalog summary', () => {
  it('reads instance counts per name, skips peered services', () => {
    const parsed = parseCatalogSummary([
      { Name: 'web', InstanceCount: 3, ChecksPassing: 3 },
      { Name: 'api', InstanceCount: 1 },
      { Name: 'web', InstanceCount: 2, PeerName: 'other' },
    ]);
    assert.ok(parsed.ok);
    assert.deepEqual([...parsed.counts], [['web', 3], ['api', 1]]);
  });

  for (const [what, body] of [['not a list', { web: 1 }], ['a row without a count', [{ Name: 'web' }]], ['a row that is not an object', [1]], ['null', null]] as const) {
    it(`is unusable when ${what}`, () => assert.equal(parseCatalogSummary(body).ok, false));
  }

  it('names the followed services whose count differs, including ones not read yet', () => {
    const counts = new Map([['web', 3], ['api', 1], ['db', 2], ['consul', 1]]);
    const held = new Map([['web', 3], ['api', 2]]);
    assert.deepEqual(servicesWithOtherCounts(counts, held, (n) => n !== 'consul'), ['api', 'db']);
  });
});

describe('health answer indexes', () => {
  it('collects CreateIndex and ModifyIndex of node, service and checks', () => {
    const body = [
      { Node: { Node: 'n1', CreateIndex: 1, ModifyIndex: 2 }, Service: { ID: 'a', CreateIndex: 10, ModifyIndex: 12 }, Checks: [{ CheckID: 'serfHealth', CreateIndex: 1, ModifyIndex: 1 }, { CheckID: 'c', CreateIndex: 10, ModifyIndex: 15 }] },
      { Service: { ID: 'b', CreateIndex: 'x', ModifyIndex: -1 }, Checks: null },
      7,
    ];
    assert.deepEqual(answerIndexes(body).sort((a, b) => a - b), [1, 1, 1, 2, 10, 10, 12, 15]);
    assert.deepEqual(answerIndexes({}), []);
  });
});
