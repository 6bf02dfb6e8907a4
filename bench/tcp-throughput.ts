// TCP relay benchmark: ours (balancer/src/l4, one worker runtime) vs nginx `stream` vs HAProxy
// `mode tcp` vs the raw-socket floor (bench/support/raw-socket-proxy.ts), each 1 worker / 1 thread
// pinned to one CPU, measured side by side in one run, interleaved:
//   conn/s  new connections per second, each connect -> "ping\n" -> "pong\n" -> close, C at a time;
//   MB/s    bulk bytes through one long connection (client -> backend), until the backend counted all;
// with the proxy's CPU time per connection and per MB (from /proc). Prints `uptime` with the figures.
// usage: node dist/bench/tcp-throughput.js [--seconds 5] [--concurrency 32] [--mb 256] [--proxy-cpu 0] [--load-cpu 1] [--rounds 2]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, spawnPinned, tempDir, waitForPort, type Started } from './support/processes.js';
import { treeUsage } from './support/proc-stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : def;
};
const SECONDS = Number(opt('seconds', '5'));
const CONCURRENCY = Number(opt('concurrency', '32'));
const MB = Number(opt('mb', '256'));
const PROXY_CPU = opt('proxy-cpu', '0');
const LOAD_CPU = opt('load-cpu', '1');
const ROUNDS = Number(opt('rounds', '2'));

interface Target {
  readonly name: string;
  readonly port: number;
  readonly proc: Started;
}

async function startTargets(backend: number): Promise<Target[]> {
  const out: Target[] = [];
  const add = async (name: string, port: number, proc: Started) => {
    try {
      await waitForPort(port, 15_000);
      out.push({ name, port, proc });
    } catch (err) {
      console.error(`# ${name} did not start: ${(err as Error).message}\n${proc.output().slice(-500)}`);
      await proc.stop();
    }
  };
  const raw = await freePort();
  await add('raw-socket floor', raw, spawnPinned(PROXY_CPU, process.execPath, [path.join(here, 'support', 'raw-socket-proxy.js'), String(raw), String(backend)]));
  const ours = await freePort();
  await add('ours (l4, 1 worker)', ours, spawnPinned(PROXY_CPU, process.execPath, [path.join(here, 'support', 'ours-tcp.js'), String(ours), String(backend)]));
  const ng = await freePort();
  const ngDir = tempDir('bench-nginx-stream-');
  writeFileSync(path.join(ngDir, 'nginx.conf'), [
    'load_module /usr/lib/nginx/modules/ngx_stream_module.so;', 'worker_processes 1;', `error_log ${ngDir}/error.log warn;`, `pid ${ngDir}/nginx.pid;`,
    'events { worker_connections 4096; }',
    `stream { server { listen 127.0.0.1:${ng}; proxy_pass 127.0.0.1:${backend}; proxy_connect_timeout 2s; tcp_nodelay on; proxy_half_close on; } }`,
  ].join('\n'));
  await add('nginx stream', ng, spawnPinned(PROXY_CPU, 'nginx', ['-p', ngDir, '-c', path.join(ngDir, 'nginx.conf'), '-g', 'daemon off;']));
  const hp = await freePort();
  const hpDir = tempDir('bench-haproxy-tcp-');
  writeFileSync(path.join(hpDir, 'haproxy.cfg'), [
    'global', '  nbthread 1', '  maxconn 8192', 'defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 60s', '  timeout server 60s',
    `frontend f`, `  bind 127.0.0.1:${hp}`, '  default_backend b', 'backend b', `  server s1 127.0.0.1:${backend}`, '',
  ].join('\n'));
  await add('HAProxy mode tcp', hp, spawnPinned(PROXY_CPU, 'haproxy', ['-db', '-f', path.join(hpDir, 'haproxy.cfg')]));
  return out;
}

/** connect -> ping -> pong -> close, CONCURRENCY loops for SECONDS; completed and failed connections. */
async function connectionsPerSecond(port: number): Promise<{ done: number; failed: number; ms: number }> {
  const end = Date.now() + SECONDS * 1000;
  let done = 0;
  let failed = 0;
  const one = () => new Promise<void>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let got = '';
    let ok = false;
    s.setTimeout(5000, () => s.destroy());
    s.on('connect', () => s.write('ping\n'));
    s.on('data', (d) => { got += d.toString(); if (got.includes('pong\n')) { ok = true; s.end(); } });
    s.on('error', () => undefined);
    s.on('close', () => { if (ok) done++; else failed++; resolve(); });
  });
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (Date.now() < end) await one(); }));
  return { done, failed, ms: Date.now() - t0 };
}

/** MB megabytes through one connection; ms until the backend confirmed them all. */
function bulk(port: number): Promise<{ ms: number; ok: boolean }> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const total = MB * 1024 * 1024;
    // 'b' and the byte count: the backend answers once it counted them all (no half-close needed)
    Buffer.from(`b${String(total).padStart(12, '0')}`, 'latin1').copy(chunk, 0);
    const t0 = Date.now();
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true, allowHalfOpen: true });
    let sent = 0;
    let got = '';
    const timer = setTimeout(() => s.destroy(), 120_000);
    const pump = () => {
      while (sent < total) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
    };
    s.on('connect', pump);
    s.on('data', (d) => { got += d.toString(); if (got.endsWith('\n')) s.destroy(); });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - t0, ok: got.trim() === `done ${total}` });
    });
  });
}

async function main(): Promise<void> {
  const backendPort = await freePort();
  const backend = spawnPinned(LOAD_CPU, process.execPath, [path.join(here, 'support', 'tcp-bench-backend.js'), String(backendPort)]);
  await waitForPort(backendPort);
  const targets = await startTargets(backendPort);
  const conn = new Map<string, { n: number; ms: number; cpuMs: number; failed: number }>();
  const bulkRows = new Map<string, { mb: number; ms: number; cpuMs: number; bad: number }>();
  try {
    for (const t of targets) await connectionsPerSecond(t.port).catch(() => undefined); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of targets) {
        const c0 = treeUsage(t.proc.pid).cpuMs;
        const r = await connectionsPerSecond(t.port);
        const row = conn.get(t.name) ?? { n: 0, ms: 0, cpuMs: 0, failed: 0 };
        conn.set(t.name, { n: row.n + r.done, ms: row.ms + r.ms, cpuMs: row.cpuMs + treeUsage(t.proc.pid).cpuMs - c0, failed: row.failed + r.failed });
      }
      for (const t of targets) {
        const c0 = treeUsage(t.proc.pid).cpuMs;
        const r = await bulk(t.port);
        const row = bulkRows.get(t.name) ?? { mb: 0, ms: 0, cpuMs: 0, bad: 0 };
        bulkRows.set(t.name, { mb: row.mb + MB, ms: row.ms + r.ms, cpuMs: row.cpuMs + treeUsage(t.proc.pid).cpuMs - c0, bad: row.bad + (r.ok ? 0 : 1) });
      }
    }
  } finally {
    for (const t of targets) await t.proc.stop();
    await backend.stop();
  }
  const nginxConn = conn.get('nginx stream');
  const nginxBulk = bulkRows.get('nginx stream');
  console.log(`# uptime: ${execFileSync('uptime').toString().trim()}`);
  console.log(`# proxies pinned to CPU ${PROXY_CPU}, client and backend to CPU ${LOAD_CPU}; ${ROUNDS} rounds of ${SECONDS}s x ${CONCURRENCY} connections and ${MB} MB, interleaved`);
  console.log('| target | conn/s | vs nginx | CPU us/conn | failed | bulk MB/s | vs nginx | CPU us/MB | bulk errors |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const t of targets) {
    const c = conn.get(t.name)!;
    const b = bulkRows.get(t.name)!;
    const cps = (c.n * 1000) / c.ms;
    const mbs = (b.mb * 1000) / b.ms;
    const ratio = (x: number, base: number | undefined) => (base === undefined || base === 0 ? '-' : `${(x / base).toFixed(2)}x`);
    console.log(`| ${t.name} | ${cps.toFixed(0)} | ${ratio(cps, nginxConn ? (nginxConn.n * 1000) / nginxConn.ms : undefined)} | ${c.n > 0 ? ((c.cpuMs * 1000) / c.n).toFixed(1) : '-'} | ${c.failed} | ${mbs.toFixed(0)} | ${ratio(mbs, nginxBulk ? (nginxBulk.mb * 1000) / nginxBulk.ms : undefined)} | ${((b.cpuMs * 1000) / b.mb).toFixed(0)} | ${b.bad} |`);
  }
}

await main();
