// A worker that misses a table change asks for and gets the full table, through real worker
// processes (the production worker-main) and the supervisor. The miss is made by a worker runtime
// (test/support/refusing-runtime.ts) whose first table with a `refuse-once-*` upstream throws:
// - a full table the worker failed to apply: the supervisor believes the worker holds it, the next
//   change goes out as a delta from it, the worker sees the delta names another version than its own
//   (a gap), says so, and the full table resyncs it;
// - a delta whose apply throws: the worker answers gap with what it holds, and gets the full table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { request } from 'undici';
import { Supervisor } from '../../balancer/src/cluster/supervisor.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { RouteTable } from '../../balancer/src/routing/types.js';
import { REFUSED_PREFIX } from '../support/refusing-runtime.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const RUNTIME = fileURLToPath(new URL('../support/refusing-runtime.js', import.meta.url));
const PUBLISH_TIMEOUT_MS = 1000;

function table(upstreams: Record<string, number[]>): RouteTable {
  const specs = Object.fromEntries(Object.entries(upstreams).map(([name, ports]) => [name, adminUpstream(name, ports.map((port) => ({ host: '127.0.0.1', port })), DEFAULT_TABLE_DEFAULTS)]));
  return tableFromUpstreams(specs, []);
}

function supervisor(): Supervisor {
  return new Supervisor({
    workers: 1,
    drainTimeoutMs: 2000,
    logger,
    startTimeoutMs: 20_000,
    publishTimeoutMs: PUBLISH_TIMEOUT_MS,
    restartBackoff: { baseMs: 50, maxMs: 500 },
    init: {
      listenHost: '127.0.0.1', listenPort: 0,
      timeouts: { connectMs: 2000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 5000 },
      maxConnectionsPerServer: 16, accessLog: false, logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
      runtimeModule: RUNTIME,
    },
  });
}

async function backend(name: string): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(name));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

async function get(port: number, host: string): Promise<string> {
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host }, signal: AbortSignal.timeout(3000) });
  return `${res.statusCode} ${await res.body.text()}`;
}

const change = (previous: RouteTable, next: RouteTable) => ({
  previous,
  upserted: Object.keys(next.upstreams).filter((n) => previous.upstreams[n] !== next.upstreams[n]),
  removed: Object.keys(previous.upstreams).filter((n) => !(n in next.upstreams)),
});

test('a worker that missed a full table sees the next delta as a gap, asks, and is resynced with the full table', { timeout: 60_000 }, async (t) => {
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(backend));
  const sup = supervisor();
  t.after(async () => {
    await sup.stop();
    for (const s of [a, b, c]) s.server.close();
  });
  const refused = `${REFUSED_PREFIX}api`;
  const t1 = table({ web: [a.port] });
  const { port } = await sup.start(t1);
  assert.equal(await get(port, 'web'), '200 a');

  // t2 as a full table: the worker's runtime throws, no ack (the supervisor now believes it holds t2)
  const t2 = table({ web: [a.port], [refused]: [b.port] });
  const missed = await sup.publish(t2);
  assert.equal(missed.acked, 0, 'the refused table is not acknowledged');
  assert.equal(await get(port, 'web'), '200 a', 'the worker keeps serving t1');
  assert.notEqual(await get(port, refused), '200 b', 'and has not got t2');

  // t3 as a delta from t2: the worker holds t1, reports the gap, gets t3 whole
  const t3 = table({ web: [c.port], [refused]: [b.port] });
  const before = sup.metrics().deltas;
  const resynced = await sup.publish(t3, change(t2, t3));
  const after = sup.metrics().deltas;
  assert.equal(resynced.acked, 1, 'acknowledged after the full table');
  assert.equal(after.sent - before.sent, 1, 'a delta was sent');
  assert.equal(after.gaps - before.gaps, 1, 'the worker reported a gap');
  assert.equal(after.full - before.full, 1, 'and was sent the full table');
  assert.equal(await get(port, 'web'), '200 c');
  assert.equal(await get(port, refused), '200 b');

  // the worker is in step again: the next change is a delta, applied without a gap
  const t4 = table({ web: [a.port], [refused]: [b.port] });
  const next = await sup.publish(t4, change(t3, t4));
  const last = sup.metrics().deltas;
  assert.equal(next.acked, 1);
  assert.deepEqual({ sent: last.sent - after.sent, gaps: last.gaps - after.gaps, full: last.full - after.full }, { sent: 1, gaps: 0, full: 0 });
  assert.equal(await get(port, 'web'), '200 a');
});

test('a delta whose apply fails in the worker is answered with a gap, and the full table follows', { timeout: 60_000 }, async (t) => {
  const [a, b] = await Promise.all(['a', 'b'].map(backend));
  const sup = supervisor();
  t.after(async () => {
    await sup.stop();
    for (const s of [a, b]) s.server.close();
  });
  const refused = `${REFUSED_PREFIX}api`;
  const t1 = table({ web: [a.port] });
  const { port } = await sup.start(t1);
  const t2 = table({ web: [a.port], [refused]: [b.port] });
  const before = sup.metrics().deltas;
  const pub = await sup.publish(t2, change(t1, t2));
  const after = sup.metrics().deltas;
  assert.equal(pub.acked, 1);
  assert.deepEqual({ sent: after.sent - before.sent, gaps: after.gaps - before.gaps, full: after.full - before.full }, { sent: 1, gaps: 1, full: 1 });
  assert.equal(await get(port, refused), '200 b');
});
