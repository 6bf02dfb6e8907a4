// HAProxy (Debian's) as a real PROXY protocol sender in front of the balancer: `server ... send-proxy`
// and `send-proxy-v2` (mode tcp, on loopback) towards a balancer started with
// --proxy-protocol-from 127.0.0.1. Clients bound to 127.0.0.2 and 127.0.0.3 reach HAProxy; the
// balancer sees them, not HAProxy: X-Forwarded-For names them and deny=ip:127.0.0.3 answers 403.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { startBackend } from '../support/upstreams.js';
import { until, untilRetryingErrors } from '../support/poll.js';
import { bodyOf, statusOf } from '../support/raw-http-answer.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

async function register(consul: ConsulTarget, id: string, name: string, port: number, tags: string[]): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}/v1/agent/service/register`, {
    method: 'PUT', headers, body: JSON.stringify({ ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags }), signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.statusCode, 200, await res.body.text());
}

/** GET /headers from `from` through HAProxy's port: the status and the request headers the backend saw. */
function getFrom(from: string, port: number, host: string): Promise<{ status: number; headers?: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let text = '';
    s.setEncoding('latin1');
    s.setTimeout(5000, () => { s.destroy(); reject(new Error(`no answer in 5 s: ${JSON.stringify(text)}`)); });
    s.on('data', (d: string) => { text += d; });
    s.on('error', () => undefined);
    s.on('close', () => {
      const status = statusOf(text);
      try {
        resolve(status === 200 ? { status, headers: JSON.parse(bodyOf(text)) as Record<string, string> } : { status });
      } catch (err) {
        reject(err);
      }
    });
    s.write(`GET /headers HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

test('HAProxy send-proxy / send-proxy-v2 in front: the balancer sees the client HAProxy saw', async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const web = scope.name('web');
  const backend = await startBackend('web');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pp-haproxy-'));
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  let haproxy: ReturnType<typeof spawn> | undefined;
  let haproxyOut = '';
  try {
    await register(consul, scope.id('web1'), web, backend.port, ['deny=ip:127.0.0.3']);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '2s', '--log-level', 'warn', '--proxy-protocol-from', '127.0.0.1/32']), logger);
    const ours = primary.proxy.port;
    await until('service in the table', () => primary!.holder.current().upstreams[web]?.policy?.access !== undefined, 8000);
    const [v1Port, v2Port] = [await freePort(), await freePort()];
    const cfg = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(cfg, [
      'global', '  maxconn 200',
      'defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 10s', '  timeout server 10s',
      'frontend v1', `  bind 127.0.0.1:${v1Port}`, '  default_backend to_v1',
      'backend to_v1', `  server ours 127.0.0.1:${ours} send-proxy`,
      'frontend v2', `  bind 127.0.0.1:${v2Port}`, '  default_backend to_v2',
      'backend to_v2', `  server ours 127.0.0.1:${ours} send-proxy-v2`,
      '',
    ].join('\n'));
    haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout?.on('data', (d: Buffer) => { haproxyOut += d.toString(); });
    haproxy.stderr?.on('data', (d: Buffer) => { haproxyOut += d.toString(); });
    for (const [label, port] of [['send-proxy', v1Port], ['send-proxy-v2', v2Port]] as const) {
      const r = await untilRetryingErrors(`HAProxy ${label} answering`, async () => {
        if (haproxy!.exitCode !== null) throw new Error(`haproxy exited: ${haproxyOut}`);
        const first = await getFrom('127.0.0.2', port, web);
        if (first.status === 0) throw new Error('closed (HAProxy not listening yet?)');
        return first;
      }, 8000, 100);
      assert.equal(r.status, 200, `${label}: ${haproxyOut}`);
      assert.equal(r.headers?.['x-forwarded-for'], '127.0.0.2', `${label}: the client HAProxy accepted, not HAProxy (127.0.0.1)`);
      for (let i = 0; i < 3; i++) {
        assert.equal((await getFrom('127.0.0.3', port, web)).status, 403, `${label}: deny= judges the carried address`);
        assert.equal((await getFrom('127.0.0.2', port, web)).headers?.['x-forwarded-for'], '127.0.0.2');
      }
    }
    // HAProxy's own connection without a header is refused: straight to us from 127.0.0.1
    const direct = await getFrom('127.0.0.1', ours, web);
    assert.equal(direct.status, 0, 'the trusted peer must send a header');
  } finally {
    if (haproxy?.pid !== undefined && haproxy.exitCode === null) {
      const exited = new Promise((r) => haproxy!.once('exit', r));
      haproxy.kill('SIGTERM');
      await exited;
    }
    await primary?.stop();
    await scope.clean(consul);
    await backend.kill();
    await consul.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
