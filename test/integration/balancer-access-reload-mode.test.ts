// Access rules and rate limits hold alike in both modes: the same tags on an HTTP service and a
// proto=tcp service, the real primary with 2 workers in dynamic mode and in `--mode reload` (where the
// rules travel through the rendered balancer.conf: allow/deny/rate/burst/rate_by statements). Per mode:
// 127.0.0.3 gets 403 (HTTP) and a closed connection (TCP), 127.0.0.2 is served; 127.0.0.2's accepted/s
// on each service is within 10 % of rate=25/s (clients asking at least twice that).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { httpFrom, measureAccepted, tcpFrom, type AcceptedRate } from '../support/bound-clients.js';
import { consulRequest } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until, untilRetryingErrors } from '../support/poll.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const RATE = 25;

function assertNearRate(what: string, r: AcceptedRate): void {
  process.stderr.write(`${what}: ${r.perSecond.toFixed(1)}/s accepted for ${RATE}/s configured (${(r.perSecond / RATE).toFixed(3)}x), ${r.refused} refused\n`);
  assert.equal(r.other, 0, `${what}: answers neither accepted nor refused`);
  assert.ok(r.refused >= r.accepted, `${what}: the clients asked for less than 2x the rate (${r.accepted} accepted, ${r.refused} refused)`);
  assert.ok(r.perSecond >= RATE * 0.9 && r.perSecond <= RATE * 1.1, `${what}: ${r.perSecond.toFixed(1)}/s accepted, configured ${RATE}/s`);
}

for (const mode of ['dynamic', 'reload'] as const) {
  test(`${mode} mode, 2 workers: allow=/deny= by client address and rate=${RATE}/s on an HTTP and a proto=tcp service from the same tags`, async () => {
    const consul = await consulForTest();
    const scope = testScope();
    const web = scope.name('web');
    const db = scope.name('db');
    const backend = await startNamedBackend('web');
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const tcpPort = await freePort();
    const dir = await mkdtemp(join(os.tmpdir(), 'access-reload-'));
    const configOut = join(dir, 'balancer.conf');
    let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
    const register = (id: string, name: string, port: number, tags: string[]) =>
      consulRequest(consul, 'PUT', '/v1/agent/service/register', { ID: scope.id(id), Name: name, Address: '127.0.0.1', Port: port, Tags: tags });
    try {
      assert.equal(await register('w1', web, backend.port, ['allow=ip:127.0.0.2,ip:fe80::/10', `rate=${RATE}/s`, 'burst=10']), 200);
      assert.equal(await register('d1', db, echoPort, ['proto=tcp', `urlprefix-:${tcpPort}`, 'deny=ip:127.0.0.3', `rate=${RATE}/s`, 'burst=10']), 200);
      primary = await startPrimary(balancerConfig([...(mode === 'reload' ? ['--mode', 'reload', '--config-out', configOut] : []),
        '--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--consul-wait', '2s',
        '--log-level', 'warn', '--tcp-ports', `${tcpPort}`]), logger);
      const port = primary.proxy.port;
      await until('both services with their policy in the table', () => primary!.holder.current().upstreams[web]?.policy?.rateLimit !== undefined
        && primary!.holder.current().upstreams[db]?.policy?.access !== undefined, 15_000);
      if (mode === 'reload') {
        const rendered = await readFile(configOut, 'utf8');
        assert.match(rendered, new RegExp(`upstream ${web} \\{\\n  allow ip:127\\.0\\.0\\.2,ip:fe80::/10;\\n  rate ${RATE}/s;\\n  burst 10;\\n`), rendered);
      }
      await until('both workers ready', () => primary!.supervisor.metrics().workersReady === 2, 15_000);
      await untilRetryingErrors('tcp port open', async () => (await tcpFrom('127.0.0.4', tcpPort)) === 'ping', 15_000, 50);
      await untilRetryingErrors('http service routed', async () => (await httpFrom('127.0.0.2', port, web)).status === 200, 15_000, 50);
      // bursts are 10: a few of each stay inside them
      for (let i = 0; i < 3; i++) {
        assert.equal((await httpFrom('127.0.0.3', port, web)).status, 403, 'HTTP: outside the allow list');
        assert.equal(await tcpFrom('127.0.0.3', tcpPort), 'closed', 'TCP: denied address closed');
        assert.equal(await tcpFrom('127.0.0.2', tcpPort), 'ping', 'TCP: not denied');
      }
      const status = (s: number) => (s === 200 ? true : s === 429 ? false : undefined);
      // one after the other: together they ask more of this loaded machine than it gives
      assertNearRate(`${mode} mode, HTTP, 127.0.0.2`, await measureAccepted(16, async () => status((await httpFrom('127.0.0.2', port, web)).status), 1000, 6000));
      assertNearRate(`${mode} mode, proto=tcp, 127.0.0.2`, await measureAccepted(16, async () => (await tcpFrom('127.0.0.2', tcpPort)) === 'ping', 1000, 6000));
    } finally {
      await primary?.stop();
      await scope.clean(consul);
      backend.server.closeAllConnections();
      backend.server.close();
      echo.close();
      await consul.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
}
