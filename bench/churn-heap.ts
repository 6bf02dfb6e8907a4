// Heap after GC of the balancer under churn, per process, round after round (a script, not a test):
//   npx tsc -p tsconfig.json && node dist/bench/churn-heap.js [--rounds 6] [--changes 500] [--same-ids]
// The balancer (its own process, 2 workers, heap probe preloaded: test/support/heap-probe.ts) follows
// the Consul double under keep-alive load while a second service churns: by default every change
// brings a server never seen before (a new port of one backend process listening on 400 ports) and
// every 50 changes a new service replaces the old one; --same-ids toggles the same 3 servers instead.
// After each round: heap-used after a full GC of the primary and each worker, the young generation
// committed, the tree's RSS and fds. A leak shows as heap growing round after round; a plateau is not
// one. The machine is shared: the load average is printed with the figures.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { request } from 'undici';
import { spawnBalancer } from '../test/support/balancer-process.js';
import { consulForTest, testScope } from '../test/support/consul.js';
import { footprint, startKeepAliveLoad, until } from '../test/support/fault-kit.js';
import { heapAfterGc, heapProbeDir } from '../test/support/heap-readings.js';

const argValue = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const ROUNDS = Number(argValue('rounds', '6'));
const CHANGES = Number(argValue('changes', '500'));
const SAME_IDS = process.argv.includes('--same-ids');
const PORTS = 400;

const BACKEND = `const http = require('node:http'); const ports = []; let n = 0;
for (let i = 0; i < ${PORTS}; i++) {
  const s = http.createServer((q, r) => { q.resume(); q.on('end', () => { const b = 'b-' + s.address().port; r.writeHead(200, { 'content-length': b.length }); r.end(b); }); });
  s.keepAliveTimeout = 60000;
  s.listen(0, '127.0.0.1', () => { ports.push(s.address().port); if (++n === ${PORTS}) process.stdout.write(JSON.stringify(ports) + '\\n'); });
}`;

async function main(): Promise<void> {
  const backend = spawn(process.execPath, ['-e', BACKEND], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ports = await new Promise<number[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('backend did not start within 20 s')), 20_000);
    let b = '';
    backend.stdout!.on('data', (c: Buffer) => { b += c.toString(); if (b.includes('\n')) { clearTimeout(timer); resolve(JSON.parse(b) as number[]); } });
  });
  const probe = heapProbeDir();
  const consul = await consulForTest();
  const scope = testScope();
  const web = scope.name('web');
  const put = async (p: string, body?: unknown) => {
    const r = await request(`${consul.url}${p}`, { method: 'PUT', body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
    await r.body.text();
    if (r.statusCode !== 200) throw new Error(`PUT ${p}: ${r.statusCode}`);
  };
  const reg = (name: string, port: number) => put('/v1/agent/service/register', { ID: scope.id(`${name}-${port}`), Name: name, Address: '127.0.0.1', Port: port, Tags: ['check=http:/health'] });
  const dereg = (name: string, port: number) => put(`/v1/agent/service/deregister/${scope.id(`${name}-${port}`)}`);
  await reg(web, ports[0]);
  const balancer = spawnBalancer(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2', '--consul-wait', '2s', '--log-level', 'info'], probe.env);
  let stop = false;
  try {
    const started = await balancer.waitForLog((l) => l.msg === 'balancer started', 30_000, 'balancer started');
    const proxyPort = Number(started.proxyPort);
    const pid = balancer.child.pid!;
    const load = startKeepAliveLoad(proxyPort, web, { concurrency: 6, maxMs: 3_600_000, maxRequests: 1e9 });
    let live: number[] = [];
    let next = 1;
    let serviceNo = 0;
    let side = `${web}-s0`;
    // a second load on the churning service, so per-server figures see each server
    const sideLoop = (async () => {
      while (!stop) {
        try { const r = await request(`http://127.0.0.1:${proxyPort}/`, { headers: { host: side }, signal: AbortSignal.timeout(5000) }); await r.body.text(); } catch { /* a 404 or 502 while the service moves is expected */ }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const round = async (changes: number) => {
      for (let i = 0; i < changes; i++) {
        if (SAME_IDS) {
          const port = ports[1 + (i % 3)];
          if (live.includes(port)) { live = live.filter((p) => p !== port); await dereg(side, port); } else { live.push(port); await reg(side, port); }
        } else {
          const port = ports[next];
          next = 1 + (next % (PORTS - 1));
          await reg(side, port);
          live.push(port);
          if (live.length > 3) await dereg(side, live.shift()!);
          if (i % 50 === 49) {
            for (const p of live) await dereg(side, p);
            live = [];
            side = `${web}-s${++serviceNo}`;
          }
        }
        await new Promise((r) => setTimeout(r, 20)); // pacing (about 30 changes/s with the PUTs)
      }
    };
    const report = async (label: string) => {
      const h = await heapAfterGc(pid, probe);
      const fp = footprint(pid);
      const per = [...h.processes].map(([p, r]) => `${p === pid ? 'primary' : `worker ${p}`} ${r.heapUsedMb.toFixed(1)}`).join(', ');
      console.log(`| ${label} | ${per} | ${h.newSpaceMb} | ${fp.rssMb} | ${fp.fds} | ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} |`);
    };
    await until('load', () => load.ok() > 300, 20_000);
    console.log(`churn-heap: ${ROUNDS} rounds of ${CHANGES} changes, ${SAME_IDS ? 'the same 3 servers toggled' : 'a new server per change, a new service per 50'}`);
    console.log('| after | heap after GC (MB) | young gen committed (MB) | tree RSS (MB) | fds | load avg |');
    console.log('|---|---|---|---|---|---|');
    await report('start');
    await round(100);
    await report('warm-up (100)');
    for (let r = 1; r <= ROUNDS; r++) {
      await round(CHANGES);
      await report(`round ${r} (${100 + r * CHANGES} changes)`);
    }
    stop = true;
    await sideLoop;
    const res = await load.stop();
    console.log(`keep-alive load: ${res.ok} ok, ${res.failed} failed`);
  } finally {
    stop = true;
    await balancer.stop(10_000);
    backend.kill();
    await scope.clean(consul);
    await consul.close();
    probe.remove();
  }
}

await main();
