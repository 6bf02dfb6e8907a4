// A worker hit by an unhandled rejection (issue 12 item 1) exits through the process guard (code 70,
// not Node's bare 1) and the supervisor restarts it with growing delays, never in a tight loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Supervisor } from '../../balancer/src/cluster/supervisor.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';

test('a worker that keeps dying on an unhandled rejection is restarted with backoff', async () => {
  const deaths: { at: number; code: number | null }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        const o = JSON.parse(line) as { msg?: string; code?: number | null };
        if (o.msg === 'worker died unexpectedly') deaths.push({ at: Date.now(), code: o.code ?? null });
      }
      done();
    },
  });
  const supervisor = new Supervisor({
    workers: 1,
    drainTimeoutMs: 2000,
    logger: pino({ level: 'info' }, sink),
    startTimeoutMs: 20_000,
    restartBackoff: { baseMs: 300, maxMs: 4000 },
    init: {
      listenHost: '127.0.0.1', listenPort: 0,
      timeouts: { connectMs: 2000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 5000 },
      maxConnectionsPerServer: 16, accessLog: false, logLevel: 'silent',
      runtimeModule: fileURLToPath(new URL('../support/rejecting-runtime.js', import.meta.url)),
    },
  });
  const started = Date.now();
  try {
    await supervisor.start(tableFromUpstreams({}, []));
    const deadline = Date.now() + 15_000;
    while (deaths.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await supervisor.stop();
  }
  assert.ok(deaths.length >= 4, `expected 4 deaths within 15 s, saw ${deaths.length}`);
  for (const d of deaths) assert.equal(d.code, 70, 'the worker exits through the process guard');
  // delays between deaths grow (backoff); a tight loop would have died dozens of times by now
  const gaps = deaths.slice(1).map((d, i) => d.at - deaths[i].at);
  assert.ok(gaps[2] > gaps[0], `gaps grow: ${gaps.join(', ')} ms`);
  assert.ok(supervisor.metrics().restarts <= 6, `restarts: ${supervisor.metrics().restarts} in ${Date.now() - started} ms`);
});
