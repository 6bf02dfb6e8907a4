// "Live in every worker" (issue 12 item 4): with one of two real workers frozen (SIGSTOP), a published
// table is not live everywhere; whenPublished says so and names the worker, and the admin API answers
// 202 listing it. Once the worker runs again, the next change is 200.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildAdminApp } from '../../balancer/src/admin/app.js';
import { Supervisor } from '../../balancer/src/cluster/supervisor.js';
import { TableHolder } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

test('a worker that does not ack makes POST answer 202 naming it; 200 once every live worker acks', async () => {
  const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger });
  const supervisor = new Supervisor({
    workers: 2,
    drainTimeoutMs: 2000,
    logger,
    startTimeoutMs: 20_000,
    publishTimeoutMs: 800,
    init: {
      listenHost: '127.0.0.1', listenPort: 0,
      timeouts: { connectMs: 2000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 5000 },
      maxConnectionsPerServer: 16, accessLog: false, logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
    },
  });
  await supervisor.start(holder.current());
  try {
    await scenario(holder, supervisor);
  } finally {
    await supervisor.stop();
  }
});

async function scenario(holder: TableHolder, supervisor: Supervisor): Promise<void> {
  holder.subscribe((change) => void supervisor.publish(change.table).catch(() => undefined));
  const app = buildAdminApp({ holder, defaults: DEFAULT_TABLE_DEFAULTS, logger, applied: (v) => supervisor.whenPublished(v, 5000) });
  const reports = await supervisor.status();
  assert.equal(reports.length, 2);
  const frozen = reports[1];
  assert.ok(frozen.pid);
  process.kill(frozen.pid, 'SIGSTOP');
  try {
    const res = await app.inject({ method: 'POST', url: '/upstream/api?format=json', headers: { 'content-type': 'text/plain' }, payload: 'server 127.0.0.1:9100;' });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().live, false);
    assert.deepEqual(res.json().notAcked.map((w: { workerId: number }) => w.workerId), [frozen.workerId]);
  } finally {
    process.kill(frozen.pid, 'SIGCONT');
  }
  const res = await app.inject({ method: 'POST', url: '/upstream/api', headers: { 'content-type': 'text/plain' }, payload: 'server 127.0.0.1:9101;' });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.body, 'success');
  await app.close();
}
