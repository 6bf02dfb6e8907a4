// Discovery at scale, printed side by side (a script, not a test):
//   npx tsc -p tsconfig.json && node dist/bench/discovery-scale.js [--sizes 100,1000,5000] [--instances 10] [--reload 1000] [--kv-noise 10]
//     [--watch index|per-service|both] [--consul-max-conns 16]
// --watch both: each size runs twice in one run, side by side: the index design over plain HTTP and
// `--consul-watch per-service` over HTTP/2 to the double's HTTPS listener (a test CA made with openssl,
// trusted through NODE_EXTRA_CA_CERTS). Bytes per change count what the agent wrote on the wire, so
// the per-service rows include TLS record overhead (~22-29 bytes per record).
// For each S: S services x I instances are registered in the Consul double (its own process, enforcing
// http_max_conns_per_client = 200 like an agent), then the balancer starts (its own process, 2 workers)
// and we measure: time until every service is routable; services never routable (120 s); change ->
// traffic on the new instance, p50/p99 over 50 changes while 20 changes/s of health churn run in the
// background; the agent's peak connections from the balancer; Consul requests and bytes per change
// (20 isolated changes); idle CPU over 10 s; RSS of the primary and each worker; time to apply one
// change in the primary (incremental build + diff) and in a worker (delta apply). The bench's own
// Consul client binds 127.0.0.2 so the agent counts it apart from the balancer (127.0.0.1).
// What the requests per change are made of is printed per row: by kind (blocking = a GET with an index,
// read = a plain GET: a first read or a poll) and endpoint, counted by the double, and the balancer's
// idle background (the 10 s idle window's Consul traffic: held queries running out and re-armed, polls,
// the KV policy watch) with what the changes cost above it.
// The machine is shared: the load average (lowest-highest sampled during each row) is printed with the figures.
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { makeTestCa } from '../test/support/tls-certs.js';
import { freePort, spawnPinned, waitForPort, type Started } from './support/processes.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argValue = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sizes = argValue('sizes', '100,1000,5000').split(',').filter(Boolean).map(Number);
const instances = Number(argValue('instances', '10'));
const reloadSizes = argValue('reload', '1000').split(',').filter(Boolean).map(Number);
const CHANGES = Number(argValue('changes', '50'));
// index noise as on a live cluster: KV writes per second (the double also batches node coordinates every
// 5 s, a 50-node cluster's rate; catalog/services tags come in random order); 0 = a quiet agent
const KV_NOISE = Number(argValue('kv-noise', '10'));
type WatchDesign = 'index' | 'per-service';
const watchArg = argValue('watch', 'index');
if (!['index', 'per-service', 'both'].includes(watchArg)) throw new Error(`--watch: expected index, per-service or both, got "${watchArg}"`);
const designs: WatchDesign[] = watchArg === 'both' ? ['index', 'per-service'] : [watchArg as WatchDesign];
const MAX_CONNS = argValue('consul-max-conns', '16');
const ISOLATED = 20;
const CHURN_PER_S = 20;
const ROUTABLE_TIMEOUT_MS = 120_000;

// node's http Agent honours localAddress (undici's connect options do not)
const benchConsul = new http.Agent({ keepAlive: true, maxSockets: 16, localAddress: '127.0.0.2' });
const proxyClient = new Agent({ connections: 64 });
const q = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN);
/** The last lines a process wrote, indented, for the report of one that died early. */
const tail = (output: string, lines = 30) => output.trimEnd().split("\n").slice(-lines).map((l) => `    ${l}\n`).join("");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function consulCall(base: string, method: string, p: string, body?: unknown): Promise<string> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${p}`, { method, agent: benchConsul, signal: AbortSignal.timeout(30_000), headers: payload ? { 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${method} ${p} -> ${res.statusCode} ${text.slice(0, 200)}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

interface DoubleStats { peakByClient: Record<string, number>; requestsByClient: Record<string, number>; bytesByClient: Record<string, number>; requestKindsByClient: Record<string, Record<string, number>>; rejected: number }
const BALANCER_IP = '127.0.0.1';
const doubleStats = async (base: string, reset = false): Promise<DoubleStats> => JSON.parse(await consulCall(base, 'GET', `/_double/stats${reset ? '?reset' : ''}`)) as DoubleStats;

/** One backend per instance slot; answers its name. */
async function startBackends(n: number): Promise<{ ports: number[]; newPort: number; close(): void }> {
  const servers: http.Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i <= n; i++) {
    const name = i === n ? 'new' : `i${i}`;
    const s = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end(name)); });
    s.keepAliveTimeout = 30_000;
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    ports.push((s.address() as AddressInfo).port);
  }
  return { ports: ports.slice(0, n), newPort: ports[n], close: () => { for (const s of servers) { s.closeAllConnections(); s.close(); } } };
}

async function proxyGet(port: number, host: string): Promise<{ status: number; body: string }> {
  try {
    const res = await request(`http://127.0.0.1:${port}/`, { headers: { host }, dispatcher: proxyClient, signal: AbortSignal.timeout(5000) });
    return { status: res.statusCode, body: await res.body.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}
function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
}
const TICK_MS = 10; // CLK_TCK 100 on Linux

interface Row {
  label: string; routableS: number; never: number; p50: number; p99: number; failedChanges: number; peakConns: number;
  reqPerChange: number; kbPerChange: number; idleCpuPct: number; rssPrimary: number; rssWorkers: number[];
  applyPrimaryMs: string; applyWorkerMs: string; rejected: number;
  /** discovery's full rescans over the whole row, per reason; summaries read */
  rescans: Record<string, number>; summaries: number;
  /** what the requests per change are made of, per kind and endpoint (the double's requestKind), most first */
  kindsPerChange: Array<[string, number]>;
  /** the balancer's Consul traffic with nothing changing (the 10 s idle window): re-arms of held queries that ran out, polls */
  idleReqPerS: number; idleKBPerS: number;
  /** requests / KB per change less the idle background over the same time: what the changes themselves cost */
  aboveIdleReq: number; aboveIdleKB: number;
  /** the 1-min load average, lowest and highest sampled during the row */
  load: string;
}

async function runOne(S: number, mode: 'dynamic' | 'reload', design: WatchDesign = 'index'): Promise<Row> {
  const label = `${S} x ${instances}${mode === 'reload' ? ', reload mode' : ''}, ${design}`;
  const loads: number[] = [os.loadavg()[0]];
  const loadTimer = setInterval(() => loads.push(os.loadavg()[0]), 5_000);
  const consulPort = await freePort();
  const consul = `http://127.0.0.1:${consulPort}`;
  // per-service: the agent's HTTPS listener (h2 by ALPN, 250 streams per connection) beside ports.http
  const httpsPort = await freePort();
  const ca = design === 'per-service' ? await makeTestCa('discovery-scale') : undefined;
  const pem = await ca?.issue(['localhost'], { extraIps: ['127.0.0.1'] });
  if (ca && pem) {
    writeFileSync(path.join(ca.dir, 'agent.pem'), pem.cert);
    writeFileSync(path.join(ca.dir, 'agent.key'), pem.key);
  }
  const double: Started = spawnPinned(undefined, process.execPath, [path.join(repoRoot, 'dist/test/support/consul-double/cli.js'), '--port', String(consulPort), '--http-max-conns-per-client', '200',
    '--kv-noise-per-sec', String(KV_NOISE), ...(KV_NOISE > 0 ? [] : ['--no-coordinates']),
    ...(ca ? ['--tls-cert', path.join(ca.dir, 'agent.pem'), '--tls-key', path.join(ca.dir, 'agent.key'), '--https-port', String(httpsPort)] : [])]);
  const backends = await startBackends(instances);
  let balancer: Started | undefined;
  try {
    await waitForPort(consulPort);
    const names = Array.from({ length: S }, (_, i) => `svc${i}`);
    const regs = names.flatMap((name) => backends.ports.map((port, k) => ({
      ID: `${name}-${k}`, Name: name, Address: '127.0.0.1', Port: port, Tags: ['urlprefix-/', `k${k}`, 'v1'], Check: { CheckID: `${name}-${k}-ttl`, TTL: '24h', Status: 'passing' },
    })));
    const tReg = performance.now();
    // bulk, in chunks (the double's own endpoint): 50,000 registrations one by one take minutes
    for (let i = 0; i < regs.length; i += 5000) await consulCall(consul, 'PUT', '/_double/register-bulk', regs.slice(i, i + 5000));
    process.stderr.write(`[${label}] registered ${regs.length} instances in ${((performance.now() - tReg) / 1000).toFixed(1)} s\n`);
    await doubleStats(consul, true);

    const proxyPort = await freePort();
    const adminPort = await freePort();
    const t0 = performance.now();
    const consulFlags = design === 'per-service' ? ['--consul', `https://127.0.0.1:${httpsPort}`, '--consul-watch', 'per-service'] : ['--consul', `127.0.0.1:${consulPort}`];
    balancer = spawnPinned(undefined, process.execPath, [path.join(repoRoot, 'bin/balancer.js'), ...consulFlags, '--listen', `127.0.0.1:${proxyPort}`,
      '--admin', `127.0.0.1:${adminPort}`, '--workers', '2', '--mode', mode, '--log-level', 'error', '--consul-wait', '60s', '--consul-max-conns', MAX_CONNS],
      ca ? { ...process.env, NODE_EXTRA_CA_CERTS: ca.certPath } : process.env);
    await waitForPort(proxyPort, 60_000);
    const unroutable = new Set(names);
    const deadline = Date.now() + ROUTABLE_TIMEOUT_MS;
    while (unroutable.size > 0 && Date.now() < deadline) {
      await eachLimited([...unroutable], 32, async (name) => {
        // the deadline holds inside a pass too (5,000 probes of 5 s each would outlast it)
        if (Date.now() > deadline) return;
        const r = await proxyGet(proxyPort, name);
        if (r.status === 200 && r.body.startsWith('i')) unroutable.delete(name);
      });
      if (unroutable.size > 0) await sleep(100);
    }
    const routableS = unroutable.size === 0 ? (performance.now() - t0) / 1000 : NaN;
    const pids = [balancer.pid, ...childPids(balancer.pid)];

    // idle CPU over 10 s, then RSS; the Consul traffic of the same 10 s is the background rate
    await doubleStats(consul, true);
    const c0 = pids.reduce((a, p) => a + cpuTicks(p), 0);
    const tIdle = performance.now();
    await sleep(10_000);
    const c1 = pids.reduce((a, p) => a + cpuTicks(p), 0);
    const idle = await doubleStats(consul);
    const idleS = (performance.now() - tIdle) / 1000;
    const idleCpuPct = ((c1 - c0) * TICK_MS) / 10_000 * 100;
    const idleReqPerS = (idle.requestsByClient[BALANCER_IP] ?? 0) / idleS;
    const idleKBPerS = (idle.bytesByClient[BALANCER_IP] ?? 0) / 1024 / idleS;
    const rssPrimary = rssMb(balancer.pid);
    const rssWorkers = pids.slice(1).map(rssMb);

    // one change = a new instance registered the way the registrator does (TTL check critical, then pass)
    let changeNo = 0;
    const change = async (): Promise<number | undefined> => {
      const n = changeNo++;
      const name = names[(n * 7919) % S];
      const id = `${name}-new${n}`;
      const t = performance.now();
      await consulCall(consul, 'PUT', '/v1/agent/service/register', { ID: id, Name: name, Address: '127.0.0.1', Port: backends.newPort, Check: { CheckID: `${id}-ttl`, TTL: '24h' } });
      await consulCall(consul, 'PUT', `/v1/agent/check/pass/${encodeURIComponent(`${id}-ttl`)}`);
      const end = Date.now() + (unroutable.size > 0 ? 5_000 : 20_000);
      let ms: number | undefined;
      while (Date.now() < end) {
        if ((await proxyGet(proxyPort, name)).body === 'new') { ms = performance.now() - t; break; }
        await sleep(2);
      }
      await consulCall(consul, 'PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`);
      return ms;
    };
    // isolated changes: Consul traffic per change (the deregistration that undoes each is a change too)
    await sleep(500);
    await doubleStats(consul, true);
    const tIso = performance.now();
    for (let i = 0; i < ISOLATED; i++) await change();
    await sleep(500);
    const iso = await doubleStats(consul);
    const isoS = (performance.now() - tIso) / 1000;
    const changesMade = ISOLATED * 2;
    const reqPerChange = (iso.requestsByClient[BALANCER_IP] ?? 0) / changesMade;
    const kbPerChange = (iso.bytesByClient[BALANCER_IP] ?? 0) / changesMade / 1024;
    const kindsPerChange = Object.entries(iso.requestKindsByClient[BALANCER_IP] ?? {}).map(([k, n]): [string, number] => [k, n / changesMade]).sort((a, b) => b[1] - a[1]);

    // change -> traffic under 20 changes/s of health churn (TTL fail/pass of random instances)
    let churning = true;
    const churn = (async () => {
      let k = 0;
      while (churning) {
        const name = names[(k * 104729) % S];
        const slot = k % instances;
        const verb = Math.floor(k / instances) % 2 === 0 ? 'fail' : 'pass';
        k++;
        await consulCall(consul, 'PUT', `/v1/agent/check/${verb}/${encodeURIComponent(`${name}-${slot}-ttl`)}`).catch(() => undefined);
        await sleep(1000 / CHURN_PER_S);
      }
    })();
    const lat: number[] = [];
    let failedChanges = 0;
    for (let i = 0; i < CHANGES; i++) {
      const ms = await change();
      if (ms === undefined) failedChanges++;
      else lat.push(ms);
    }
    churning = false;
    await churn;
    lat.sort((a, b) => a - b);

    const metrics = JSON.parse(await (await request(`http://127.0.0.1:${adminPort}/metrics?format=json`, { dispatcher: proxyClient })).body.text()) as {
      table?: { buildMs?: { p50: number; p99: number } }; workerApplyMs?: { p50: number; p99: number };
      discovery?: { rescanReasons?: Record<string, number>; summaries?: number };
    };
    const fmt = (m?: { p50: number; p99: number }) => (m ? `${m.p50.toFixed(2)} / ${m.p99.toFixed(2)}` : 'n/a');
    const all = await doubleStats(consul);
    return {
      label, routableS, never: unroutable.size, p50: q(lat, 0.5), p99: q(lat, 0.99), failedChanges,
      peakConns: all.peakByClient['127.0.0.1'] ?? 0, reqPerChange, kbPerChange, idleCpuPct, rssPrimary, rssWorkers,
      applyPrimaryMs: fmt(metrics.table?.buildMs), applyWorkerMs: fmt(metrics.workerApplyMs), rejected: all.rejected,
      rescans: metrics.discovery?.rescanReasons ?? {}, summaries: metrics.discovery?.summaries ?? 0,
      kindsPerChange, idleReqPerS, idleKBPerS,
      aboveIdleReq: reqPerChange - (idleReqPerS * isoS) / changesMade, aboveIdleKB: kbPerChange - (idleKBPerS * isoS) / changesMade,
      load: `${Math.min(...loads).toFixed(1)}-${Math.max(...loads, os.loadavg()[0]).toFixed(1)}`,
    };
  } finally {
    clearInterval(loadTimer);
    if (double.child.exitCode !== null || double.child.signalCode !== null) process.stderr.write(`[${label}] the Consul double exited early: code ${double.child.exitCode}, signal ${double.child.signalCode}\n${tail(double.output())}`);
    if (balancer && (balancer.child.exitCode !== null || balancer.child.signalCode !== null)) process.stderr.write(`[${label}] the balancer exited early: code ${balancer.child.exitCode}, signal ${balancer.child.signalCode}\n${tail(balancer.output())}`);
    await balancer?.stop();
    await double.stop();
    backends.close();
    await ca?.close();
  }
}

const rows: Row[] = [];
const failures: string[] = [];
// a row that fails is reported with its cause, and the next rows still run
const runAndShow = async (S: number, mode: 'dynamic' | 'reload', design: WatchDesign = 'index') => {
  try {
    const row = await runOne(S, mode, design);
    rows.push(row);
    process.stderr.write(`[${row.label}] ${JSON.stringify(row)}\n`);
  } catch (err) {
    const what = `${S} x ${instances}${mode === 'reload' ? ', reload mode' : ''}, ${design}: ${(err as Error).stack ?? String(err)}`;
    failures.push(what);
    process.stderr.write(`[row failed] ${what}\n`);
  }
};
// per-service applies to dynamic mode only (reload mode and --render keep the index design)
for (const S of sizes) for (const d of designs) await runAndShow(S, 'dynamic', d);
for (const S of reloadSizes) await runAndShow(S, 'reload');
benchConsul.destroy();
await proxyClient.close();

const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
console.log(`# discovery-scale: node ${process.version}, ${os.cpus().length} cores, load average ${load} (shared machine: figures are noisy)`);
console.log(`# command: node dist/bench/discovery-scale.js --sizes ${sizes.join(',')} --instances ${instances} --reload ${reloadSizes.join(',')} --changes ${CHANGES} --kv-noise ${KV_NOISE} --watch ${watchArg} --consul-max-conns ${MAX_CONNS}`);
console.log(`| services x instances | all routable after | never routable | change -> traffic p50 / p99 (${CHANGES} changes, ${CHURN_PER_S}/s churn) | changes lost | agent conns (max) | Consul requests / KB per change | idle CPU (10 s, all processes) | RSS primary / workers | apply one change: primary build p50/p99 ms, worker p50/p99 ms | 429s |`);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const f of failures) console.log(`# row failed: ${f.split('\n')[0]}`);
const rescanText = (r: Row) => Object.entries(r.rescans).map(([why, n]) => `${n} x ${why}`).join('; ') || 'none';
for (const r of rows) {
  console.log(`| ${r.label} | ${Number.isNaN(r.routableS) ? 'never (120 s)' : `${r.routableS.toFixed(1)} s`} | ${r.never} | ${r.p50.toFixed(0)} / ${r.p99.toFixed(0)} ms | ${r.failedChanges} | ${r.peakConns} | ${r.reqPerChange.toFixed(1)} / ${r.kbPerChange.toFixed(1)} | ${r.idleCpuPct.toFixed(1)} % of a core | ${r.rssPrimary} / ${r.rssWorkers.join(', ')} MB | ${r.applyPrimaryMs}; ${r.applyWorkerMs} | ${r.rejected} |`);
}
for (const r of rows) console.log(`# ${r.label}: discovery rescans over the row (start to end): ${rescanText(r)}; catalog summaries read: ${r.summaries}`);
for (const r of rows) {
  console.log(`# ${r.label}: requests per change ${r.reqPerChange.toFixed(1)} = ${r.kindsPerChange.map(([k, n]) => `${n.toFixed(1)} ${k}`).join(' + ')}; `
    + `idle background ${r.idleReqPerS.toFixed(1)} req/s, ${r.idleKBPerS.toFixed(1)} KB/s; above the background: ${r.aboveIdleReq.toFixed(1)} req / ${r.aboveIdleKB.toFixed(1)} KB per change; load average during the row ${r.load}`);
}
