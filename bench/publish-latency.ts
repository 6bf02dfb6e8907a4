// Time from a Consul change to the new table serving in every worker (dynamic mode), printed, never asserted.
//   npm run build && node dist/bench/publish-latency.js [--changes 150] [--workers 1,2]
// The Consul API double runs as its own process (as an agent would); the balancer's primary runs in this
// process so the moment every worker has acknowledged a table can be observed exactly
// (supervisor.onPublished). "Consul PUT -> all acked" covers the blocking query returning, the pure
// table build, the IPC to every worker and the swap there.
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary } from '../balancer/src/cluster/primary.js';
import type { PublishedEvent } from '../balancer/src/cluster/supervisor.js';
import { parseBalancerArgs } from '../balancer/src/config.js';
import { freePort, spawnPinned, waitForPort } from './support/processes.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argValue = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const changes = Number(argValue('changes', '150'));
const workerCounts = argValue('workers', '1,2').split(',').map(Number);

const q = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

async function put(url: string, body?: unknown): Promise<void> {
  const res = await request(url, { method: 'PUT', body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`PUT ${url} -> ${res.statusCode}`);
}

async function measure(consulAddr: string, workers: number): Promise<{ e2e: number[]; ipc: number[] }> {
  const cfg = parseBalancerArgs(['--consul', consulAddr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0',
    '--workers', String(workers), '--services', 'pubbench', '--log-level', 'warn'], {}, { cores: workers });
  if (cfg.kind !== 'config') throw new Error('bad config');
  const consul = `http://${consulAddr}`;
  await put(`${consul}/v1/agent/service/register`, { ID: 'pubbench-0', Name: 'pubbench', Address: '127.0.0.1', Port: 20000, Check: { TTL: '1h', Status: 'passing' } });
  const primary = await startPrimary(cfg, pino({ level: 'silent' }));
  const published: PublishedEvent[] = [];
  primary.supervisor.onPublished((e) => published.push(e));
  const e2e: number[] = [];
  const ipc: number[] = [];
  try {
    for (let c = 0; c < changes; c++) {
      const id = `pubbench-${1 + (c % 2)}`;
      const port = 20001 + (c % 2);
      const adding = c % 4 < 2;
      published.length = 0;
      const t0 = performance.now();
      if (adding) await put(`${consul}/v1/agent/service/register`, { ID: id, Name: 'pubbench', Address: '127.0.0.1', Port: port, Check: { TTL: '1h', Status: 'passing' } });
      else await put(`${consul}/v1/agent/service/deregister/${id}`);
      const has = (e: PublishedEvent) => (e.table.upstreams.pubbench?.servers ?? []).some((s) => s.port === port) === adding;
      const deadline = Date.now() + 5000;
      let hit: PublishedEvent | undefined;
      while (!(hit = published.find((e) => e.acked === e.workers && has(e)))) {
        if (Date.now() > deadline) throw new Error(`change ${c} not published within 5 s`);
        await new Promise((r) => setTimeout(r, 1));
      }
      e2e.push(hit.at - t0);
      ipc.push(hit.latencyMs);
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    await primary.stop();
    for (const id of ['pubbench-0', 'pubbench-1', 'pubbench-2']) await put(`${consul}/v1/agent/service/deregister/${id}`).catch(() => undefined);
  }
  return { e2e, ipc };
}

async function main(): Promise<void> {
  console.log(`# publish latency: ${changes} Consul changes per run, Consul API double in its own process`);
  console.log('# reproduce: npm run build && node dist/bench/publish-latency.js');
  const port = await freePort();
  const double = spawnPinned(undefined, process.execPath, [path.join(repoRoot, 'dist', 'test', 'support', 'consul-double', 'cli.js'), '--port', String(port), '--host', '127.0.0.1']);
  try {
    await waitForPort(port);
    console.log('workers  consul PUT -> all workers serve (p50 / p99 / max ms)   primary -> all workers acked (p50 / p99 ms)');
    for (const w of workerCounts) {
      const { e2e, ipc } = await measure(`127.0.0.1:${port}`, w);
      const a = [...e2e].sort((x, y) => x - y);
      const b = [...ipc].sort((x, y) => x - y);
      console.log(`${String(w).padEnd(8)} ${q(a, 0.5).toFixed(1)} / ${q(a, 0.99).toFixed(1)} / ${a[a.length - 1].toFixed(1)}`.padEnd(66) + `${q(b, 0.5).toFixed(1)} / ${q(b, 0.99).toFixed(1)}`);
    }
  } finally {
    await double.stop();
  }
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
