import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runReloadCommand } from '../../balancer/src/render/reload-command.js';
import { parseRenderCliArgs } from '../../balancer/src/render/cli.js';

test('reload command: exit code and stderr are reported', async () => {
  const ok = await runReloadCommand('echo fine', { timeoutMs: 5000 });
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.timedOut, false);
  const bad = await runReloadCommand('echo "nginx: [emerg] bad" >&2; exit 1', { timeoutMs: 5000 });
  assert.equal(bad.exitCode, 1);
  assert.equal(bad.stderr, 'nginx: [emerg] bad');
});

test('reload command: a hung command is killed at the timeout (whole process group)', async () => {
  const started = Date.now();
  const r = await runReloadCommand('sleep 30 | cat', { timeoutMs: 200 });
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, null);
  assert.ok(Date.now() - started < 5000);
});

test('reload command: abort kills it', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const r = await runReloadCommand('sleep 30', { timeoutMs: 10_000, signal: ac.signal });
  assert.notEqual(r.exitCode, 0);
  assert.equal(r.signal, 'SIGKILL');
});

test('render CLI arguments: flags, env fallbacks, errors', () => {
  const o = parseRenderCliArgs(['--render', 'a.hbs:/tmp/a.conf', '--render=b.hbs:b.conf', '--consul', '10.0.0.1:8500', '--wait', '1s:4s', '--reload-command', 'nginx -s reload', '--once'], {});
  assert.deepEqual(o.renders, [{ template: 'a.hbs', output: '/tmp/a.conf' }, { template: 'b.hbs', output: 'b.conf' }]);
  assert.equal(o.consulUrl, 'http://10.0.0.1:8500');
  assert.deepEqual(o.wait, { minMs: 1000, maxMs: 4000 });
  assert.equal(o.reloadCommand, 'nginx -s reload');
  assert.equal(o.once, true);
  const e = parseRenderCliArgs([], { BALANCER_RENDER: 'x.hbs:x.out,y.hbs:y.out', CONSUL_HTTP_ADDR: 'https://c:8501', BALANCER_WAIT: '2s', CONSUL_HTTP_TOKEN: 't' });
  assert.equal(e.renders.length, 2);
  assert.equal(e.consulUrl, 'https://c:8501');
  assert.equal(e.token, 't');
  assert.deepEqual(e.wait, { minMs: 2000, maxMs: 8000 });
  assert.throws(() => parseRenderCliArgs([], {}), /at least one --render/);
  assert.throws(() => parseRenderCliArgs(['--render', 'nocolon'], {}), /expected <template>:<output>/);
  assert.throws(() => parseRenderCliArgs(['--render', 'a:b', '--wait', 'soon'], {}), /--wait/);
  assert.throws(() => parseRenderCliArgs(['--nope'], {}), (err: unknown) => (err as { code?: string }).code === 'ERR_RENDER_CLI');
});

test('reload command: a daemon it starts that keeps stderr open does not hold the renderer (nginx -s reload || nginx)', async () => {
  // the background sleep inherits the stderr pipe, as a daemon logging to stderr does; it ends by itself
  const started = Date.now();
  const r = await runReloadCommand('sleep 3 & echo "started" >&2; exit 0', { timeoutMs: 10_000 });
  assert.equal(r.exitCode, 0);
  assert.equal(r.timedOut, false);
  assert.equal(r.stderr, 'started');
  assert.ok(Date.now() - started < 2000, `resolved after ${Date.now() - started} ms, not when the daemon closed stderr`);
});
