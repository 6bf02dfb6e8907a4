// Native engine CPU per request, this build against an older one, side by side in one run; prints
// figures, never asserts.
//   npm run build && node dist/bench/native-cpu-ab.js --baseline /path/to/old/checkout [--duration 6] [--rounds 3] [--connections 64] [--cpu-prof /tmp/prof] [--workloads GET,POST]
// `--baseline`: the root of another checkout with its own build (bin/balancer.js + dist/): e.g.
// `git archive <commit> | tar -x -C /tmp/old && cd /tmp/old && ln -s <repo>/node_modules && npx tsc -p tsconfig.json`.
// Rows: nginx 1 worker (reference), ours native 1 worker (baseline), ours native 1 worker (this
// build); workloads: a 100-byte and a 64 KiB GET, a 1 KiB POST (a body that ends in the gate) and a
// 1 MB POST (-c16, as bench/proxy-throughput; the upstream nginx reads the body and answers `ok`). Layout as bench/proxy-throughput: each proxy alone
// on CPU 0, wrk and the upstream nginx on CPU 1; rounds interleaved (a burst of load elsewhere hits
// every row), median shown, load average printed. CPU us/req is the process tree's CPU time over
// wrk's request count: compare rows within this run, it is the steadier figure on a busy machine.
// `--cpu-prof dir`: this build's processes write V8 CPU profiles there (for `node --cpu-prof` reading).
import { mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage } from './compare/cpu.js';
import { treeUsage } from './support/proc-stats.js';
import { freePort, startNginx, tempDir, waitForPort, type Started } from './support/processes.js';
import { startOurs } from './support/ours.js';
import { runWrk } from './support/wrk.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argStr = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const arg = (name: string, dflt: number): number => Number(argStr(name) ?? dflt);
const durationS = arg('duration', 6);
const rounds = arg('rounds', 3);
const connections = arg('connections', 64);
const baseline = argStr('baseline');
const cpuProf = argStr('cpu-prof');
/** --workloads GET,POST: only workloads whose name contains one of these */
const onlyWorkloads = argStr('workloads')?.split(',');
const PROXY_CPU = '0';
const LOAD_CPU = '1';

interface Row { readonly name: string; readonly proc: Started | undefined; readonly baseUrl: string | undefined; readonly note?: string }
interface Workload { readonly name: string; readonly path: string; readonly postBytes?: number; readonly connections?: number }
const ALL_WORKLOADS: readonly Workload[] = [
  { name: '100 B GET', path: '/small.txt' }, { name: '64 KiB GET', path: '/big.bin' },
  { name: '1 KiB POST', path: '/upload', postBytes: 1024 },
  { name: '1 MB POST', path: '/upload', postBytes: 1024 * 1024, connections: Math.max(1, Math.min(connections, 16)) },
];
const workloads = ALL_WORKLOADS.filter((w) => onlyWorkloads === undefined || onlyWorkloads.some((o) => w.name.includes(o)));

function median(values: number[]): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const load0 = loadAverage();
  console.log(`# native CPU A/B: wrk -t1 -c${connections} -d${durationS}s, ${rounds} interleaved round(s), median shown; node ${process.version}, ${os.cpus().length} CPUs`);
  console.log(`# reproduce: node dist/bench/native-cpu-ab.js --baseline ${baseline ?? '<dir>'} --duration ${durationS} --rounds ${rounds} --connections ${connections}${onlyWorkloads === undefined ? '' : ` --workloads ${onlyWorkloads.join(',')}`}`);
  console.log(`# load average at start ${load0.toFixed(2)}${load0 > os.cpus().length ? ' (BUSY machine: compare within this run only)' : ''}`);

  const files = tempDir('bench-ab-files-');
  mkdirSync(files, { recursive: true });
  writeFileSync(path.join(files, 'small.txt'), `${'x'.repeat(99)}\n`);
  writeFileSync(path.join(files, 'big.bin'), Buffer.alloc(64 * 1024, 0x62));
  chmodSync(files, 0o755);
  for (const f of ['small.txt', 'big.bin']) chmodSync(path.join(files, f), 0o644);
  const upstreamPort = await freePort();
  const upstream = startNginx(LOAD_CPU, [
    `server { listen 127.0.0.1:${upstreamPort}; keepalive_requests 1000000; root ${files}; sendfile on; tcp_nopush on;`,
    '  location /upload { client_max_body_size 2m; client_body_buffer_size 2m; return 200 "ok\\n"; } }',
  ].join('\n'));
  await waitForPort(upstreamPort);
  const nginxPort = await freePort();
  const nginx = startNginx(PROXY_CPU, [
    `upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }`,
    `server { listen 127.0.0.1:${nginxPort}; keepalive_requests 1000000;`,
    '  client_max_body_size 2m; client_body_buffer_size 2m;',
    '  location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection "";',
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } }',
  ].join('\n'));
  await waitForPort(nginxPort);

  const rows: Row[] = [{ name: 'nginx 1 worker', proc: nginx, baseUrl: `http://127.0.0.1:${nginxPort}` }];
  if (baseline !== undefined) rows.push(await startOurs({ root: path.resolve(baseline), engine: 'native', workers: 1, cpus: PROXY_CPU, upstreamPort, name: 'native baseline' }));
  if (cpuProf !== undefined) mkdirSync(cpuProf, { recursive: true });
  rows.push(await startOurs({
    root: repoRoot, engine: 'native', workers: 1, cpus: PROXY_CPU, upstreamPort, name: 'native this build',
    nodeArgs: cpuProf === undefined ? undefined : ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`],
  }));

  const samples = new Map<string, Array<{ rps: number; cpu: number; p99: number; errors: number }>>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const w of workloads) {
        for (const r of rows) {
          if (r.baseUrl === undefined || r.proc === undefined) continue;
          const opts = { url: `${r.baseUrl}${w.path}`, host: 'bench', connections: w.connections ?? connections, cpus: LOAD_CPU, postBytes: w.postBytes };
          await runWrk({ ...opts, durationS: 1 }); // warm-up: JIT, keep-alive pools
          const before = treeUsage(r.proc.pid);
          const res = await runWrk({ ...opts, durationS });
          const after = treeUsage(r.proc.pid);
          const k = `${r.name}|${w.name}`;
          samples.set(k, [...(samples.get(k) ?? []), {
            rps: res.rps, cpu: ((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, res.requests), p99: res.p99Ms, errors: res.errors + res.non2xx,
          }]);
        }
      }
      console.error(`# round ${round + 1}/${rounds} done, load average ${loadAverage().toFixed(2)}`);
    }
  } finally {
    await Promise.all([upstream.stop(), ...rows.map((r) => r.proc?.stop())]);
  }

  const pad = (s: string, n: number): string => s.padEnd(n);
  console.log('');
  console.log(`${pad('workload', 11)} ${pad('target', 18)} ${pad('req/s', 8)} ${pad('p99 ms', 7)} ${pad('CPU us/req', 11)} ${pad('errors', 6)} CPU vs nginx`);
  for (const w of workloads) {
    const ref = median((samples.get(`nginx 1 worker|${w.name}`) ?? []).map((s) => s.cpu));
    for (const r of rows) {
      const list = samples.get(`${r.name}|${w.name}`);
      if (list === undefined) { console.log(`${pad(w.name, 11)} ${pad(r.name, 18)} n/a: ${r.note ?? 'not started'}`); continue; }
      const cpu = median(list.map((s) => s.cpu));
      const each = list.map((s) => s.cpu.toFixed(1)).join('/');
      console.log(`${pad(w.name, 11)} ${pad(r.name, 18)} ${pad(median(list.map((s) => s.rps)).toFixed(0), 8)} ${pad(median(list.map((s) => s.p99)).toFixed(2), 7)} ${pad(cpu.toFixed(1), 11)} ${pad(String(list.reduce((a, s) => a + s.errors, 0)), 6)} ${r.name.startsWith('nginx') ? '' : `${(cpu / ref).toFixed(2)}x`}  (rounds: ${each})`);
    }
  }
  console.log('');
  console.log(`# load average at start ${load0.toFixed(2)}, at end ${loadAverage().toFixed(2)} (${os.cpus().length} CPUs)`);
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
