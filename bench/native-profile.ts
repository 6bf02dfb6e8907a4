// One profile of the native engine under load: ours (1 worker, `node --cpu-prof`) alone on CPU 0,
// wrk and an nginx upstream on CPU 1, one workload; prints wrk's figures, the CPU per request, the
// event-loop lag the worker reports while loaded, and the summary of the worker's CPU profile.
//   npm run build && node dist/bench/native-profile.js [--path /small.txt|/big.bin] [--post-bytes N]
//     [--duration 15] [--connections 64] [--out /tmp/native-prof] [--tls] [--close]
// --tls: through ours' --tls-listen (ECDSA P-256); --close: `Connection: close` (a new connection per request)
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { makeTestCa } from '../test/support/tls-certs.js';
import { loadAverage } from './compare/cpu.js';
import { treeUsage } from './support/proc-stats.js';
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
    root: repoRoot, engine: 'native', workers: 1, cpus: '0', upstreamPort, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${out}`],
    tls: useTls ? { certDir, defaultCert: TLS_NAME } : undefined,
  });
  if (ours.proc === undefined || ours.baseUrl === undefined || ours.adminUrl === undefined) throw new Error(`ours did not start: ${ours.note}`);
  let lag: string[] = [];
  try {
    const opts = { url: `${ours.baseUrl}${urlPath}`, host: 'bench', connections, cpus: '1', postBytes, closeConnection: close };
    await runWrk({ ...opts, durationS: 2 });
    const before = treeUsage(ours.proc.pid);
    const loaded = runWrk({ ...opts, durationS });
    // the sampler reports the last second: read it while the load is on
    await new Promise((r) => setTimeout(r, (durationS - 2) * 1000));
    lag = await lagLines(ours.adminUrl);
    const wrk = await loaded;
    const after = treeUsage(ours.proc.pid);
    console.log(`req/s ${wrk.rps.toFixed(0)}  p50 ${wrk.p50Ms.toFixed(2)} ms  p99 ${wrk.p99Ms.toFixed(2)} ms  max ${wrk.maxMs.toFixed(2)} ms  errors ${wrk.errors + wrk.non2xx}  CPU ${(((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, wrk.requests)).toFixed(1)} us/req (process tree)`);
  } finally {
    await ours.proc.stop();
    await upstream.stop();
    await ca?.close();
  }
  for (const l of lag) console.log(`# ${l}`);
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: the worker's is the one not written by the primary
  const primaryPid = String(ours.proc.pid);
  const profiles = readdirSync(out).filter((f) => f.endsWith('.cpuprofile') && f.split('.')[3] !== primaryPid).map((f) => path.join(out, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (profiles.length === 0) { console.log('# no profile written'); return; }
  console.log(`# worker profile: ${profiles[0]}`);
  console.log(execFileSync(process.execPath, [path.join(repoRoot, 'dist', 'bench', 'support', 'cpu-profile-summary.js'), profiles[0], '45'], { encoding: 'utf8' }));
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
