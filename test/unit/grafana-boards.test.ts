// The Grafana boards in docs/grafana only query metric names the programs export: every
// `${prefix}_...` / `registrator_...` name in a panel's expression is a rendered family (or a
// histogram's _bucket/_count/_sum series), so renaming a family cannot silently empty a panel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BalancerMetrics } from '../../balancer/src/metrics/balancer-metrics.js';
import { RegistratorMetrics } from '../../registrator/src/metrics/registrator-metrics.js';

interface Panel { title?: string; targets?: { expr?: string }[]; panels?: Panel[] }

function exprs(file: string): { title: string; expr: string }[] {
  const board = JSON.parse(readFileSync(path.resolve('docs/grafana', file), 'utf8')) as { panels: Panel[] };
  const out: { title: string; expr: string }[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ title: p.title ?? '?', expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(board.panels);
  return out;
}

function exported(families: { name: string; type: string }[]): Set<string> {
  const names = new Set<string>();
  for (const f of families) {
    names.add(f.name);
    if (f.type === 'histogram') for (const s of ['_bucket', '_count', '_sum']) names.add(f.name + s);
  }
  return names;
}

test('balancer board: every metric a panel queries is exported', () => {
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: [0.1, 1], maxServersPerService: 10 }, {
    mode: 'dynamic',
    table: () => ({ version: 'v', swaps: 0, upstreams: 0 }),
    workers: () => ({ generation: 1, workersAlive: 1, workersReady: 1, restarts: 0, reloads: 0 }),
    consul: () => ({ reachable: true }),
    dump: () => ({ writes: 0, failures: 0 }),
  });
  try {
    const names = exported(m.families());
    const used = exprs('balancer.json');
    assert.ok(used.length >= 20, `panels found: ${used.length}`);
    let checked = 0;
    for (const { title, expr } of used) {
      for (const [, name] of expr.matchAll(/\$\{prefix\}_([a-z_]+)/g)) {
        checked++;
        assert.ok(names.has(`balancer_${name}`), `panel "${title}" queries \${prefix}_${name}, which is not exported`);
      }
    }
    assert.ok(checked >= used.length, `names checked: ${checked}`);
  } finally {
    m.stop();
  }
});

test('registrator board: every metric a panel queries is exported', () => {
  const m = new RegistratorMetrics();
  const names = exported(m.families());
  const used = exprs('registrator.json');
  assert.ok(used.length >= 5, `panels found: ${used.length}`);
  let checked = 0;
  for (const { title, expr } of used) {
    for (const [name] of expr.matchAll(/registrator_[a-z_]+/g)) {
      checked++;
      assert.ok(names.has(name), `panel "${title}" queries ${name}, which is not exported`);
    }
  }
  assert.ok(checked >= used.length, `names checked: ${checked}`);
});
