// Node 20: AbortSignal.any([longLived, timeout]) on every call adds each result to the long-lived
// signal's dependents for its whole life (~58 bytes per call after GC). The per-call signals of
// common/backoff.ts (linkedSignal, withDeadline, withTimeout) and of every Consul read must not:
// 200,000 calls against one long-lived signal grow the heap by less than a few MB after GC.
// The measurement runs in a child started with --expose-gc.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { linkedSignal, withDeadline, withTimeout } from '../../common/backoff.js';

const CALLS = 200_000;
const LIMIT_BYTES = 3 * 1024 * 1024;

async function measure(kind: string): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const parent = new AbortController();
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setImmediate(r));
      gc();
    }
  };
  const run = async (n: number) => {
    for (let i = 0; i < n; i++) {
      if (kind === 'withDeadline') await withDeadline(parent.signal, 60_000, async (s) => s.aborted);
      else if (kind === 'linkedSignal') linkedSignal(parent.signal, 60_000).dispose();
      else if (kind === 'withTimeout') withTimeout(parent.signal, 1);
      else if (kind === 'any') AbortSignal.any([parent.signal, AbortSignal.timeout(1)]);
      if (i % 10_000 === 0) await new Promise((r) => setImmediate(r));
    }
    // withTimeout unlinks when its timer fires: wait out the 1 ms timers
    if (kind === 'withTimeout' || kind === 'any') await new Promise((r) => setTimeout(r, 50));
  };
  await run(5_000); // warm-up: code, maps and timer lists reach their steady size
  await settle();
  const before = process.memoryUsage().heapUsed;
  await run(CALLS);
  await settle();
  const grown = process.memoryUsage().heapUsed - before;
  parent.abort(); // keeps the parent (and whatever hangs on it) alive until here
  return grown;
}

if (process.env.ABORT_LEAK_CHILD) {
  const grown = await measure(process.env.ABORT_LEAK_CHILD);
  process.stdout.write(`${JSON.stringify({ grown })}\n`);
} else {
  const self = fileURLToPath(import.meta.url);
  const child = (kind: string): number => {
    const r = spawnSync(process.execPath, ['--expose-gc', self], { env: { ...process.env, ABORT_LEAK_CHILD: kind }, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { grown: number }).grown;
  };

  for (const kind of ['withDeadline', 'linkedSignal', 'withTimeout']) {
    test(`${kind}: ${CALLS} calls on one long-lived signal grow the heap by less than ${LIMIT_BYTES / 1024 / 1024} MB after GC`, () => {
      const grown = child(kind);
      assert.ok(grown < LIMIT_BYTES, `heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
    });
  }

  test('the measurement can see the leak: AbortSignal.any on Node 20 grows the heap past the limit', (t) => {
    const grown = child('any');
    // Node 22.x fixed the leak; there the control says nothing and is reported, not asserted
    if (!process.version.startsWith('v20.')) {
      t.diagnostic(`AbortSignal.any grew ${grown} bytes on ${process.version}`);
      return;
    }
    assert.ok(grown > LIMIT_BYTES, `AbortSignal.any grew only ${(grown / 1024 / 1024).toFixed(1)} MB: the measurement would not catch the leak`);
  });
}
