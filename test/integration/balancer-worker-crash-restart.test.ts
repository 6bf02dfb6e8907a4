// A worker hit by an unhandled rejection (issue 12 item 1) exits through the process guard (code 70,
// not Node's bare 1) and the supervisor restarts it with growing delays, never in a tight loop.
// Structural, not timed: the delays the supervisor chose (logged with each death) grow, and no
// replacement died before its delay had passed (a restart without the wait would).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Supervisor } from '../../balancer/src/cluster/supervisor.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';

test('a worker that keeps dying on an unhandled rejection is restarted with backoff', { timeout: 240_000 }, async () => {
  const deaths: { at: number; code: number | null; restartInMs: number }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        const o = JSON.parse(line) as { msg?: string; code?: number | null; restartInMs?: number };
        if (o.msg === 'worker died unexpectedly') deaths.push({ at: Date.now(), code: o.code ?? null, restartInMs: o.restartInMs ?? NaN });
      }
      done();
    },
  });
  const supervisor = new Supervisor({
    workers: 1,
    drainTimeoutMs: 2000,
    logger: pino({ level: 'info' }, sink),
    // a liveness bound: under a competing CPU load the first worker took over 20 s to listen
    startTimeoutMs: 90_000,
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
    // a liveness bound: each restart is a worker start, seconds each on a busy machine
    const deadline = Date.now() + 90_000;
    while (deaths.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await supervisor.stop();
  }
  assert.ok(deaths.length >= 4, `expected 4 deaths within 90 s, saw ${deaths.length} in ${Date.now() - started} ms`);
  for (const d of deaths) assert.equal(d.code, 70, 'the worker exits through the process guard');
  // the chosen delays grow (base 300 ms doubling, jitter in [d/2, d]: the third is at least 600 ms,
  // the first at most 300 ms); the gaps between deaths are those delays plus a worker's start, whose
  // time on a busy machine swamps the difference, so they are only checked not to undercut the delay
  const delays = deaths.map((d) => d.restartInMs);
  assert.ok(delays[2] > delays[0] && delays[3] > delays[1], `restart delays grow: ${delays.join(', ')} ms`);
  for (const [i, d] of deaths.slice(1).entries()) {
    assert.ok(d.at - deaths[i].at >= deaths[i].restartInMs, `death ${i + 1} came ${d.at - deaths[i].at} ms after the previous one, before its ${deaths[i].restartInMs} ms restart delay`);
  }
  // one restart per death at most: a tight loop restarts more often than workers die
  assert.ok(supervisor.metrics().restarts <= deaths.length, `restarts: ${supervisor.metrics().restarts} for ${deaths.length} deaths in ${Date.now() - started} ms`);
});
