// Active health checks once per host: one SharedActiveChecker probes each server once per interval
// whatever the number of workers, and its state changes, broadcast to N workers' PeerHealth, take the
// server out (and back in) in every one of them. A probe can never throw out of the checker: a path
// node refuses (`/health check`) is a failed probe; an IPv6 Host header is bracketed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { probeHostHeader, probeServer } from '../../balancer/src/health/active-checker.js';
import { PeerHealth } from '../../balancer/src/health/peer-health.js';
import { SharedActiveChecker, type ActiveStateChange } from '../../balancer/src/health/shared-checker.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { ActiveCheckSpec, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';

const logger = pino({ level: 'silent' });
const RETRY = { tries: 1, timeoutMs: 0, onStatuses: [], nonIdempotent: false };
const server = (port: number, host = '127.0.0.1'): ServerSpec => ({
  id: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, host, port, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false,
});
const check = (over: Partial<ActiveCheckSpec> = {}): ActiveCheckSpec => ({ type: 'http', path: '/health', intervalMs: 50, timeoutMs: 500, rise: 1, fall: 2, expectStatuses: [200], ...over });
const upstream = (name: string, servers: ServerSpec[], c?: ActiveCheckSpec): UpstreamSpec => ({ name, algorithm: 'roundrobin', servers, retry: RETRY, origin: 'admin', ...(c ? { check: c } : {}) });

async function healthBackend(): Promise<{ port: number; hits: () => number; status: { code: number }; hosts: string[]; close(): void }> {
  let hits = 0;
  const status = { code: 200 };
  const hosts: string[] = [];
  const srv = http.createServer((req, res) => {
    if (req.url === '/health') {
      hits++;
      hosts.push(req.headers.host ?? '');
    }
    res.writeHead(status.code);
    res.end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as AddressInfo).port, hits: () => hits, status, hosts, close: () => { srv.closeAllConnections(); srv.close(); } };
}

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('shared checker: 4 workers, one probe per server per interval; down/up reach every worker', async () => {
  const b = await healthBackend();
  const workers = Array.from({ length: 4 }, () => new PeerHealth({ sharedActive: true }));
  const broadcasts: ActiveStateChange[][] = [];
  const shared = new SharedActiveChecker({
    logger, random: () => 0,
    broadcast: (changes) => {
      broadcasts.push([...changes]);
      for (const w of workers) for (const c of changes) w.setSharedActive(c, Date.now());
    },
  });
  // the same server listed by two upstreams with the same check is still probed once
  const s = server(b.port);
  const table = tableFromUpstreams({ a: upstream('a', [s], check()), b: upstream('b', [s], check()) }, []);
  try {
    for (const w of workers) w.retain(table, Date.now());
    shared.apply(table);
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    const elapsed = Date.now() - t0;
    // one probe at a time, the next 50 ms after the previous ends: at most elapsed/50 + 1
    assert.ok(b.hits() <= Math.ceil(elapsed / 50) + 1, `${b.hits()} probes in ${elapsed} ms (4 workers would make 4x)`);
    assert.ok(b.hits() >= 3, `${b.hits()} probes`);
    for (const w of workers) assert.equal(w.isAvailable(s, Date.now()), true);

    b.status.code = 500;
    await until('every worker sees the server down', () => workers.every((w) => !w.isAvailable(s, Date.now())));
    assert.equal(shared.stats().down, 1);
    b.status.code = 200;
    await until('every worker sees it up again', () => workers.every((w) => w.isAvailable(s, Date.now())));
    // only state changes travel: one down, one up
    assert.deepEqual(broadcasts.flat().map((c) => c.up), [false, true]);
    // a worker that joins late gets the states and starts from them
    b.status.code = 500;
    await until('down again', () => shared.stats().down === 1);
    const late = new PeerHealth({ sharedActive: true });
    for (const st of shared.states()) late.setSharedActive(st, Date.now());
    late.retain(table, Date.now());
    assert.equal(late.isAvailable(s, Date.now()), false);
  } finally {
    shared.stop();
    b.close();
  }
});

test('a probe never throws: a path with a space is a failed probe; IPv6 Host is bracketed', async () => {
  const b = await healthBackend();
  try {
    const ac = new AbortController();
    const bad = await probeServer(server(b.port), check({ path: '/health check' }), ac.signal);
    assert.equal(bad.ok, false);
    assert.match(bad.error ?? '', /ERR_UNESCAPED_CHARACTERS|Request path/);
    const good = await probeServer(server(b.port), check(), ac.signal);
    assert.deepEqual(good, { ok: true });
    assert.equal(b.hosts[b.hosts.length - 1], `127.0.0.1:${b.port}`);
    assert.equal(probeHostHeader('::1', 8080), '[::1]:8080');
    assert.equal(probeHostHeader('[::1]', 8080), '[::1]:8080');
    assert.equal(probeHostHeader('10.0.0.1', 80), '10.0.0.1:80');
  } finally {
    b.close();
  }
  // the checker's loop survives such a server: results keep coming, no unhandled rejection
  const results: boolean[] = [];
  const shared = new SharedActiveChecker({ logger, random: () => 0, broadcast: (c) => results.push(...c.map((x) => x.up)) });
  const onUnhandled = (err: unknown) => assert.fail(`unhandled rejection: ${String(err)}`);
  process.on('unhandledRejection', onUnhandled);
  try {
    shared.apply(tableFromUpstreams({ x: upstream('x', [server(1)], check({ path: '/health check', fall: 1 })) }, []));
    await until('the bad-path server is marked down', () => shared.stats().down === 1);
    assert.ok(shared.stats().probes >= 1);
  } finally {
    shared.stop();
    process.off('unhandledRejection', onUnhandled);
  }
});

test('passive ejections are shared: one worker ejects, the relay takes the server out in the others', () => {
  const relayed: { id: string; forMs: number }[] = [];
  const w1 = new PeerHealth({ sharedActive: true, onEjected: (id, forMs) => relayed.push({ id, forMs }) });
  const w2 = new PeerHealth({ sharedActive: true });
  const s = server(9);
  const table = tableFromUpstreams({ a: upstream('a', [s]) }, []);
  const now = 1_000_000;
  w1.retain(table, now);
  w2.retain(table, now);
  w1.onAttemptStart(s.id, now);
  w1.onAttemptEnd(s.id, { ok: false, latencyMs: 5, error: 'ECONNREFUSED' }, now);
  assert.equal(w1.isAvailable(s, now + 1), false);
  assert.deepEqual(relayed, [{ id: s.id, forMs: 10_000 }]);
  assert.equal(w2.isAvailable(s, now + 1), true);
  for (const r of relayed) w2.ejectShared(r.id, r.forMs, now + 1);
  assert.equal(w2.isAvailable(s, now + 2), false);
  assert.equal(w2.isAvailable(s, now + 10_002), true, 'the relayed ejection ends like a local one');
});
