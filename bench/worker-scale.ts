// What a large table costs the workers when nothing happens, and what the admin reads cost (a
// script, not a test):
//   npx tsc -p tsconfig.json && node dist/bench/worker-scale.js [--services 5000] [--instances 10] [--baseline <other checkout root>]
// S services x I instances go into the Consul double (bulk), the balancer starts with 2 workers, and
// once the last service routes we measure per process: CPU over 10 idle seconds and RSS; then the
// time and size of GET /status pages, /metrics and /dashboard/state, and 10 s of the dashboard's
// event stream (CPU per process, state events received); and how many times the supervisor logged
// "worker did not answer in time". With --baseline the same runs against another checkout's build
// (its dist/ and bin/) first, printed side by side. The machine is shared: load average printed.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from './support/processes.js';

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argValue = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const S = Number(argValue('services', '5000'));
const I = Number(argValue('instances', '10'));
const baseline = argValue('baseline', '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

interface Answer { status: number; bytes: number; ms: number; text: string }
function call(base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve) => {
    const t = performance.now();
    const req = http.request(`${base}${p}`, { method, headers: { ...headers, ...(payload ? { 'content-length': String(Buffer.byteLength(payload)) } : {}) }, signal: AbortSignal.timeout(30_000) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, bytes: buf.length, ms: performance.now() - t, text: buf.length < 1_000_000 ? buf.toString('utf8') : '' });
      });
      res.on('error', () => resolve({ status: 0, bytes: 0, ms: performance.now() - t, text: '' }));
    });
    req.on('error', () => resolve({ status: 0, bytes: 0, ms: performance.now() - t, text: '' }));
    req.end(payload);
  });
}
const ticks = (pid: number): number => {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
};
const rssMb = (pid: number): number => {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
  } catch {
    return NaN;
  }
};
const childPids = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};
const TICK_MS = 10; // CLK_TCK 100

type Row = Record<string, string>;

async function runOne(root: string): Promise<Row> {
  const row: Row = {};
  const backends: http.Server[] = [];
  for (let i = 0; i < I; i++) {
    const s = http.createServer((q, r) => { q.resume(); q.on('end', () => r.end(`i${i}`)); });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    backends.push(s);
  }
  const consulPort = await freePort();
  const consul = `http://127.0.0.1:${consulPort}`;
  const double = spawn(process.execPath, [path.join(root, 'dist/test/support/consul-double/cli.js'), '--port', String(consulPort)], { stdio: 'ignore' });
  let balancer: ReturnType<typeof spawn> | undefined;
  try {
    await waitForPort(consulPort);
    const regs = [];
    for (let s = 0; s < S; s++) {
      for (let k = 0; k < I; k++) {
        regs.push({ ID: `svc${s}-${k}`, Name: `svc${s}`, Address: '127.0.0.1', Port: (backends[k].address() as AddressInfo).port, Check: { CheckID: `svc${s}-${k}-ttl`, TTL: '24h', Status: 'passing' } });
      }
    }
    for (let i = 0; i < regs.length; i += 5000) {
      const r = await call(consul, 'PUT', '/_double/register-bulk', regs.slice(i, i + 5000));
      if (r.status !== 200) throw new Error(`register-bulk: ${r.status}`);
    }
    const proxyPort = await freePort();
    const adminPort = await freePort();
    const admin = `http://127.0.0.1:${adminPort}`;
    const t0 = performance.now();
    balancer = spawn(process.execPath, [path.join(root, 'bin/balancer.js'), '--consul', `127.0.0.1:${consulPort}`, '--listen', `127.0.0.1:${proxyPort}`,
      '--admin', `127.0.0.1:${adminPort}`, '--workers', '2', '--log-level', 'warn', '--consul-wait', '60s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let missed = 0;
    const count = (c: Buffer) => { missed += c.toString().split('did not answer in time').length - 1; };
    balancer.stdout!.on('data', count);
    balancer.stderr!.on('data', count);
    const deadline = Date.now() + 120_000;
    let routable = NaN;
    while (Date.now() < deadline) {
      const r = await call(`http://127.0.0.1:${proxyPort}`, 'GET', '/', undefined, { host: `svc${S - 1}` });
      if (r.status === 200 && r.text.startsWith('i')) {
        routable = (performance.now() - t0) / 1000;
        break;
      }
      await sleep(200);
    }
    row['last service routable after'] = Number.isNaN(routable) ? 'never (120 s)' : `${routable.toFixed(1)} s`;
    await sleep(3000);
    const pids = [balancer.pid!, ...childPids(balancer.pid!)];
    const cpu = async (ms: number, during?: () => Promise<void>): Promise<number[]> => {
      const a = pids.map(ticks);
      await Promise.all([sleep(ms), during?.()]);
      return pids.map((p, i) => (ticks(p) - a[i]) * TICK_MS);
    };
    const missedBefore = missed;
    const idle = await cpu(10_000);
    row['idle CPU ms / 10 s (primary; workers)'] = `${idle[0]}; ${idle.slice(1).join(', ')}`;
    row['RSS MB (primary; workers)'] = `${rssMb(pids[0])}; ${pids.slice(1).map(rssMb).join(', ')}`;
    row['missed worker deadlines while idle'] = String(missed - missedBefore);
    for (const q of ['/status', '/status?view=summary', `/status?upstream=svc${S - 1}`, '/metrics', '/dashboard/state']) {
      const r = await call(admin, 'GET', q);
      row[`GET ${q}`] = `${r.status}, ${(r.bytes / 1e6).toFixed(2)} MB, ${r.ms.toFixed(0)} ms`;
    }
    let events = 0;
    const stream = async () => {
      const ac = new AbortController();
      await new Promise<void>((resolve) => {
        const req = http.request(`${admin}/dashboard/events`, { signal: ac.signal }, (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            let i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              if (buf.startsWith('event: state')) events++;
              buf = buf.slice(i + 2);
            }
          });
          res.on('error', () => resolve());
        });
        req.on('error', () => resolve());
        req.end();
        setTimeout(() => { ac.abort(); resolve(); }, 10_000);
      });
    };
    const missedStream = missed;
    const watched = await cpu(10_000, stream);
    row['dashboard stream 10 s: CPU ms (primary; workers)'] = `${watched[0]}; ${watched.slice(1).join(', ')}`;
    row['dashboard stream 10 s: state events'] = String(events);
    row['missed worker deadlines (whole run)'] = `${missed} (${missed - missedStream} while streaming)`;
    return row;
  } finally {
    balancer?.kill('SIGTERM');
    if (balancer !== undefined) await new Promise((r) => { balancer!.once('exit', r); setTimeout(r, 20_000); });
    double.kill('SIGTERM');
    for (const b of backends) b.close();
  }
}

const roots: [string, string][] = baseline ? [['baseline', path.resolve(baseline)], ['this build', here]] : [['this build', here]];
const rows: [string, Row][] = [];
const loads: string[] = [load()];
for (const [label, root] of roots) {
  process.stderr.write(`[${label}] ${root}: ${S} x ${I}, load ${load()}\n`);
  rows.push([label, await runOne(root)]);
  loads.push(load());
}
process.stdout.write(`# worker-scale: ${S} services x ${I} instances, 2 workers; node ${process.version}, ${os.cpus().length} cores, load average ${loads.join(' -> ')} (shared machine: figures are noisy)\n`);
process.stdout.write(`| | ${rows.map(([l]) => l).join(' | ')} |\n|---|${rows.map(() => '---|').join('')}\n`);
for (const key of Object.keys(rows[0][1])) process.stdout.write(`| ${key} | ${rows.map(([, r]) => r[key] ?? '').join(' | ')} |\n`);
process.exit(0);
