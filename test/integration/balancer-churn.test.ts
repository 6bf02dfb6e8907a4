// Upstream churn under load: >= 200 register/deregister changes through the Consul double while a
// bounded keep-alive load runs through the balancer with 2 workers: zero failed requests, every
// change reaches both workers (acknowledged), and the published tables follow the changes in order
// (no table older than one already published). The publish latency (Consul PUT sent -> every worker
// acknowledged the table that contains it) is a figure, written to stderr, not an assertion: it
// depends on how busy the machine is (see bench/ for measuring it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Agent, request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import type { PublishedEvent } from '../../balancer/src/cluster/supervisor.js';
import { parseBalancerArgs, type Config } from '../../balancer/src/config.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { ENGINES, engineEnv, type EngineName } from '../support/engines.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const CHANGES = 220;
const LOAD_CONCURRENCY = Number(process.env.CHURN_LOAD_CONCURRENCY ?? 6);
const MAX_LOAD_REQUESTS = 200_000;

async function consulPut(consul: ConsulTarget, path: string, body?: unknown): Promise<void> {
  const res = await request(`${consul.url}${path}`, { method: 'PUT', body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, `PUT ${path}: ${text}`);
}

function config(engine: EngineName, argv: string[]): Config {
  const c = parseBalancerArgs(argv, engineEnv(engine), { cores: 2 });
  if (c.kind !== 'config') throw new Error(`bad test config: ${JSON.stringify(c)}`);
  return c;
}

async function backend(name: string): Promise<{ server: http.Server; port: number; hits: () => number }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => res.end(name));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, hits: () => hits };
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
}

for (const engine of ENGINES) test(`zero failed requests over ${CHANGES} upstream changes with 2 workers; publish latency [${engine}]`, { timeout: 120_000 }, async () => {
  const consul = await consulForTest();
  // IDs and names of this test only (a shared agent holds other tests' services too)
  const scope = testScope();
  const web = scope.name('web');
  const backends = await Promise.all([0, 1, 2, 3, 4].map((i) => backend(`b${i}`)));
  const agent = new Agent({ connections: LOAD_CONCURRENCY, keepAliveTimeout: 30_000, pipelining: 1 });
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  let stopLoad = false;
  try {
    const reg = (i: number) => consulPut(consul, '/v1/agent/service/register', { ID: scope.id(`web-${i}`), Name: web, Address: '127.0.0.1', Port: backends[i].port });
    const dereg = (i: number) => consulPut(consul, `/v1/agent/service/deregister/${scope.id(`web-${i}`)}`);
    await reg(0);
    primary = await startPrimary(config(engine, ['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '5s', '--log-level', 'warn']), logger);
    const port = primary.proxy.port;

    const serversOf = (e: PublishedEvent) => (e.table.upstreams[web]?.servers ?? []).map((s) => s.port).sort((a, b) => a - b).join(',');
    const published: PublishedEvent[] = [];
    /** every publish of the run, in order: server sets and acknowledgements */
    const history: { servers: string; acked: number; workers: number; notAcked: number }[] = [];
    primary.supervisor.onPublished((e) => {
      published.push(e);
      history.push({ servers: serversOf(e), acked: e.acked, workers: e.workers, notAcked: e.notAcked.length });
    });
    const swappedAt = new Map<string, number>();
    primary.holder.subscribe((change) => swappedAt.set(change.table.version, performance.now()));

    // bounded keep-alive load
    let ok = 0;
    const failures: string[] = [];
    const loops = Array.from({ length: LOAD_CONCURRENCY }, async () => {
      while (!stopLoad && ok + failures.length < MAX_LOAD_REQUESTS) {
        try {
          const res = await request(`http://127.0.0.1:${port}/x`, { dispatcher: agent, headers: { host: web }, signal: AbortSignal.timeout(5000) });
          const body = await res.body.text();
          if (res.statusCode === 200 && body.startsWith('b')) ok++;
          else failures.push(`${res.statusCode} ${body.slice(0, 100)}`);
        } catch (err) {
          failures.push(`error ${(err as Error).message}`);
        }
      }
    });

    const registered = new Set([0]);
    const portsOf = (set: Set<number>) => [...set].map((k) => backends[k].port).sort((a, b) => a - b).join(',');
    /** the server set after each change: states[0] before the first */
    const states = [portsOf(registered)];
    const latencies: number[] = [];
    const discoveryMs: number[] = [];
    for (let c = 0; c < CHANGES; c++) {
      const i = 1 + (c % 4) ; // instances 1..4 toggle; instance 0 always stays
      const t0 = performance.now();
      if (registered.has(i)) {
        registered.delete(i);
        await dereg(i);
      } else {
        registered.add(i);
        await reg(i);
      }
      const want = portsOf(registered);
      states.push(want);
      // a liveness bound (a lost publish never comes), not a latency target: that is the figure below
      const deadline = Date.now() + 30_000;
      let hit: PublishedEvent | undefined;
      while (!hit) {
        hit = published.find((e) => e.at >= t0 && serversOf(e) === want && e.acked === e.workers && e.workers === 2);
        if (hit) break;
        if (Date.now() > deadline) assert.fail(`change ${c} (${want}) not published to both workers within 30 s`);
        await new Promise((r) => setTimeout(r, 1));
      }
      latencies.push(hit.at - t0);
      const swap = swappedAt.get(hit.table.version);
      if (swap !== undefined) discoveryMs.push(swap - t0);
      published.length = 0;
      swappedAt.clear();
      await new Promise((r) => setTimeout(r, 5));
    }
    // let the load run a little on the final table, then stop it
    await new Promise((r) => setTimeout(r, 200));
    stopLoad = true;
    await Promise.all(loops);

    const sorted = [...latencies].sort((a, b) => a - b);
    const fmt = (n: number) => n.toFixed(1);
    const figure = (line: string) => process.stderr.write(`${line}\n`);
    figure(`# churn: ${CHANGES} changes, ${ok} requests ok, ${failures.length} failed; publish latency (Consul PUT -> all 2 workers acked) ` +
      `p50=${fmt(quantile(sorted, 0.5))} ms p90=${fmt(quantile(sorted, 0.9))} ms p99=${fmt(quantile(sorted, 0.99))} ms max=${fmt(sorted[sorted.length - 1])} ms`);
    const disc = [...discoveryMs].sort((a, b) => a - b);
    figure(`# of which Consul PUT -> table swapped in the primary: p50=${fmt(quantile(disc, 0.5))} ms p99=${fmt(quantile(disc, 0.99))} ms`);
    const m = primary.supervisor.metrics();
    figure(`# supervisor IPC publish latency (primary -> all workers acked): p50=${fmt(m.publishLatencyMs.p50)} ms p99=${fmt(m.publishLatencyMs.p99)} ms over ${m.publishLatencyMs.samples} publishes`);

    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed requests`);
    assert.ok(ok > CHANGES, `load too small: ${ok} requests`);
    for (const k of [1, 2, 3, 4]) assert.ok(backends[k].hits() > 0, `instance ${k} never got traffic`);
    assert.equal(latencies.length, CHANGES, 'every change was published to both workers');
    // Order: each publish shows a state at or after the one published before it (debouncing may skip
    // states, never go back to an older one), and every publish reached both workers.
    let at = 0;
    for (const [n, h] of history.entries()) {
      assert.deepEqual({ acked: h.acked, workers: h.workers, notAcked: h.notAcked }, { acked: 2, workers: 2, notAcked: 0 }, `publish ${n} (${h.servers}) acknowledged by both workers`);
      // states repeat (instances toggle), so look forward from the last match only
      const next = states.indexOf(h.servers, at);
      assert.ok(next >= 0, `publish ${n} (${h.servers}) is no state at or after change ${at} (an older table published after a newer one)`);
      at = next;
    }
    assert.equal(history.at(-1)?.servers, states[CHANGES], 'the last publish is the final state');
    assert.equal(m.workersAlive, 2);
  } finally {
    stopLoad = true;
    await primary?.stop();
    await agent.close();
    for (const b of backends) {
      b.server.closeAllConnections();
      b.server.close();
    }
    await scope.clean(consul);
    await consul.close();
  }
});
