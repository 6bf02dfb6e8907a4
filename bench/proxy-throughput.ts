// Proxy throughput benchmark: prints figures side by side, never asserts.
//   npm run build && node dist/bench/proxy-throughput.js [--duration 8] [--rounds 2] [--connections 50]
// Layout on a 2-core machine: the proxy under test is pinned to CPU 0; wrk and the upstream (an nginx
// answering a fixed 200) share CPU 1. "ours x2" (2 workers) gets CPUs 0-1 and so competes with wrk:
// read it as "what a second worker buys on this box", not as a clean scaling figure.
// On a shared, busy machine req/s mostly says how much CPU each process got; "CPU us/req" (process
// tree CPU time / requests) is the steadier figure for comparing engines. "node+undici plain" is the
// least a node:http + undici proxy can do (no features): ours/plain is what the features cost.
import { runWrk, type WrkResult } from './support/wrk.js';
import { treeUsage } from './support/proc-stats.js';
import { freePort, spawnPinned, startNginx, waitForPort, type Started } from './support/processes.js';
import { request } from 'undici';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const durationS = arg('duration', 8);
const rounds = arg('rounds', 2);
const connections = arg('connections', 50);
const PROXY_CPU = '0';
const LOAD_CPU = '1';

interface Row { name: string; wrk: WrkResult; cpuUsPerReq: number; rssMb: number }

async function measure(name: string, proc: Started | undefined, url: string, host: string, cpus = LOAD_CPU): Promise<Row> {
  // warm-up: JIT, keep-alive pools
  await runWrk({ url, host, connections, durationS: 2, cpus });
  const before = proc ? treeUsage(proc.pid) : undefined;
  const wrk = await runWrk({ url, host, connections, durationS, cpus });
  const after = proc ? treeUsage(proc.pid) : undefined;
  const cpuUsPerReq = before && after ? ((after.cpuMs - before.cpuMs) * 1000) / wrk.requests : NaN;
  return { name, wrk, cpuUsPerReq, rssMb: after?.rssMb ?? NaN };
}

async function startOursOnce(workers: number, cpus: string, upstreamPort: number): Promise<{ proc: Started; url: string }> {
  const port = await freePort();
  const admin = await freePort();
  const proc = spawnPinned(cpus, process.execPath, [
    path.join(repoRoot, 'bin', 'balancer.js'), '--no-consul', '--workers', String(workers),
    '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`, '--log-level', 'warn',
  ]);
  try {
    await waitForPort(admin, 15_000);
    // freePort() releases the port before the balancer binds it: on a busy machine another process
    // may take it in between, so an answer that is not ours (or a dead child) is a failed start
    if (proc.child.exitCode !== null) throw new Error(`balancer exited with ${proc.child.exitCode}`);
    const res = await request(`http://127.0.0.1:${admin}/upstream/bench`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ servers: [{ host: '127.0.0.1', port: upstreamPort }] }),
      headersTimeout: 10_000, bodyTimeout: 10_000,
    });
    // 202: accepted but not yet confirmed by every worker; the polling below waits for it
    if (res.statusCode !== 200 && res.statusCode !== 202) throw new Error(`admin POST /upstream/bench -> ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}`);
    await res.body.dump();
    await waitForPort(port, 15_000);
    // every worker must have the table: poll until a run of requests all succeed
    const deadline = Date.now() + 10_000;
    let okInARow = 0;
    while (okInARow < 50 && Date.now() < deadline) {
      const r = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'bench' }, headersTimeout: 5_000 }).catch(() => undefined);
      if (r) await r.body.dump();
      okInARow = r?.statusCode === 200 ? okInARow + 1 : 0;
    }
    if (okInARow < 50) throw new Error('balancer did not start serving the bench upstream');
    return { proc, url: `http://127.0.0.1:${port}/` };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

async function startOurs(workers: number, cpus: string, upstreamPort: number): Promise<{ proc: Started; url: string }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOursOnce(workers, cpus, upstreamPort);
    } catch (err) {
      if (attempt >= 3) throw err;
      console.error(`# balancer start failed (${(err as Error).message}), retrying with fresh ports`);
    }
  }
}

function median(rows: Row[]): Row {
  const sorted = [...rows].sort((a, b) => a.wrk.rps - b.wrk.rps);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  console.log(`# proxy throughput: wrk -t1 -c${connections} -d${durationS}s, ${rounds} round(s), median shown`);
  console.log('# reproduce: npm run build && node dist/bench/proxy-throughput.js');
  const upstreamPort = await freePort();
  const upstream = startNginx(LOAD_CPU, `server { listen 127.0.0.1:${upstreamPort}; keepalive_requests 1000000; location / { return 200 "hello from upstream\\n"; } }`);
  await waitForPort(upstreamPort);

  const nginxPort = await freePort();
  const nginxProxy = startNginx(PROXY_CPU, [
    `upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }`,
    `server { listen 127.0.0.1:${nginxPort}; keepalive_requests 1000000;`,
    `  location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection "";`,
    `    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } }`,
  ].join('\n'));
  await waitForPort(nginxPort);

  const hpPort = await freePort();
  const hp = spawnPinned(PROXY_CPU, process.execPath, [
    path.join(repoRoot, 'dist', 'bench', 'support', 'http-proxy-server.js'), String(hpPort), `http://127.0.0.1:${upstreamPort}`,
  ]);
  await waitForPort(hpPort);

  const plainPort = await freePort();
  const plain = spawnPinned(PROXY_CPU, process.execPath, [
    path.join(repoRoot, 'dist', 'bench', 'support', 'plain-undici-proxy.js'), String(plainPort), `http://127.0.0.1:${upstreamPort}`,
  ]);
  await waitForPort(plainPort);

  const ours1 = await startOurs(1, PROXY_CPU, upstreamPort);
  const ours2 = await startOurs(2, '0-1', upstreamPort);

  const results = new Map<string, Row[]>();
  const push = (r: Row) => results.set(r.name, [...(results.get(r.name) ?? []), r]);
  try {
    for (let round = 0; round < rounds; round++) {
      push(await measure('direct', undefined, `http://127.0.0.1:${upstreamPort}/`, 'bench'));
      push(await measure('nginx (1 worker)', nginxProxy, `http://127.0.0.1:${nginxPort}/`, 'bench'));
      push(await measure('http-proxy', hp, `http://127.0.0.1:${hpPort}/`, 'bench'));
      push(await measure('node+undici plain', plain, `http://127.0.0.1:${plainPort}/`, 'bench'));
      push(await measure('ours (1 worker)', ours1.proc, ours1.url, 'bench'));
      push(await measure('ours (2 workers)', ours2.proc, ours2.url, 'bench'));
    }
  } finally {
    await Promise.all([upstream.stop(), nginxProxy.stop(), hp.stop(), plain.stop(), ours1.proc.stop(), ours2.proc.stop()]);
  }

  const rows = [...results.values()].map(median);
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`${pad('target', 18)} ${pad('req/s', 9)} ${pad('p50 ms', 8)} ${pad('p99 ms', 8)} ${pad('errors', 7)} ${pad('CPU us/req', 11)} RSS MB`);
  for (const r of rows) {
    console.log(`${pad(r.name, 18)} ${pad(r.wrk.rps.toFixed(0), 9)} ${pad(r.wrk.p50Ms.toFixed(2), 8)} ${pad(r.wrk.p99Ms.toFixed(2), 8)} ${pad(String(r.wrk.errors + r.wrk.non2xx), 7)} ${pad(Number.isNaN(r.cpuUsPerReq) ? '-' : r.cpuUsPerReq.toFixed(1), 11)} ${Number.isNaN(r.rssMb) ? '-' : r.rssMb.toFixed(0)}`);
  }
  const by = (n: string) => rows.find((r) => r.name === n)!;
  const o = by('ours (1 worker)');
  const ng = by('nginx (1 worker)');
  const hpr = by('http-proxy');
  console.log(`ratio ours(1w)/nginx req/s: ${(o.wrk.rps / ng.wrk.rps).toFixed(2)}   p99: ${(o.wrk.p99Ms / ng.wrk.p99Ms).toFixed(2)}   CPU/req: ${(o.cpuUsPerReq / ng.cpuUsPerReq).toFixed(2)}`);
  console.log(`ratio ours(1w)/http-proxy req/s: ${(o.wrk.rps / hpr.wrk.rps).toFixed(2)}   p99: ${(o.wrk.p99Ms / hpr.wrk.p99Ms).toFixed(2)}   CPU/req: ${(o.cpuUsPerReq / hpr.cpuUsPerReq).toFixed(2)}`);
  const pl = by('node+undici plain');
  console.log(`ratio ours(1w)/node+undici plain req/s: ${(o.wrk.rps / pl.wrk.rps).toFixed(2)}   CPU/req: ${(o.cpuUsPerReq / pl.cpuUsPerReq).toFixed(2)}`);
  console.log(`ratio ours(2w)/ours(1w) req/s: ${(by('ours (2 workers)').wrk.rps / o.wrk.rps).toFixed(2)}`);
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
