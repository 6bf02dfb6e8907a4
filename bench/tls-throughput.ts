// HTTPS throughput: nginx with TLS against ours, same certificate (ECDSA P-256), same protocols and
// ciphers, side by side in one run; prints figures, never asserts.
//   npm run build && node dist/bench/tls-throughput.js [--duration 8] [--rounds 2] [--connections 50]
// Rows: new handshakes per second (wrk with `Connection: close`: one TCP + TLS handshake per
// request, no session reuse) and keep-alive requests per second. Layout as proxy-throughput: the
// proxy under test (1 worker) pinned to CPU 0, wrk and the upstream nginx on CPU 1. The machine may
// be shared: the load average is printed before and after, and "CPU us/req" is the steadier figure.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { makeTestCa } from '../test/support/tls-certs.js';
import { DEFAULT_TLS_CIPHERS } from '../balancer/src/tls/tls-settings.js';
import { treeUsage } from './support/proc-stats.js';
import { freePort, spawnPinned, startNginx, tempDir, waitForPort, type Started } from './support/processes.js';
import { runWrk, type WrkResult } from './support/wrk.js';

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
const NAME = 'bench.example.test';
const TLS13 = DEFAULT_TLS_CIPHERS.split(':').filter((c) => c.startsWith('TLS_')).join(':');
const TLS12 = DEFAULT_TLS_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_')).join(':');

interface Row { name: string; wrk: WrkResult; cpuUsPerReq: number }

async function measure(name: string, proc: Started, url: string, closeConnection: boolean): Promise<Row> {
  await runWrk({ url, host: NAME, connections, durationS: 2, cpus: LOAD_CPU, closeConnection });
  const before = treeUsage(proc.pid);
  const wrk = await runWrk({ url, host: NAME, connections, durationS, cpus: LOAD_CPU, closeConnection });
  const after = treeUsage(proc.pid);
  return { name, wrk, cpuUsPerReq: ((after.cpuMs - before.cpuMs) * 1000) / Math.max(1, wrk.requests) };
}

async function startOurs(certDir: string, upstreamPort: number): Promise<{ proc: Started; url: string }> {
  const [port, tlsPort, admin] = [await freePort(), await freePort(), await freePort()];
  const proc = spawnPinned(PROXY_CPU, process.execPath, [
    path.join(repoRoot, 'bin', 'balancer.js'), '--no-consul', '--workers', '1', '--log-level', 'warn',
    '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`, '--tls-listen', `127.0.0.1:${tlsPort}`,
    '--tls-cert-dir', certDir, '--tls-default-cert', NAME,
  ]);
  await waitForPort(admin, 15_000);
  const res = await request(`http://127.0.0.1:${admin}/upstream/${NAME}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ servers: [{ host: '127.0.0.1', port: upstreamPort }] }),
  });
  if (res.statusCode !== 200 && res.statusCode !== 202) throw new Error(`admin POST -> ${res.statusCode}: ${await res.body.text()}`);
  await res.body.dump();
  await waitForPort(tlsPort, 15_000);
  return { proc, url: `https://127.0.0.1:${tlsPort}/` };
}

async function main(): Promise<void> {
  const load0 = os.loadavg();
  console.log(`# HTTPS throughput: wrk -t1 -c${connections} -d${durationS}s, ${rounds} round(s), median shown; ECDSA P-256, TLS 1.2-1.3, same ciphers`);
  console.log('# reproduce: npm run build && node dist/bench/tls-throughput.js');
  console.log(`# load average before: ${load0.map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} CPUs; a busy machine skews req/s, CPU us/req less so)`);
  const ca = await makeTestCa('bench');
  const pem = await ca.issue([NAME]);
  const certDir = tempDir('bench-tls-');
  mkdirSync(certDir, { recursive: true });
  writeFileSync(path.join(certDir, 'bench.pem'), pem.cert + pem.key, { mode: 0o600 });

  const upstreamPort = await freePort();
  const upstream = startNginx(LOAD_CPU, `server { listen 127.0.0.1:${upstreamPort}; keepalive_requests 1000000; location / { return 200 "hello from upstream\\n"; } }`);
  await waitForPort(upstreamPort);

  const nginxPort = await freePort();
  const nginx = startNginx(PROXY_CPU, [
    `upstream bench { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }`,
    `server { listen 127.0.0.1:${nginxPort} ssl; keepalive_requests 1000000;`,
    `  ssl_certificate ${path.join(certDir, 'bench.pem')}; ssl_certificate_key ${path.join(certDir, 'bench.pem')};`,
    `  ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers ${TLS12}; ssl_conf_command Ciphersuites ${TLS13}; ssl_prefer_server_ciphers on;`,
    '  ssl_session_tickets on; ssl_session_cache off;',
    `  location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection "";`,
    '    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto https; } }',
  ].join('\n'));
  await waitForPort(nginxPort);
  const ours = await startOurs(certDir, upstreamPort);

  const results = new Map<string, Row[]>();
  const push = (r: Row) => results.set(r.name, [...(results.get(r.name) ?? []), r]);
  try {
    for (let round = 0; round < rounds; round++) {
      push(await measure('nginx handshakes', nginx, `https://127.0.0.1:${nginxPort}/`, true));
      push(await measure('ours handshakes', ours.proc, ours.url, true));
      push(await measure('nginx keep-alive', nginx, `https://127.0.0.1:${nginxPort}/`, false));
      push(await measure('ours keep-alive', ours.proc, ours.url, false));
    }
  } finally {
    await Promise.all([upstream.stop(), nginx.stop(), ours.proc.stop()]);
    await ca.close();
  }
  const median = (rows: Row[]) => [...rows].sort((a, b) => a.wrk.rps - b.wrk.rps)[Math.floor(rows.length / 2)];
  const rows = [...results.values()].map(median);
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`${pad('target (1 worker)', 18)} ${pad('req/s', 9)} ${pad('p50 ms', 8)} ${pad('p99 ms', 8)} ${pad('errors', 7)} CPU us/req`);
  for (const r of rows) {
    console.log(`${pad(r.name, 18)} ${pad(r.wrk.rps.toFixed(0), 9)} ${pad(r.wrk.p50Ms.toFixed(2), 8)} ${pad(r.wrk.p99Ms.toFixed(2), 8)} ${pad(String(r.wrk.errors + r.wrk.non2xx), 7)} ${r.cpuUsPerReq.toFixed(1)}`);
  }
  const by = (n: string) => rows.find((r) => r.name === n)!;
  for (const kind of ['handshakes', 'keep-alive']) {
    const o = by(`ours ${kind}`);
    const n = by(`nginx ${kind}`);
    console.log(`ratio ours/nginx ${kind}: req/s ${(o.wrk.rps / n.wrk.rps).toFixed(2)}   CPU/req ${(o.cpuUsPerReq / n.cpuUsPerReq).toFixed(2)}   (goal: req/s >= 0.80)`);
  }
  console.log(`# load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
