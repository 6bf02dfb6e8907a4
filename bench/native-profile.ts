// One profile of the native engine under load: ours (1 worker, `node --cpu-prof`) alone on CPU 0,
// wrk and an nginx upstream on CPU 1, one workload; prints wrk's figures, the CPU per request, the
// event-loop lag the worker reports while loaded, and the summary of the worker's CPU profile.
//   npm run build && node dist/bench/native-profile.js [--path /small.txt|/big.bin] [--post-bytes N]
//     [--duration 15] [--connections 64] [--out /tmp/native-prof] [--tls] [--close] [--idle] [--no-prof]
// --idle: no load at all: the CPU ms/s each process spends doing nothing, and the worker's profile of it
// --tls: through ours' --tls-listen (ECDSA P-256); --close: `Connection: close` (a new connection per request)
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { makeTestCa } from '../test/support/tls-certs.js';
import { loadAverage } from './compare/cpu.js';
import { processTree, treeUsage } from './support/proc-stats.js';
import { freePort, startNginx, tempDir, waitForPort } from './support/processes.js';
import { startOurs } from './support/ours.js';
import { runWrk } from './support/wrk.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argStr = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const urlPath = argStr('path') ?? '/small.txt';
const postBytes = argStr('post-bytes') === undefined ? undefined : Number(argStr('post-bytes'));
const durationS = Number(argStr('duration') ?? 15);
const connections = Number(argStr('connections') ?? 64);
const out = argStr('out') ?? tempDir('native-prof-');
const useTls = process.argv.includes('--tls');
const close = process.argv.includes('--close');
const idle = process.argv.includes('--idle');
/** no --cpu-prof (the sampler thread costs CPU of its own: an idle figure is honest only without it) */
const noProfile = process.argv.includes('--no-prof');
const TLS_NAME = 'bench.example.test';

async function lagLines(adminUrl: string): Promise<string[]> {
  const res = await request(`${adminUrl}/metrics`, { headersTimeout: 5000, bodyTimeout: 5000 });
  const text = await res.body.text();
  return text.split('\n').filter((l) => l.includes('event_loop_lag_seconds{'));
}

async function main(): Promise<void> {
  console.log(`# native profile: ${useTls ? 'TLS ' : ''}${close ? 'Connection: close ' : ''}${postBytes === undefined ? 'GET' : `POST ${postBytes} B`} ${urlPath}, wrk -t1 -c${connections} -d${durationS}s, load average ${loadAverage().toFixed(2)}`);
  const files = tempDir('bench-prof-files-');
  mkdirSync(files, { recursive: true });
  writeFileSync(path.join(files, 'small.txt'), `${'x'.repeat(99)}\n`);
  writeFileSync(path.join(files, 'big.bin'), Buffer.alloc(64 * 1024, 0x62));
  chmodSync(files, 0o755);
  for (const f of ['small.txt', 'big.bin']) chmodSync(path.join(files, f), 0o644);
  const upstreamPort = await freePort();
  const upstream = startNginx('1', [
    `server { listen 127.0.0.1:${upstreamPort}; keepalive_requests 1000000; root ${files}; sendfile on; tcp_nopush on;`,
    '  location /upload { client_max_body_size 2m; client_body_buffer_size 2m; return 200 "ok\\n"; } }',
  ].join('\n'));
  await waitForPort(upstreamPort);
  mkdirSync(out, { recursive: true });
  const ca = useTls ? await makeTestCa('prof') : undefined;
  const certDir = tempDir('bench-prof-tls-');
  if (ca !== undefined) {
    const pem = await ca.issue([TLS_NAME]);
    writeFileSync(path.join(certDir, 'bench.pem'), pem.cert + pem.key, { mode: 0o600 });
  }
  const ours = await startOurs({
    root: repoRoot, engine: 'native', workers: 1, cpus: '0', upstreamPort, nodeArgs: noProfile ? [] : ['--cpu-prof', `--cpu-prof-dir=${out}`],
    tls: useTls ? { certDir, defaultCert: TLS_NAME } : undefined,
  });
  if (ours.proc === undefined || ours.baseUrl === undefined || ours.adminUrl === undefined) throw new Error(`ours did not start: ${ours.note}`);
  let lag: string[] = [];
  try {
    if (idle) await idleFigures(ours.proc.pid, durationS);
    else await loadedFigures(ours.proc.pid, ours.baseUrl);
    // the sampler reports the last second: read while the load is on (loadedFigures returns before wrk ends)
    lag = await lagLines(ours.adminUrl);
    await pendingWrk;
  } finally {
    await ours.proc.stop();
    await upstream.stop();
    await ca?.close();
  }
  printProfile(lag, ours.proc.pid);
}

let pendingWrk: Promise<unknown> = Promise.resolve();

/** wrk against ours; returns 2 s before the load ends (the lag sampler reports the last second), pendingWrk prints the figures */
async function loadedFigures(pid: number, baseUrl: string): Promise<void> {
  const opts = { url: `${baseUrl}${urlPath}`, host: 'bench', connections, cpus: '1', postBytes, closeConnection: close };
  await runWrk({ ...opts, durationS: 2 });
  const before = treeUsage(pid);
  pendingWrk = runWrk({ ...opts, durationS }).then((wrk) => {
    const after = treeUsage(pid);
    console.log(`req/s ${wrk.rps.toFixed(0)}  p50 ${wrk.p50Ms.toFixed(2)} ms  p99 ${wrk.p99Ms.toFixed(2)} ms  max ${wrk.maxMs.toFixed(2)} ms  errors ${wrk.errors + wrk.non2xx}  CPU ${(((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, wrk.requests)).toFixed(1)} us/req (process tree)`);
  });
  await new Promise((r) => setTimeout(r, (durationS - 2) * 1000));
}

/** CPU ms per second of the primary and of each worker while nothing is asked of them. */
async function idleFigures(primaryPid: number, seconds: number): Promise<void> {
  // the start-up's first requests and JIT settle first
  await new Promise((r) => setTimeout(r, 2000));
  const workers = processTree(primaryPid).filter((p) => p !== primaryPid);
  // a worker's figure is its own; the primary's is its tree's less its workers'
  const sample = (): number[] => {
    const w = workers.map((p) => treeUsage(p).cpuMs);
    return [treeUsage(primaryPid).cpuMs - w.reduce((a, b) => a + b, 0), ...w];
  };
  const before = sample();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = sample();
  ['primary', ...workers.map((p) => `worker pid ${p}`)].forEach((name, i) => {
    console.log(`idle CPU ${name}: ${((after[i] - before[i]) / seconds).toFixed(1)} ms/s over ${seconds} s (/proc, 10 ms ticks)`);
  });
}

function printProfile(lag: readonly string[], primary: number): void {
  for (const l of lag) console.log(`# ${l}`);
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: the worker's is the one not written by the primary
  const primaryPid = String(primary);
  const profiles = readdirSync(out).filter((f) => f.endsWith('.cpuprofile') && f.split('.')[3] !== primaryPid).map((f) => path.join(out, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (profiles.length === 0) { console.log('# no profile written'); return; }
  console.log(`# worker profile: ${profiles[0]}`);
  console.log(execFileSync(process.execPath, [path.join(repoRoot, 'dist', 'bench', 'support', 'cpu-profile-summary.js'), profiles[0], '45'], { encoding: 'utf8' }));
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
