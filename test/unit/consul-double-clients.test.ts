// Real clients work against the double: the consul npm client, the TCP gate of consulForTest, the CLI.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import Consul from 'consul';
import { cleanConsul, consulForTest } from '../support/consul.js';

const get = (url: string, signal?: AbortSignal) => fetch(url, { signal: signal ?? AbortSignal.timeout(3000) });

describe('consul double with real clients', () => {
  it('the consul npm client (v2) registers and reads health through the double', async () => {
    const target = await consulForTest();
    const prefix = `cbtest-${process.pid}-`;
    try {
      const consul = new Consul({ host: target.host, port: target.port });
      await consul.agent.service.register({
        id: `${prefix}web1`,
        name: `${prefix}web`,
        address: '127.0.0.1',
        port: 8080,
        tags: ['t1'],
        check: { name: 'ttl', ttl: '30s', status: 'passing' } as never,
      });
      const healthy = await consul.health.service({ service: `${prefix}web`, passing: true });
      assert.equal(healthy.length, 1);
      assert.equal(healthy[0].Service.ID, `${prefix}web1`);
      assert.equal(healthy[0].Service.Port, 8080);
      const catalog = await consul.catalog.service.nodes(`${prefix}web`);
      assert.equal(catalog[0].ServiceAddress, '127.0.0.1');
      await consul.kv.set(`${prefix}key`, 'value');
      const kv = await consul.kv.get(`${prefix}key`);
      assert.equal(kv?.Value, 'value');
      await consul.kv.del(`${prefix}key`);
      assert.deepEqual(await cleanConsul(target, prefix), [`${prefix}web1`]);
      assert.equal((await consul.health.service(`${prefix}web`)).length, 0);
    } finally {
      await cleanConsul(target, prefix).catch(() => undefined);
      await target.close();
    }
  });

  it("the consul client's watch (blocking queries) sees a registration", async () => {
    const target = await consulForTest();
    const prefix = `cbtest-${process.pid}-w-`;
    const consul = new Consul({ host: target.host, port: target.port });
    const watch = consul.watch({ method: consul.health.service, options: { service: `${prefix}svc`, passing: 'true', wait: '2s' } as never });
    try {
      const snapshots: number[] = [];
      const seen = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no change seen; snapshots ${JSON.stringify(snapshots)}`)), 4000);
        watch.on('error', (err: Error) => {
          clearTimeout(timer);
          reject(err);
        });
        watch.on('change', (data: unknown[]) => {
          snapshots.push(data.length);
          if (data.length === 1) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      await new Promise((r) => setTimeout(r, 100));
      await consul.agent.service.register({ id: `${prefix}1`, name: `${prefix}svc`, port: 1, check: { ttl: '30s', status: 'passing' } as never });
      await seen;
      assert.deepEqual(snapshots, [0, 1]);
    } finally {
      watch.end();
      await cleanConsul(target, prefix).catch(() => undefined);
      await target.close();
    }
  });

  it('the gate cuts and restores connectivity on the same port; a blocking query in flight fails', async () => {
    const target = await consulForTest();
    try {
      assert.equal((await get(`${target.url}/v1/status/leader`)).status, 200);
      const first = await get(`${target.url}/v1/catalog/services`);
      await first.text();
      const index = first.headers.get('x-consul-index');
      const inflight = get(`${target.url}/v1/catalog/services?index=${index}&wait=5s`, AbortSignal.timeout(6000)).then(
        async (r) => (await r.text(), 'answered'),
        () => 'failed',
      );
      await new Promise((r) => setTimeout(r, 50));
      await target.outage();
      assert.equal(await inflight, 'failed');
      await assert.rejects(get(`${target.url}/v1/status/leader`));
      await target.restore();
      assert.equal((await get(`${target.url}/v1/status/leader`)).status, 200);
    } finally {
      await target.close();
    }
  });

  it('the CLI logs one line when listening and exits on SIGTERM', async (t) => {
    const compiled = fileURLToPath(new URL('../support/consul-double/cli.js', import.meta.url));
    const source = fileURLToPath(new URL('../support/consul-double/cli.ts', import.meta.url));
    const args = existsSync(compiled) ? [compiled] : ['--import', 'tsx', source];
    const child = spawn(process.execPath, [...args, '--port', '0', '--host', '127.0.0.1', '--node-name', 'cli-node'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => child.kill('SIGKILL'));
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error('CLI did not report listening within 8s')), 8000);
      child.stdout.on('data', (c: Buffer) => {
        buf += c.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) {
          clearTimeout(timer);
          resolve(buf.slice(0, nl));
        }
      });
      child.once('exit', (code) => reject(new Error(`CLI exited early with ${code}`)));
    });
    const info = JSON.parse(line) as { url: string; msg: string };
    assert.equal(info.msg, 'listening');
    const self = (await (await get(`${info.url}/v1/agent/self`)).json()) as { Config: { NodeName: string } };
    assert.equal(self.Config.NodeName, 'cli-node');
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
