// Proxy throughput, side by side in one run; prints figures, never asserts.
//   npm run build && node dist/bench/proxy-throughput.js [--duration 6] [--rounds 3] [--connections 64]
//     [--only floor,nginx,native] (targets whose name contains one of these) [--workloads GET,TLS]
//     [--baseline <repo root of another build>] (adds its rows: `base native 1w`, `base undici 1w`, `base native TLS 1w`)
// Targets: direct (no proxy); nginx 1 worker (upstream keepalive); HAProxy 1 thread; bare node:http +
// undici Pool.dispatch (no features); the raw-socket floor (bench/support/raw-socket-proxy.ts: two
// sockets per connection, byte copy, fixed upstream, no features: the runtime's floor); ours --engine
// native 1 worker; ours --engine undici 1 worker; ours native 2 workers. HTTPS targets (same ECDSA
// P-256 certificate, same ciphers): nginx ssl, the raw-socket floor terminating TLS, ours native 1 worker
// with --tls-listen. Workloads: GET of a 100-byte and of a 64 KiB response, 1 MB POSTs; over TLS a
// 100-byte GET on keep-alive connections and one with `Connection: close` (a handshake per request; wrk
// reconnects offering the last session it got, so how many of them resume depends on the server
// handing out a new ticket each time: after the rounds a client that uses each ticket once counts
// resumed/full handshakes per TLS target). Every row prints p99, CPU us/req and its ratios to the floor and to nginx.
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
import { makeTestCa } from '../test/support/tls-certs.js';
import { DEFAULT_TLS_CIPHERS } from '../balancer/src/tls/tls-settings.js';
import { loadAverage } from './compare/cpu.js';
import { treeUsage } from './support/proc-stats.js';
import { freePort, spawnPinned, startNginx, tempDir, waitForPort, type Started } from './support/processes.js';
import { runWrk, type WrkResult } from './support/wrk.js';
import { startOurs as startBalancer } from './support/ours.js';
import { countResumptions } from './support/ticket-probe.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argStr = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const arg = (name: string, dflt: number): number => Number(argStr(name) ?? dflt);
const listArg = (name: string): string[] | undefined => argStr(name)?.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
const durationS = arg('duration', 6);
const warmupS = Math.max(1, Math.min(2, Math.round(durationS / 3)));
const rounds = arg('rounds', 3);
const connections = arg('connections', 64);
const only = listArg('only');
const onlyWorkloads = listArg('workloads');
const baseline = argStr('baseline');
/** connections of the resumption count after the rounds */
const PROBE_CONNECTIONS = 50;
/** 1 MB bodies: fewer connections keep the memory in flight sane */
const postConnections = Math.max(1, Math.min(connections, 16));
/** one handshake per request: as tls-throughput, fewer connections than keep-alive */
const handshakeConnections = Math.max(1, Math.min(connections, 50));
const PROXY_CPU = '0';
const LOAD_CPU = '1';
const NOISY_SPREAD = 0.2;
const TLS_NAME = 'bench.example.test';
const TLS13 = DEFAULT_TLS_CIPHERS.split(':').filter((c) => c.startsWith('TLS_')).join(':');
const TLS12 = DEFAULT_TLS_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_')).join(':');

interface Workload {
  readonly name: string;
  readonly path: string;
  readonly connections: number;
  readonly postBytes?: number;
  /** measured on the https targets only (the others on the plain ones) */
  readonly tls?: boolean;
  /** `Connection: close`: a new connection (with TLS a full handshake) per request */
  readonly close?: boolean;
}
const WORKLOADS: readonly Workload[] = [
  { name: '100 B GET', path: '/small.txt', connections },
  { name: '64 KiB GET', path: '/big.bin', connections },
  { name: '1 MB POST', path: '/upload', connections: postConnections, postBytes: 1024 * 1024 },
  { name: 'TLS keep-alive', path: '/small.txt', connections, tls: true },
  { name: 'TLS handshake', path: '/small.txt', connections: handshakeConnections, tls: true, close: true },
].filter((w) => onlyWorkloads === undefined || onlyWorkloads.some((o) => w.name.toLowerCase().includes(o)));

/** One thing wrk is pointed at: started once, measured for every workload in every round. */
interface Target {
  readonly name: string;
  /** undefined: not available in this build (printed as such) */
  readonly proc: Started | undefined;
  readonly baseUrl: string | undefined;
  readonly note?: string;
}
const isTls = (t: Target): boolean => t.baseUrl?.startsWith('https:') === true;
const wanted = (name: string): boolean => only === undefined || name === 'direct' || name.startsWith('nginx') || only.some((o) => name.toLowerCase().includes(o));

interface Sample { wrk: WrkResult; cpuUsPerReq: number; rssMb: number }

async function measure(target: Target, w: Workload): Promise<Sample> {
  const opts = { url: `${target.baseUrl}${w.path}`, host: 'bench', connections: w.connections, cpus: LOAD_CPU, postBytes: w.postBytes, closeConnection: w.close };
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

async function startRawFloor(name: string, upstreamPort: number, pemPath?: string): Promise<Target> {
  const port = await freePort();
  const proc = spawnPinned(PROXY_CPU, process.execPath, [
    path.join(repoRoot, 'dist', 'bench', 'support', 'raw-socket-proxy.js'), String(port), String(upstreamPort), ...(pemPath === undefined ? [] : [pemPath]),
  ]);
  await waitForPort(port);
  return { name, proc, baseUrl: `${pemPath === undefined ? 'http' : 'https'}://127.0.0.1:${port}` };
}

const load0 = loadAverage();

async function main(): Promise<void> {
  const reproduce = ['--duration', durationS, '--rounds', rounds, '--connections', connections, ...(only ? ['--only', only.join(',')] : []), ...(onlyWorkloads ? ['--workloads', onlyWorkloads.join(',')] : []), ...(baseline ? ['--baseline', baseline] : [])].join(' ');
  console.log(`# proxy throughput: wrk -t1 -c${connections} (POST -c${postConnections}, TLS handshake -c${handshakeConnections}) -d${durationS}s after ${warmupS}s warm-up, ${rounds} interleaved round(s), median shown`);
  console.log(`# reproduce: npm run build && node dist/bench/proxy-throughput.js ${reproduce}`);
  console.log(`# node ${process.version}, ${os.cpus().length} CPUs, load average at start ${load0.toFixed(2)}${load0 > os.cpus().length ? ' (BUSY machine: compare within this run only)' : ''}`);

  const files = writeUpstreamFiles();
  const upstreamPort = await freePort();
  const upstream = startNginx(LOAD_CPU, [
    `server { listen 127.0.0.1:${upstreamPort}; keepalive_requests 1000000; root ${files}; sendfile on; tcp_nopush on;`,
    '  location /upload { client_max_body_size 2m; client_body_buffer_size 2m; return 200 "ok\\n"; } }',
  ].join('\n'));
  await waitForPort(upstreamPort);

  const anyTls = WORKLOADS.some((w) => w.tls === true);
  const anyPlain = WORKLOADS.some((w) => w.tls !== true);
  const ca = anyTls ? await makeTestCa('bench') : undefined;
  const certDir = tempDir('bench-tls-');
  const pemPath = path.join(certDir, 'bench.pem');
  if (ca !== undefined) {
    const pem = await ca.issue([TLS_NAME]);
    writeFileSync(pemPath, pem.cert + pem.key, { mode: 0o644 });
  }

  const started: Started[] = [upstream];
  const targets: Target[] = [];
  const add = async (name: string, start: () => Promise<Target> | Target): Promise<void> => {
    if (!wanted(name)) return;
    const t = await start();
    if (t.proc !== undefined) started.push(t.proc);
    targets.push(t);
  };
  const nginxProxy = async (ssl: boolean): Promise<Target> => {
    const port = await freePort();
    const proc = startNginx(PROXY_CPU, [
      `upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }`,
      `server { listen 127.0.0.1:${port}${ssl ? ' ssl' : ''}; keepalive_requests 1000000; client_max_body_size 2m; client_body_buffer_size 2m;`,
      ...(ssl ? [
        `  ssl_certificate ${pemPath}; ssl_certificate_key ${pemPath};`,
        `  ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers ${TLS12}; ssl_conf_command Ciphersuites ${TLS13}; ssl_prefer_server_ciphers on;`,
        '  ssl_session_tickets on; ssl_session_cache off;',
      ] : []),
      '  location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection "";',
      `    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;${ssl ? ' proxy_set_header X-Forwarded-Proto https;' : ''} } }`,
    ].join('\n'));
    await waitForPort(port);
    return { name: ssl ? 'nginx TLS' : 'nginx 1 worker', proc, baseUrl: `${ssl ? 'https' : 'http'}://127.0.0.1:${port}` };
  };
  try {
    if (anyPlain) {
      await add('direct', () => ({ name: 'direct', proc: undefined, baseUrl: `http://127.0.0.1:${upstreamPort}` }));
      await add('nginx 1 worker', () => nginxProxy(false));
      await add('haproxy 1 thread', async () => {
        const port = await freePort();
        const proc = startHaproxy(PROXY_CPU, port, upstreamPort);
        await waitForPort(port);
        return { name: 'haproxy 1 thread', proc, baseUrl: `http://127.0.0.1:${port}` };
      });
      await add('node:http+undici', async () => {
        const port = await freePort();
        const proc = spawnPinned(PROXY_CPU, process.execPath, [
          path.join(repoRoot, 'dist', 'bench', 'support', 'plain-undici-proxy.js'), String(port), `http://127.0.0.1:${upstreamPort}`,
        ]);
        await waitForPort(port);
        return { name: 'node:http+undici', proc, baseUrl: `http://127.0.0.1:${port}` };
      });
      await add('raw-socket floor', () => startRawFloor('raw-socket floor', upstreamPort));
      await add('ours native 1w', () => startBalancer({ root: repoRoot, engine: 'native', workers: 1, cpus: PROXY_CPU, upstreamPort }));
      await add('ours undici 1w', () => startBalancer({ root: repoRoot, engine: 'undici', workers: 1, cpus: PROXY_CPU, upstreamPort }));
      await add('ours native 2w', () => startBalancer({ root: repoRoot, engine: 'native', workers: 2, cpus: '0-1', upstreamPort }));
      if (baseline !== undefined) {
        await add('base native 1w', () => startBalancer({ root: baseline, engine: 'native', workers: 1, cpus: PROXY_CPU, upstreamPort, name: 'base native 1w' }));
        await add('base undici 1w', () => startBalancer({ root: baseline, engine: 'undici', workers: 1, cpus: PROXY_CPU, upstreamPort, name: 'base undici 1w' }));
      }
    }
    if (anyTls) {
      await add('nginx TLS', () => nginxProxy(true));
      await add('raw-socket TLS floor', () => startRawFloor('raw-socket TLS floor', upstreamPort, pemPath));
      await add('ours native TLS 1w', () => startBalancer({
        root: repoRoot, engine: 'native', workers: 1, cpus: PROXY_CPU, upstreamPort, name: 'ours native TLS 1w', tls: { certDir, defaultCert: TLS_NAME },
      }));
      if (baseline !== undefined) {
        await add('base native TLS 1w', () => startBalancer({
          root: baseline, engine: 'native', workers: 1, cpus: PROXY_CPU, upstreamPort, name: 'base native TLS 1w', tls: { certDir, defaultCert: TLS_NAME },
        }));
      }
    }
    await run(targets);
  } finally {
    await Promise.all(started.map((p) => p.stop()));
    await ca?.close();
  }
}

/** CPU a target spends with no traffic (timers, samplers, metrics flushes), ms per s, over 2 s */
async function idleCpu(targets: readonly Target[]): Promise<Map<Target, number>> {
  const withProc = targets.filter((t) => t.proc !== undefined);
  const before = withProc.map((t) => treeUsage((t.proc as Started).pid).cpuMs);
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  const s = (Date.now() - t0) / 1000;
  return new Map(withProc.map((t, i) => [t, (treeUsage((t.proc as Started).pid).cpuMs - before[i]) / s]));
}

async function run(targets: readonly Target[]): Promise<void> {
  const live = targets.filter((t) => t.baseUrl !== undefined);
  const idle = await idleCpu(live);
  const applies = (t: Target, w: Workload): boolean => isTls(t) === (w.tls === true);
  const samples = new Map<string, Sample[]>();
  const key = (t: Target, w: Workload): string => `${t.name}|${w.name}`;
  const direct = targets.find((t) => t.name === 'direct');
  const firstPlain = WORKLOADS.find((w) => w.tls !== true);
  for (let round = 0; round < rounds; round++) {
    for (const w of WORKLOADS) {
      for (const t of live) {
        if (!applies(t, w)) continue;
        const s = await measure(t, w);
        samples.set(key(t, w), [...(samples.get(key(t, w)) ?? []), s]);
      }
    }
    console.error(`# round ${round + 1}/${rounds} done, load average ${loadAverage().toFixed(2)}`);
  }
  const directEnd = direct !== undefined && firstPlain !== undefined ? (await measure(direct, firstPlain)).wrk : undefined;
  const resumptions: string[] = [];
  if (WORKLOADS.some((w) => w.close === true && w.tls === true)) {
    for (const t of live.filter(isTls)) {
      const c = await countResumptions(t.baseUrl as string, TLS_NAME, PROBE_CONNECTIONS).catch((err: Error) => err);
      resumptions.push(`${t.name} ${c instanceof Error ? `failed (${c.message})` : `${c.resumed} resumed / ${c.full} full`}`);
    }
  }

  const pad = (s: string, n: number): string => s.padEnd(n);
  const fmt = (v: number, digits: number): string => (Number.isNaN(v) ? '-' : v.toFixed(digits));
  const ratio = (a: number, b: number | undefined): string => (b === undefined || Number.isNaN(a) || Number.isNaN(b) ? '' : `${(a / b).toFixed(2)}x`);
  console.log('');
  console.log(`${pad('workload', 14)} ${pad('target', 20)} ${pad('req/s', 9)} ${pad('MB/s', 7)} ${pad('p50 ms', 7)} ${pad('p99 ms', 8)} ${pad('CPU us/req', 10)} ${pad('RSS MB', 6)} ${pad('errors', 6)} ${pad('/floor', 6)} ${pad('/nginx', 6)} ${pad('CPU/nginx', 9)} p99/nginx`);
  for (const w of WORKLOADS) {
    interface Fig { rps: number; mbps: number; p50: number; p99: number; cpu: number; rss: number; errors: number; spread: number; n: number }
    const figs = new Map<Target, Fig>();
    for (const t of targets) {
      const list = samples.get(key(t, w));
      if (list === undefined) continue;
      const rps = list.map((s) => s.wrk.rps);
      const m = median(rps);
      figs.set(t, {
        rps: m, spread: (Math.max(...rps) - Math.min(...rps)) / m, n: list.length,
        mbps: median(list.map((s) => (w.postBytes !== undefined ? s.wrk.rps * w.postBytes : s.wrk.bytes / s.wrk.durationS) / 1e6)),
        p50: median(list.map((s) => s.wrk.p50Ms)), p99: median(list.map((s) => s.wrk.p99Ms)),
        cpu: median(list.map((s) => s.cpuUsPerReq)), rss: median(list.map((s) => s.rssMb)),
        errors: list.reduce((a, s) => a + s.wrk.errors + s.wrk.non2xx, 0),
      });
    }
    const nginx = [...figs].find(([t]) => t.name.startsWith('nginx'))?.[1];
    const floor = [...figs].find(([t]) => t.name.startsWith('raw-socket'))?.[1];
    for (const t of targets) {
      if (!applies(t, w)) continue;
      const f = figs.get(t);
      if (f === undefined) { console.log(`${pad(w.name, 14)} ${pad(t.name, 20)} n/a: ${t.note ?? 'not started'}`); continue; }
      const ref = t.name === 'direct' || t.name.startsWith('nginx');
      // MB/s is the figure for the body workloads, req/s for the rest
      const byBytes = w.name.includes('KiB') || w.name.includes('MB');
      console.log([
        pad(w.name, 14), pad(t.name, 20), pad(`${fmt(f.rps, 0)}${f.n > 1 && f.spread > NOISY_SPREAD ? '~' : ''}`, 9), pad(fmt(f.mbps, 1), 7),
        pad(fmt(f.p50, 2), 7), pad(fmt(f.p99, 2), 8), pad(fmt(f.cpu, 1), 10), pad(fmt(f.rss, 0), 6), pad(String(f.errors), 6),
        pad(t.name.startsWith('raw-socket') || t.name === 'direct' ? '' : ratio(byBytes ? f.mbps : f.rps, byBytes ? floor?.mbps : floor?.rps), 6),
        pad(ref ? '' : ratio(byBytes ? f.mbps : f.rps, byBytes ? nginx?.mbps : nginx?.rps), 6),
        pad(ref ? '' : ratio(f.cpu, nginx?.cpu), 9), ref ? '' : ratio(f.p99, nginx?.p99),
      ].join(' '));
    }
  }
  const load1 = loadAverage();
  console.log('');
  // a fixed cost per second weighs on CPU us/req in inverse proportion to req/s: on a starved run it is a visible share
  console.log(`# idle CPU before the runs, ms per s (process tree): ${[...idle].map(([t, ms]) => `${t.name} ${ms.toFixed(1)}`).join(', ')}`);
  if (direct !== undefined && firstPlain !== undefined) {
    const directStart = median((samples.get(key(direct, firstPlain)) ?? []).map((s) => s.wrk.rps));
    const drift = directEnd === undefined ? NaN : Math.abs(directEnd.rps - directStart) / directStart;
    console.log(`# '~': req/s spread over the rounds above ${NOISY_SPREAD * 100} %. direct ${firstPlain.name} at the end: ${fmt(directEnd?.rps ?? NaN, 0)} req/s (${fmt(drift * 100, 0)} % from the rounds${drift > NOISY_SPREAD ? ': the machine changed under the run, compare rows only within a round' : ''})`);
  }
  if (resumptions.length > 0) console.log(`# TLS 1.3 handshakes of a client using each ticket once, the newest (as wrk reconnects), ${PROBE_CONNECTIONS} in a row: ${resumptions.join(', ')}`);
  console.log('# /floor, /nginx: req/s ratio (MB/s for the 64 KiB and 1 MB rows) to the raw-socket floor and to nginx of the same workload; CPU/nginx and p99/nginx likewise');
  console.log(`# load average at start ${load0.toFixed(2)}, at end ${load1.toFixed(2)} (${os.cpus().length} CPUs)`);
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
