// The admin token when none is configured: open on a loopback-only listener, made at start and
// written to a file only the balancer's user reads when the listener is reachable from elsewhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AdminTokenError, adminTokenPlan, defaultAdminTokenFile, isLoopbackOnly, writeNewAdminToken } from '../../balancer/src/admin/admin-token.js';

describe('isLoopbackOnly', () => {
  const cases: [string, boolean][] = [
    ['127.0.0.1', true], ['127.8.9.10', true], ['localhost', true], ['LOCALHOST', true], ['::1', true], ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.5', false], ['192.168.1.2', false], ['::ffff:10.0.0.1', false],
    ['127.0.0.1.example.com', false], ['1270.0.0.1', false], ['balancer', false],
  ];
  for (const [host, want] of cases) it(`${host} -> ${want}`, () => assert.equal(isLoopbackOnly(host), want));
});

describe('adminTokenPlan', () => {
  it('a configured token is used wherever the API listens', () => {
    assert.deepEqual(adminTokenPlan({ token: 't', adminHost: '0.0.0.0' }), { kind: 'configured', token: 't' });
    assert.deepEqual(adminTokenPlan({ token: 't', adminHost: '127.0.0.1' }), { kind: 'configured', token: 't' });
  });
  it('loopback without a token stays open (only this host can connect)', () => {
    assert.deepEqual(adminTokenPlan({ adminHost: '127.0.0.1', file: '/x' }), { kind: 'open' });
  });
  it('beyond loopback without a token: one is made, in --admin-token-file or under the home directory', () => {
    assert.deepEqual(adminTokenPlan({ adminHost: '0.0.0.0', file: '/app/run/admin-token' }), { kind: 'make', file: '/app/run/admin-token' });
    assert.deepEqual(adminTokenPlan({ adminHost: '::' }, '/home/node'), { kind: 'make', file: '/home/node/.consul-balancer/admin-token' });
    assert.equal(defaultAdminTokenFile('/root'), '/root/.consul-balancer/admin-token');
  });
});

describe('writeNewAdminToken', () => {
  it('writes a fresh 256-bit token, mode 0600 in a 0700 directory it creates; a second start makes another', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'admin-token-'));
    try {
      const file = path.join(dir, 'made', 'admin-token');
      const token = await writeNewAdminToken(file);
      assert.match(token, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(await readFile(file, 'utf8'), `${token}\n`);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700);
      const again = await writeNewAdminToken(file);
      assert.notEqual(again, token);
      assert.equal(await readFile(file, 'utf8'), `${again}\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a file that cannot be written is a clear error naming it and the ways out', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'admin-token-'));
    try {
      const blocker = path.join(dir, 'not-a-dir');
      await writeFile(blocker, 'x');
      await assert.rejects(writeNewAdminToken(path.join(blocker, 'admin-token')),
        (e: unknown) => e instanceof AdminTokenError && e.code === 'ERR_ADMIN_TOKEN_FILE' && e.message.includes(blocker) && /--admin-token-file/.test(e.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
