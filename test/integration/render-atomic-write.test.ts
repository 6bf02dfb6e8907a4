// The renderer never leaves a half-written file: a process rewriting a large output in a loop with
// writeFileAtomic is SIGKILLed at random moments; every time, the file holds one complete version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { contentHash, removeStaleTempFiles } from '../../balancer/src/render/atomic-write.js';

const fromTs = import.meta.url.endsWith('.ts');
const moduleUrl = new URL(`../../balancer/src/render/atomic-write.${fromTs ? 'ts' : 'js'}`, import.meta.url).href;

/** Two versions, 4 MiB each, so a write takes long enough to be interrupted mid-way. */
function version(tag: string): string {
  const line = `${tag} ${'x'.repeat(1000)}\n`;
  return `BEGIN ${tag}\n${line.repeat(4096)}END ${tag}\n`;
}

const CHILD = `
import { writeFileAtomic } from ${JSON.stringify(moduleUrl)};
const [out, a, b] = process.argv.slice(-3);
const { readFileSync } = await import('node:fs');
const versions = [readFileSync(a, 'utf8'), readFileSync(b, 'utf8')];
process.stdout.write('ready\\n');
for (let i = 0; i < 100000; i++) await writeFileAtomic(out, versions[i % 2]);
`;

test('SIGKILL mid-write leaves the old or the new complete file, never a partial one', async (t) => {
  const dir = await mkdtemp(join(os.tmpdir(), 'render-atomic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const a = version('A');
  const b = version('B');
  const valid = new Set([contentHash(a), contentHash(b)]);
  const aPath = join(dir, 'a.src');
  const bPath = join(dir, 'b.src');
  await writeFile(aPath, a);
  await writeFile(bPath, b);
  const out = join(dir, 'out', 'rendered.conf');
  await (await import('node:fs/promises')).mkdir(join(dir, 'out'));
  await writeFile(out, a);

  const seen = { A: 0, B: 0 };
  const rounds = 12;
  for (let round = 0; round < rounds; round++) {
    const child = spawn(process.execPath, [...(fromTs ? ['--import', 'tsx'] : []), '--input-type=module', '-e', CHILD, out, aPath, bPath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('writer did not start')), 15_000);
        child.stdout.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      // kill at a random point of the write loop (each write of 4 MiB + fsync takes a few ms)
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 150));
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const content = await readFile(out, 'utf8');
    assert.ok(valid.has(contentHash(content)), `round ${round}: ${content.length} bytes, starts ${JSON.stringify(content.slice(0, 8))}, ends ${JSON.stringify(content.slice(-8))}`);
    seen[content.startsWith('BEGIN A') ? 'A' : 'B']++;
  }
  // Temp files of killed writers may remain (as with any crash); the target is never one of them.
  const left = (await readdir(join(dir, 'out'))).filter((f) => f !== 'rendered.conf');
  assert.ok(left.every((f) => f.endsWith('.tmp')), `unexpected files: ${left.join(', ')}`);
  t.diagnostic(`final versions seen: A=${seen.A} B=${seen.B}; leftover temp files ${left.length}`);
  // The renderer clears them at start (their writers are dead); the target is untouched.
  const removed = await removeStaleTempFiles(out);
  assert.equal(removed.length, left.length);
  assert.deepEqual(await readdir(join(dir, 'out')), ['rendered.conf']);
});
