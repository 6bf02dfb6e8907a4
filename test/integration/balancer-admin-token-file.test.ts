// The real program with its admin API beyond loopback and no --admin-token: it makes a token at start,
// writes it where only its user reads it, logs that path and never the token, and the API wants it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnBalancer } from '../support/balancer-process.js';

test('no --admin-token, --admin 0.0.0.0: a token made at start guards the API; its file is 0600; no log line holds it', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'admin-token-file-'));
  const file = path.join(dir, 'admin-token');
  const b = spawnBalancer(['--no-consul', '--workers', '1', '--listen', '127.0.0.1:0', '--admin', '0.0.0.0:0', '--admin-token-file', file],
    { BALANCER_ADMIN_TOKEN: '' });
  try {
    const started = await b.waitForLog((l) => l.msg === 'balancer started', 30_000, '"balancer started"');
    const admin = `http://127.0.0.1:${(started as { adminPort?: number }).adminPort}`;
    const token = (await readFile(file, 'utf8')).trim();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const where = b.logs.find((l) => (l as { adminTokenFile?: string }).adminTokenFile === file);
    assert.ok(where, 'a log line names the token file');
    assert.equal((await fetch(`${admin}/status`, { signal: AbortSignal.timeout(5_000) })).status, 401);
    assert.equal((await fetch(`${admin}/status`, { headers: { authorization: 'Bearer wrong' }, signal: AbortSignal.timeout(5_000) })).status, 401);
    const ok = await fetch(`${admin}/status`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
    assert.equal(ok.status, 200);
    await b.stop();
    const output = [...b.logs.map((l) => JSON.stringify(l)), ...b.rawOutput].join('\n');
    assert.ok(!output.includes(token), 'the token is in no log line');
  } finally {
    await b.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
