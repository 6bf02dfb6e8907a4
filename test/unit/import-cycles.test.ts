// No import circles in the shipped code: a type shared by two files lives in a file both sit above.
// The finder itself is checked on small graphs first, so a finder that sees nothing cannot pass.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { importCycles, importGraph, type ImportGraph } from '../support/import-graph.js';
import { repoRoot } from '../support/repo-root.js';

const SHIPPED = ['balancer/src', 'registrator/src', 'common'];

function graph(edges: Record<string, string[]>): ImportGraph {
  return new Map(Object.entries(edges));
}

describe('importCycles', () => {
  const cases: { name: string; edges: Record<string, string[]>; cycles: string[][] }[] = [
    { name: 'a tree has none', edges: { a: ['b', 'c'], b: ['c'], c: [] }, cycles: [] },
    { name: 'two files importing each other', edges: { a: ['b'], b: ['a'] }, cycles: [['a', 'b', 'a']] },
    { name: 'a file importing itself', edges: { a: ['a'], b: [] }, cycles: [['a', 'a']] },
    { name: 'a long circle, shown from its smallest file', edges: { d: ['b'], b: ['c'], c: ['a'], a: ['d'] }, cycles: [['a', 'd', 'b', 'c', 'a']] },
    { name: 'two separate circles', edges: { a: ['b'], b: ['a'], x: ['y'], y: ['x', 'a'] }, cycles: [['a', 'b', 'a'], ['x', 'y', 'x']] },
    { name: 'the shortest way round a component', edges: { a: ['b', 'c'], b: ['c'], c: ['a'] }, cycles: [['a', 'c', 'a']] },
    { name: 'imports leaving the graph are ignored', edges: { a: ['outside'] }, cycles: [] },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(importCycles(graph(c.edges)), c.cycles));
  }
});

describe('the shipped sources', () => {
  it('read as a graph with the imports one knows are there', () => {
    const g = importGraph(repoRoot(), SHIPPED);
    assert.ok(g.size > 100, `only ${g.size} files read`);
    assert.ok(g.get('balancer/src/proxy/compiled-table.ts')?.includes('balancer/src/balancing/picker.ts'));
    assert.ok(g.get('balancer/src/worker/runtime.ts')?.includes('balancer/src/proxy/transport.ts'), 'type imports are edges');
    assert.ok(g.get('balancer/src/tls/tls-primary.ts')?.includes('balancer/src/tls/acme-manager.ts'), 'dynamic imports are edges');
  });

  it(`have no import circle in ${SHIPPED.join(', ')}`, () => {
    const cycles = importCycles(importGraph(repoRoot(), SHIPPED));
    assert.deepEqual(cycles.map((c) => c.join(' -> ')), []);
  });
});
