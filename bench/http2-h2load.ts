// h2c throughput, ours vs nginx (`listen ... http2`, nginx 1.22's spelling of `http2 on`), both with one
// worker pinned to one core, h2load pinned to another: 100 streams on 10 connections (-c 10 -m 10) to a
// node HTTP/1.1 backend. Prints req/s and CPU µs per request of each proxy (utime+stime of its
// processes from /proc). A script, not a test: run `npm run build && node dist/bench/http2-h2load.js [requests]`.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { balancerBin } from '../test/support/repo-root.js';

const run = promisify(execFile);
const TICK_US = 1_000_000 / 100; // USER_HZ

async function cpuUs(pids: number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch { /* gone */ }
  }
  return ticks * TICK_US;
}

async function tree(pid: number): Promise<number[]> {
  const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(pid)]).catch(() => ({ stdout: '' }));
  return [pid, ...stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0)];
}

async function h2load(url: string, n: number): Promise<number> {
  const { stdout } = await run('taskset', ['-c', '1', 'h2load', '-n', String(n), '-c', '10', '-m', '10', '-H', ':authority: app', url], { timeout: 120_000 });
  const m = /finished in [^,]+, ([\d.]+) req\/s/.exec(stdout);
  if (!m || !/succeeded/.test(stdout)) throw new Error(`h2load: ${stdout}`);
  const ok = /(\d+) succeeded/.exec(stdout.split('requests:')[1] ?? '');
  if (ok && Number(ok[1]) !== n) throw new Error(`h2load: ${stdout}`);
  return Number(m[1]);
}

async function measure(name: string, url: string, pids: number[], n: number): Promise<void> {
  await h2load(url, Math.min(2_000, n)); // warm up
  const before = await cpuUs(pids);
  const rps = await h2load(url, n);
  const used = (await cpuUs(pids)) - before;
  console.log(`${name.padEnd(10)} ${rps.toFixed(0).padStart(8)} req/s   ${(used / n).toFixed(1).padStart(6)} CPU µs/req`);
}

const n = Number(process.argv[2] ?? 20_000);
const backend = http.createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }); res.end('ok'); });
await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
const bport = (backend.address() as AddressInfo).port;
const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-h2-'));
const children: ChildProcess[] = [];
try {
  const ours = spawn('taskset', ['-c', '0', process.execPath, balancerBin(), '--no-consul', '--workers', '1', '--h2c', '--listen', '127.0.0.1:18480', '--admin', '127.0.0.1:18481', '--log-level', 'warn'], { stdio: 'inherit' });
  children.push(ours);
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(conf, `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000; upstream app { server 127.0.0.1:${bport}; keepalive 64; }
  server { listen 127.0.0.1:18482 http2; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`);
  const nginx = spawn('taskset', ['-c', '0', 'nginx', '-c', conf, '-p', dir], { stdio: 'inherit' });
  children.push(nginx);
  for (let i = 0; i < 100; i++) {
    const up = await fetch('http://127.0.0.1:18481/upstream/app', { method: 'POST', body: `server 127.0.0.1:${bport};` }).then((r) => r.ok).catch(() => false);
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 500));
  const ourPids = await tree(ours.pid!);
  const nginxPids = await tree(nginx.pid!);
  console.log(`h2c, ${n} requests, 10 connections x 10 streams, proxy on core 0, h2load on core 1`);
  await measure('balancer', 'http://127.0.0.1:18480/', (await Promise.all(ourPids.map(tree))).flat(), n);
  await measure('nginx', 'http://127.0.0.1:18482/', (await Promise.all(nginxPids.map(tree))).flat(), n);
} finally {
  for (const c of children) c.kill('SIGTERM');
  backend.close();
}
