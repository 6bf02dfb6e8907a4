// Process-level handlers (issue 12 item 1), in real child processes: an unhandled rejection or an
// uncaught exception is logged as one JSON line with role, origin and stack; a worker-style guard
// exits with code 70, a primary-style guard keeps running after a rejection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

const guardUrl = new URL('../../common/process-guard.js', import.meta.url).href;

function runScript(body: string): Promise<{ code: number | null; lines: Record<string, unknown>[]; stderr: string }> {
  const script = `
    import { installProcessGuard } from ${JSON.stringify(guardUrl)};
    const line = (level) => (obj, msg) => process.stdout.write(JSON.stringify({ level, ...obj, msg }) + '\\n');
    const logger = { fatal: line('fatal'), error: line('error') };
    ${body}
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr: err, lines: out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) });
    });
  });
}

test('worker guard: an unhandled rejection is logged with context and exits 70', async () => {
  const r = await runScript(`
    installProcessGuard({ logger: () => logger, role: 'balancer worker', exitOnRejection: true });
    Promise.reject(new Error('probe failed: bad path'));
    setTimeout(() => process.stdout.write(JSON.stringify({ msg: 'still alive' }) + '\\n'), 500);
  `);
  assert.equal(r.code, 70, r.stderr);
  assert.equal(r.lines.length, 1, JSON.stringify(r.lines));
  const [l] = r.lines;
  assert.equal(l.level, 'fatal');
  assert.equal(l.role, 'balancer worker');
  assert.equal(l.origin, 'unhandledRejection');
  assert.match(l.msg as string, /unhandled promise rejection in balancer worker: exiting/);
  assert.equal((l.err as { message: string }).message, 'probe failed: bad path');
  assert.match((l.err as { stack: string }).stack, /Error: probe failed/);
});

test('primary guard: a rejection is logged and the process keeps running; non-Error reasons are described', async () => {
  const r = await runScript(`
    installProcessGuard({ logger: () => logger, role: 'balancer primary' });
    Promise.reject({ code: 'ERR_X', detail: 'an object' });
    setTimeout(() => { process.stdout.write(JSON.stringify({ msg: 'still alive' }) + '\\n'); }, 200);
  `);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.lines[0].level, 'error');
  assert.equal(r.lines[0].origin, 'unhandledRejection');
  assert.match((r.lines[0].err as { message: string }).message, /ERR_X/);
  assert.equal(r.lines[1].msg, 'still alive');
});

test('an uncaught exception is logged as fatal and exits 70 in every role', async () => {
  const r = await runScript(`
    installProcessGuard({ logger: () => logger, role: 'registrator' });
    setTimeout(() => { throw new TypeError('boom'); }, 10);
    setTimeout(() => process.stdout.write(JSON.stringify({ msg: 'still alive' }) + '\\n'), 500);
  `);
  assert.equal(r.code, 70, r.stderr);
  assert.equal(r.lines.length, 1);
  assert.equal(r.lines[0].level, 'fatal');
  assert.equal(r.lines[0].origin, 'uncaughtException');
  assert.equal((r.lines[0].err as { type: string }).type, 'TypeError');
});

