// Which writes a catalog move covered and which are accounted for (write-ledger.ts), the catalog
// summary's instance counts (catalog-summary.ts) and the raft indexes a health answer names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_WINDOW, WriteLedger } from '../../balancer/src/discovery/write-ledger.js';
import { parseCatalogSummary, servicesWithOtherCounts } from '../../balancer/src/discovery/catalog-summary.js';
import { answerIndexes } from '../../balancer/src/discovery/health-entries.js';
import { canonicalServicesText } from '../../balancer/src/discovery/consul-catalog.js';

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

  // deleteNodeTxn removes every service of a node at one index: a read naming it only as its own
  // index says nothing about the other services, so it is not an instance's write
  const kinds: { name: string; instance: number[]; read: number[]; answers: number[]; target: number; notByInstance: number; answersUnnamed: number[] }[] = [
    { name: 'a registration read (its instance names the index)', instance: [11], read: [11], answers: [11], target: 11, notByInstance: 0, answersUnnamed: [] },
    { name: 'a deregistration read (only its own index)', instance: [], read: [11], answers: [11], target: 11, notByInstance: 1, answersUnnamed: [] },
    { name: 'KV writes before a read registration', instance: [14], read: [14], answers: [14], target: 14, notByInstance: 3, answersUnnamed: [] },
    { name: 'two answers, the earlier write unread', instance: [14], read: [14], answers: [12, 14], target: 14, notByInstance: 3, answersUnnamed: [12] },
    { name: 'nothing read', instance: [], read: [], answers: [13], target: 13, notByInstance: 3, answersUnnamed: [13] },
  ];
  for (const c of kinds) {
    it(`kinds: ${c.name}`, () => {
      const l = new WriteLedger();
      l.reset(10);
      l.attribute(c.instance, 'instance');
      l.attribute(c.read, 'read');
      for (const a of c.answers) l.noteAnswer(a);
      assert.equal(l.notByInstance(c.target), c.notByInstance);
      assert.deepEqual(l.answersUnnamed(c.target), c.answersUnnamed);
    });
  }

  // what a rescan must cover: every service whose read started before the last gap was current
  const lastGap: { name: string; instance: number[]; read: number[]; target: number; last: number }[] = [
    { name: 'a port move (12) below a named write (14), KV at 13', instance: [14], read: [14], target: 14, last: 13 },
    { name: 'the answer write itself unnamed', instance: [12], read: [], target: 14, last: 14 },
    { name: 'a deletion named as a read is no gap', instance: [11, 12], read: [13, 14], target: 14, last: 0 },
    { name: 'every index named', instance: [11, 12, 13], read: [], target: 13, last: 0 },
    { name: 'a window larger than the bound: the target', instance: [], read: [], target: 10 + MAX_WINDOW + 5, last: 10 + MAX_WINDOW + 5 },
  ];
  for (const c of lastGap) {
    it(`last gap: ${c.name}`, () => {
      const l = new WriteLedger();
      l.reset(10);
      l.attribute(c.instance, 'instance');
      l.attribute(c.read, 'read');
      assert.equal(l.lastUnattributed(c.target), c.last);
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
  it('reads instance counts and nodes per name, skips peered services', () => {
    const parsed = parseCatalogSummary([
      { Name: 'web', InstanceCount: 3, ChecksPassing: 3, Nodes: ['n1', 'n2'] },
      { Name: 'api', InstanceCount: 1 },
      { Name: 'web', InstanceCount: 2, PeerName: 'other' },
    ]);
    assert.ok(parsed.ok);
    assert.deepEqual([...parsed.services].map(([n, r]) => [n, r.count, r.nodes ? [...r.nodes] : undefined]), [['web', 3, ['n1', 'n2']], ['api', 1, undefined]]);
  });

  // agent/ui_endpoint.go answers a nil slice as null when nothing is visible: an empty catalog, not a refusal
  it('reads null as an empty catalog', () => {
    const parsed = parseCatalogSummary(null);
    assert.ok(parsed.ok);
    assert.equal(parsed.services.size, 0);
  });

  it('keeps a sidecar proxy row under its own name and only the default namespace of a repeated name', () => {
    const parsed = parseCatalogSummary([
      { Name: 'web', InstanceCount: 2, Namespace: 'default' },
      { Name: 'web', InstanceCount: 5, Namespace: 'team-a' },
      { Kind: 'connect-proxy', Name: 'web-sidecar-proxy', InstanceCount: 2 },
      { Name: 'db', InstanceCount: 1, Partition: 'other' },
    ]);
    assert.ok(parsed.ok);
    assert.deepEqual([...parsed.services].map(([n, r]) => [n, r.count]), [['web', 2], ['web-sidecar-proxy', 2]]);
  });

  for (const [what, body] of [['not a list', { web: 1 }], ['a row without a count', [{ Name: 'web' }]], ['a row that is not an object', [1]]] as const) {
    it(`is unusable when ${what}`, () => assert.equal(parseCatalogSummary(body).ok, false));
  }

  it('names the followed services whose count or node set differs, including ones not read yet', () => {
    const row = (count: number, nodes?: string[]) => ({ count, ...(nodes ? { nodes: new Set(nodes) } : {}) });
    const summary = new Map([['web', row(3)], ['api', row(1)], ['db', row(2)], ['consul', row(1)], ['cache', row(2, ['n1', 'n2'])], ['queue', row(1, ['n1'])]]);
    // cache: one instance moved from n3 to n2 inside one answer (count unchanged, nodes not)
    const held = new Map([['web', row(3)], ['api', row(2)], ['cache', row(2, ['n1', 'n3'])], ['queue', row(1, ['n1'])]]);
    assert.deepEqual(servicesWithOtherCounts(summary, held, (n) => n !== 'consul'), ['api', 'cache', 'db']);
  });
});

describe('catalog services answer, canonical', () => {
  it('is the same text whatever the order of the tags (Go map order on a real agent)', () => {
    assert.equal(canonicalServicesText({ web: ['b', 'a'], api: [] }), canonicalServicesText({ api: [], web: ['a', 'b'] }));
    assert.notEqual(canonicalServicesText({ web: ['a'] }), canonicalServicesText({ web: ['a', 'b'] }));
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
