// Cost per request of traffic policy features, side by side in one run: plain round robin, canary
// by weight, sticky cookie, a trivial onRequest script and a header-rewriting script. One worker
// runtime in this process (pin it: taskset -c 0), the backend in a child process, wrk pinned to
// another core. Prints CPU µs per request of this process for each host, and the load average.
// Run: npx tsc -p tsconfig.json && taskset -c 0 node dist/bench/policy-cost.js [seconds]
import { spawn, execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import pino from 'pino';
import { createWorkerRuntime } from '../balancer/src/proxy/proxy-runtime.js';
import { tableFromUpstreams } from '../balancer/src/routing/build-table.js';
import { checkScript } from '../balancer/src/scripts/script-source.js';
import { withScripts } from '../balancer/src/scripts/table-scripts.js';
import type { ServerSpec, UpstreamSpec } from '../balancer/src/routing/types.js';

const seconds = Number(process.argv[2] ?? 4);
const backend = spawn(process.execPath, ['-e', `require('http').createServer((q,s)=>{q.resume();q.on('end',()=>s.end('ok'))}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((r) => backend.stdout!.once('data', (d: Buffer) => r(Number(String(d).trim()))));
const server = (id: number, canary = false): ServerSpec => ({ id: `127.0.0.1:${port}#${id}`, host: '127.0.0.1', port, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false, ...(canary ? { canary: true } : {}) });
const retry = { tries: 1, timeoutMs: 0, onStatuses: [], nonIdempotent: false };
const up = (name: string, extra: Partial<UpstreamSpec> = {}): UpstreamSpec => ({ name, algorithm: 'roundrobin', servers: [server(1), server(2), server(3, true)], retry, origin: 'config', ...extra });
const base = tableFromUpstreams({
  plain: up('plain'),
  canary: up('canary', { policy: { canary: { tag: 'canary', weight: 20, bucketCookie: 'lb_canary' } } }),
  sticky: up('sticky', { policy: { sticky: { mode: 'cookie', name: 'lb_srv', ttlSeconds: 3600, secure: false, httpOnly: true } } }),
  trivial: up('trivial'),
  rewrite: up('rewrite'),
}, []);
const table = withScripts(base, [
  checkScript({ name: 'trivial', source: 'export function onRequest(req) {}', services: ['trivial'] }),
  checkScript({ name: 'rewrite', source: "export function onRequest(req) { return { headers: { 'x-bench': req.path } }; }", services: ['rewrite'] }),
]);
const runtime = createWorkerRuntime({ logger: pino({ level: 'silent' }), timeouts: { connectMs: 1000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 5000 }, maxConnectionsPerServer: 64, accessLog: false, stickySecret: 'bench' });
runtime.applyTable(table);
const addr = await runtime.listen('127.0.0.1', 0);

function runWrk(host: string, extraHeader?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = ['-c', '1', 'wrk', '-t1', '-c16', `-d${seconds}s`, '-H', `Host: ${host}`, ...(extraHeader ? ['-H', extraHeader] : []), `http://127.0.0.1:${addr.port}/x`];
    const p = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.on('error', reject);
    p.on('close', () => {
      const m = /(\d+) requests in/.exec(out);
      const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      if (errors) console.error(`${host}: ${errors[1]} non-2xx`);
      resolve(m ? Number(m[1]) : 0);
    });
  });
}

const cases: [string, string | undefined][] = [['plain', undefined], ['canary', undefined], ['sticky', undefined], ['trivial', undefined], ['rewrite', undefined]];
console.log(`policy-cost: ${seconds}s per case, wrk -t1 -c16 pinned to cpu 1; this process: ${execFileSync('taskset', ['-p', String(process.pid)]).toString().trim()}`);
const results: { host: string; rps: number; usPerReq: number }[] = [];
for (let round = 0; round < 2; round++) {
  for (const [host, header] of cases) {
    const before = process.cpuUsage();
    const n = await runWrk(host, header);
    const d = process.cpuUsage(before);
    if (round === 1) results.push({ host, rps: Math.round(n / seconds), usPerReq: (d.user + d.system) / Math.max(1, n) });
  }
}
const plain = results.find((r) => r.host === 'plain')!.usPerReq;
for (const r of results) console.log(`${r.host.padEnd(8)} ${String(r.rps).padStart(7)} req/s  ${r.usPerReq.toFixed(1).padStart(6)} CPU µs/req  x${(r.usPerReq / plain).toFixed(2)} of plain`);
console.log(`load average: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (shared 2-core machine, other agents running)`);
await runtime.close();
backend.kill();
