// Proxy throughput, side by side in one run; prints figures, never asserts.
//   npm run build && node dist/bench/proxy-throughput.js [--duration 6] [--rounds 3] [--connections 64]
// Targets: direct (no proxy); nginx 1 worker (upstream keepalive); HAProxy 1 thread; bare node:http +
// undici Pool.dispatch (no features); ours --engine native 1 worker; ours --engine undici 1 worker;
// ours native 2 workers. Workloads: GET of a 100-byte and of a 64 KiB response, and 1 MB POSTs.
// Layout on a 2-core machine: the proxy under test alone on CPU 0; wrk and the upstream nginx (static
// files, sendfile, keepalive) on CPU 1. "2 workers" gets CPUs 0-1 and so competes with wrk: read it as
// what a second worker buys on this box, not as a clean scaling figure.
// Noise guard: every figure is the median of --rounds interleaved rounds (each target once per round,
// so a burst of load elsewhere hits all of them); a row whose req/s spread (max-min)/median exceeds
// 20 % is marked '~'; the load average is printed before and after, and the direct row is measured
// again at the end: if it moved by more than 20 % the machine changed under the run and it says so.
// On a busy machine req/s says how much CPU each process got; "CPU us/req" (the proxy's process-tree
// CPU time / requests) is the steadier figure for comparing proxies.
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage } from './compare/cpu.js';
import { treeUsage } from './support/proc-stats.js';
import { freePort, spawnPinned, startNginx, tempDir, waitForPort, type Started } from './support/processes.js';
import { runWrk, type WrkResult } from './support/wrk.js';
import { startOurs as startBalancer } from './support/ours.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const durationS = arg('duration', 6);
const warmupS = Math.max(1, Math.min(2, Math.round(durationS / 3)));
const rounds = arg('rounds', 3);
const connections = arg('connections', 64);
/** 1 MB bodies: fewer connections keep the memory in flight sane */
const postConnections = Math.max(1, Math.min(connections, 16));
const PROXY_CPU = '0';
const LOAD_CPU = '1';
const NOISY_SPREAD = 0.2;

interface Workload {
  readonly name: string;
  readonly path: string;
  readonly connections: number;
  readonly postBytes?: number;
}
const WORKLOADS: readonly Workload[] = [
  { name: '100 B GET', path: '/small.txt', connections },
  { name: '64 KiB GET', path: '/big.bin', connections },
  { name: '1 MB POST', path: '/upload', connections: postConnections, postBytes: 1024 * 1024 },
];

/** One thing wrk is pointed at: started once, measured for every workload in every round. */
interface Target {
  readonly name: string;
  /** undefined: not available in this build (printed as such) */
  readonly proc: Started | undefined;
  readonly baseUrl: string | undefined;
  readonly note?: string;
}

interface Sample { wrk: WrkResult; cpuUsPerReq: number; rssMb: number }

async function measure(target: Target, w: Workload): Promise<Sample> {
  const opts = { url: `${target.baseUrl}${w.path}`, host: 'bench', connections: w.connections, cpus: LOAD_CPU, postBytes: w.postBytes };
  await runWrk({ ...opts, durationS: warmupS }); // JIT, keep-alive pools
  const before = target.proc ? treeUsage(target.proc.pid) : undefined;
  const wrk = await runWrk({ ...opts, durationS });
  const after = target.proc ? treeUsage(target.proc.pid) : undefined;
  const cpuUsPerReq = before && after ? ((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, wrk.requests) : NaN;
  return { wrk, cpuUsPerReq, rssMb: after?.rssMb ?? NaN };
}

function writeUpstreamFiles(): string {
  const dir = tempDir('bench-upstream-files-');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'small.txt'), `${'x'.repeat(99)}\n`);
  writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(64 * 1024, 0x62));
  // mkdtemp makes it 0700: nginx's workers (www-data) must read it
  chmodSync(dir, 0o755);
  for (const f of ['small.txt', 'big.bin']) chmodSync(path.join(dir, f), 0o644);
  return dir;
}

function startHaproxy(cpus: string, port: number, upstreamPort: number): Started {
  const dir = tempDir('bench-haproxy-');
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfg, [
    'global', '  nbthread 1', '  maxconn 8192',
    'defaults', '  mode http', '  timeout connect 5s', '  timeout client 30s', '  timeout server 30s',
    '  option http-keep-alive', '  option forwardfor', '  http-reuse always',
    'frontend bench', `  bind 127.0.0.1:${port}`, '  default_backend upstream',
    'backend upstream', `  server s1 127.0.0.1:${upstreamPort}`,
    '',
  ].join('\n'));
  return spawnPinned(cpus, 'haproxy', ['-db', '-f', cfg]);
}

function median(values: number[]): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const load0 = loadAverage();
  console.log(`# proxy throughput: wrk -t1 -c${connections} (POST -c${postConnections}) -d${durationS}s after ${warmupS}s warm-up, ${rounds} interleaved round(s), median shown`);
  console.log(`# reproduce: npm run build && node dist/bench/proxy-throughput.js --duration ${durationS} --rounds ${rounds} --connections ${connections}`);
  console.log(`# node ${process.version}, ${os.cpus().length} CPUs, load average at start ${load0.toFixed(2)}${load0 > os.cpus().length ? ' (BUSY machine: compare within this run only)' : ''}`);

  const files = writeUpstreamFiles();
  const upstreamPort = await freePort();
  const upstream = startNginx(LOAD_CPU, [
    `server { listen 127.0.0.1:${upstreamPort}; keepalive_requests 1000000; root ${files}; sendfile on; tcp_nopush on;`,
    '  location /upload { client_max_body_size 2m; client_body_buffer_size 2m; return 200 "ok\\n"; } }',
  ].join('\n'));
  await waitForPort(upstreamPort);

  const nginxPort = await freePort();
  const nginxProxy = startNginx(PROXY_CPU, [
    `upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }`,
    `server { listen 127.0.0.1:${nginxPort}; keepalive_requests 1000000; client_max_body_size 2m; client_body_buffer_size 2m;`,
    '  location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection "";',
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } }',
  ].join('\n'));
  await waitForPort(nginxPort);

  const haproxyPort = await freePort();
  const haproxy = startHaproxy(PROXY_CPU, haproxyPort, upstreamPort);
  await waitForPort(haproxyPort);

  const plainPort = await freePort();
  const plain = spawnPinned(PROXY_CPU, process.execPath, [
    path.join(repoRoot, 'dist', 'bench', 'support', 'plain-undici-proxy.js'), String(plainPort), `http://127.0.0.1:${upstreamPort}`,
  ]);
  await waitForPort(plainPort);

  const targets: Target[] = [
    { name: 'direct', proc: undefined, baseUrl: `http://127.0.0.1:${upstreamPort}` },
    { name: 'nginx 1 worker', proc: nginxProxy, baseUrl: `http://127.0.0.1:${nginxPort}` },
    { name: 'haproxy 1 thread', proc: haproxy, baseUrl: `http://127.0.0.1:${haproxyPort}` },
    { name: 'node:http+undici', proc: plain, baseUrl: `http://127.0.0.1:${plainPort}` },
    await startBalancer({ root: repoRoot, engine: 'native', workers: 1, cpus: PROXY_CPU, upstreamPort }),
    await startBalancer({ root: repoRoot, engine: 'undici', workers: 1, cpus: PROXY_CPU, upstreamPort }),
    await startBalancer({ root: repoRoot, engine: 'native', workers: 2, cpus: '0-1', upstreamPort }),
    // ---- HTTPS rows go here (tls helper): targets with an https:// baseUrl (nginx ssl, ours
    // --tls-listen) are measured by the same loop; bench/tls-throughput.ts has the handshake rows ----
  ];
  const live = targets.filter((t) => t.baseUrl !== undefined);

  const samples = new Map<string, Sample[]>();
  const key = (t: Target, w: Workload): string => `${t.name}|${w.name}`;
  let directEnd: WrkResult | undefined;
  try {
    for (let round = 0; round < rounds; round++) {
      for (const w of WORKLOADS) {
        for (const t of live) {
          const s = await measure(t, w);
          samples.set(key(t, w), [...(samples.get(key(t, w)) ?? []), s]);
        }
      }
      console.error(`# round ${round + 1}/${rounds} done, load average ${loadAverage().toFixed(2)}`);
    }
    directEnd = (await measure(targets[0], WORKLOADS[0])).wrk;
  } finally {
    await Promise.all([upstream.stop(), nginxProxy.stop(), haproxy.stop(), plain.stop(), ...targets.filter((t) => t.name.startsWith('ours')).map((t) => t.proc?.stop())]);
  }

  const pad = (s: string, n: number): string => s.padEnd(n);
  const fmt = (v: number, digits: number): string => (Number.isNaN(v) ? '-' : v.toFixed(digits));
  const nginxRps = new Map<string, number>();
  console.log('');
  console.log(`${pad('workload', 11)} ${pad('target', 17)} ${pad('req/s', 9)} ${pad('MB/s', 7)} ${pad('p50 ms', 7)} ${pad('p99 ms', 8)} ${pad('CPU us/req', 10)} ${pad('RSS MB', 6)} ${pad('errors', 6)} vs nginx`);
  for (const w of WORKLOADS) {
    for (const t of targets) {
      const list = samples.get(key(t, w));
      if (list === undefined) { console.log(`${pad(w.name, 11)} ${pad(t.name, 17)} n/a: ${t.note ?? 'not started'}`); continue; }
      const rps = list.map((s) => s.wrk.rps);
      const m = median(rps);
      const spread = (Math.max(...rps) - Math.min(...rps)) / m;
      const mbps = median(list.map((s) => (w.postBytes !== undefined ? s.wrk.rps * w.postBytes : s.wrk.bytes / s.wrk.durationS) / 1e6));
      if (t.name === 'nginx 1 worker') nginxRps.set(w.name, m);
      const vs = nginxRps.get(w.name);
      const errors = list.reduce((a, s) => a + s.wrk.errors + s.wrk.non2xx, 0);
      console.log(`${pad(w.name, 11)} ${pad(t.name, 17)} ${pad(`${fmt(m, 0)}${list.length > 1 && spread > NOISY_SPREAD ? '~' : ''}`, 9)} ${pad(fmt(mbps, 1), 7)} ${pad(fmt(median(list.map((s) => s.wrk.p50Ms)), 2), 7)} ${pad(fmt(median(list.map((s) => s.wrk.p99Ms)), 2), 8)} ${pad(fmt(median(list.map((s) => s.cpuUsPerReq)), 1), 10)} ${pad(fmt(median(list.map((s) => s.rssMb)), 0), 6)} ${pad(String(errors), 6)} ${vs === undefined || t.name === 'nginx 1 worker' || t.name === 'direct' ? '' : `${(m / vs).toFixed(2)}x`}`);
    }
  }
  const directStart = median((samples.get(key(targets[0], WORKLOADS[0])) ?? []).map((s) => s.wrk.rps));
  const drift = directEnd === undefined ? NaN : Math.abs(directEnd.rps - directStart) / directStart;
  const load1 = loadAverage();
  console.log('');
  console.log(`# '~': req/s spread over the rounds above ${NOISY_SPREAD * 100} %. direct 100 B at the end: ${fmt(directEnd?.rps ?? NaN, 0)} req/s (${fmt(drift * 100, 0)} % from the rounds${drift > NOISY_SPREAD ? ': the machine changed under the run, compare rows only within a round' : ''})`);
  console.log(`# load average at start ${load0.toFixed(2)}, at end ${load1.toFixed(2)} (${os.cpus().length} CPUs)`);
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
