// --render beside dynamic mode: the program proxies by swapping tables AND renders a template to a file
// on every Consul change (what replaces consul-template in front of nginx), running --reload-command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { cleanConsul, consulForTest } from '../support/consul.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

async function until(what: string, timeoutMs: number, ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

test('dynamic mode with --render writes the template output and runs the reload command on change', { timeout: 90_000 }, async () => {
  const consul = await consulForTest();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'render-dynamic-'));
  const tpl = path.join(dir, 'upstreams.hbs');
  const out = path.join(dir, 'upstreams.txt');
  const marker = path.join(dir, 'reloads.txt');
  writeFileSync(tpl, '{{#each (service "rdyn-web")}}server {{Address}}:{{Port}};\n{{/each}}');
  const register = (id: string, port: number) =>
    request(`${consul.url}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ ID: id, Name: 'rdyn-web', Address: '127.0.0.1', Port: port }) }).then((r) => r.body.text());
  await register('rdyn-1', 9101);
  const child = spawn(process.execPath, [
    path.join(repoRoot, 'bin', 'balancer.js'), '--consul', consul.addr, '--workers', '1', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--render', `${tpl}:${out}`, '--reload-command', `echo reloaded >> ${marker}`, '--log-level', 'warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await until('first render', 20_000, () => existsSync(out) && readFileSync(out, 'utf8').includes('127.0.0.1:9101'));
    await register('rdyn-2', 9102);
    await until('render after a second instance registered', 20_000, () => readFileSync(out, 'utf8').includes('127.0.0.1:9102'));
    assert.equal(readFileSync(out, 'utf8'), 'server 127.0.0.1:9101;\nserver 127.0.0.1:9102;\n');
    await until('reload command ran', 10_000, () => existsSync(marker) && readFileSync(marker, 'utf8').trim().split('\n').length >= 2);
  } catch (err) {
    console.error(log.slice(-3000));
    throw err;
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
    await cleanConsul(consul, 'rdyn-');
    await consul.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
