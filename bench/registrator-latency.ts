// Registrator latency benchmark: prints figures, never asserts.
//   npm run build && node dist/bench/registrator-latency.js [--containers 30] [--resync 200]
// 1. start -> visible: for each of --containers containers (one at a time): `docker create`, then time from
//    `docker start` returning until the service is in the Consul double's /v1/agent/services (polled every
//    5 ms). p50/p99/max.
// 2. resync: --resync containers already running, a fresh registrator process: time of its start-up resync
//    with an empty Consul (every service registered: "cold") and again after a restart (all registered,
//    nothing to change: "warm"), as logged by the registrator (list + inspect + diff + apply).
// Uses the real Docker engine and the in-process Consul double; removes its containers at the end.
import { startConsulDouble } from '../test/support/consul-double/index.js';
import { cleanupRun, containerName, docker, runId, webImage, RUN_LABEL } from '../test/support/docker.js';
import { agentServices, spawnRegistrator, waitFor } from '../test/support/registrator-process.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const latencyCount = arg('containers', 30);
const resyncCount = arg('resync', 200);

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

async function createWeb(serviceName: string, image: string): Promise<{ id: string; name: string }> {
  const name = containerName('bench');
  const id = await docker(['create', '--name', name, '--label', `${RUN_LABEL}=${runId}`, '-e', `SERVICE_NAME=${serviceName}`, '-p', '127.0.0.1::80', image]);
  return { id, name };
}

/** Runs fn over items with at most `limit` in flight. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

async function main(): Promise<void> {
  console.log('# registrator latency benchmark');
  console.log(`# reproduce: npm run build && node dist/bench/registrator-latency.js --containers ${latencyCount} --resync ${resyncCount}`);
  const image = await webImage();
  const consul = await startConsulDouble({ host: '127.0.0.1', port: 0 });
  const hostname = `bench-${runId}`;
  const registryArg = `consul://${consul.host}:${consul.port}`;
  try {
    // 1. start -> visible in Consul
    const reg = spawnRegistrator(['-hostname', hostname, '-explicit', '-log-level', 'warn', registryArg]);
    await new Promise((r) => setTimeout(r, 1500)); // start-up resync of whatever already runs on the engine
    const latencies: number[] = [];
    const fromIssue: number[] = [];
    const service = `bench-${runId}-latency`;
    for (let i = 0; i < latencyCount; i++) {
      const c = await createWeb(service, image);
      const serviceId = `${hostname}:${c.name}:80`;
      const issued = performance.now();
      await docker(['start', c.id]);
      const t0 = performance.now();
      await waitFor(`service ${serviceId}`, async () => ((await agentServices(consul.url))[serviceId] ? true : undefined), 15_000, 5);
      latencies.push(performance.now() - t0);
      fromIssue.push(performance.now() - issued);
    }
    await reg.stop();
    const sorted = [...latencies].sort((a, b) => a - b);
    const issuedSorted = [...fromIssue].sort((a, b) => a - b);
    console.log(`\n\`docker start\` returned -> visible in Consul, ${latencies.length} containers (ms): p50 ${percentile(sorted, 50).toFixed(1)}  p99 ${percentile(sorted, 99).toFixed(1)}  max ${sorted[sorted.length - 1].toFixed(1)}  min ${sorted[0].toFixed(1)}`);
    console.log(`(for reference) \`docker start\` invoked -> visible (ms): p50 ${percentile(issuedSorted, 50).toFixed(1)}  p99 ${percentile(issuedSorted, 99).toFixed(1)}  (includes the CLI process and the engine starting the container)`);

    // 2. resync of many running containers
    const resyncService = `bench-${runId}-resync`;
    const t1 = performance.now();
    const created = await pool(Array.from({ length: resyncCount }, (_, i) => i), 6, () => createWeb(resyncService, image));
    const batches: string[][] = [];
    for (let i = 0; i < created.length; i += 25) batches.push(created.slice(i, i + 25).map((c) => c.id));
    await pool(batches, 2, (ids) => docker(['start', ...ids], { timeoutMs: 300_000 }));
    console.log(`\n(${resyncCount} containers created and started in ${((performance.now() - t1) / 1000).toFixed(1)} s)`);

    const resyncHost = `${hostname}-resync`;
    for (const phase of ['cold (empty Consul)', 'warm (all registered)']) {
      const spawnedAt = performance.now();
      const r = spawnRegistrator(['-hostname', resyncHost, '-explicit', '-log-level', 'info', registryArg]);
      const line = await r.waitForLog((l) => l.event === 'resync', 180_000, 'start-up resync');
      const wall = performance.now() - spawnedAt;
      const registered = Object.values(await agentServices(consul.url)).filter((s) => s.Service === resyncService).length;
      console.log(`resync ${phase}: ${line.ms} ms for ${line.containers} running containers (${registered} of ${resyncCount} services in Consul); process start to resync done ${wall.toFixed(0)} ms`);
      await r.stop();
    }
  } finally {
    await cleanupRun();
    await consul.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
