// The primary's CPU per Consul change, in process, side by side for S services x 10 instances
// (a script, not a test):
//   npx tsc -p tsconfig.json && node dist/bench/primary-apply-cost.js [--sizes 100,1000,5000] [--changes 200] [--cpu 1] [--baseline <checkout>]
// Each change is what discovery hands the table holder when one instance comes or goes (a new
// snapshot with one service's list replaced, and its name as the hint); everything the primary does
// with it runs as primary.ts wires it: incremental build + version + diff (TableHolder), the shared
// active checker following the table (every service has an active check, interval 1 h so no probe
// fires), the metrics store's live view (its 1 s tick runs once per 20 changes: 20 changes/s), the
// delta to 2 workers serialized as the IPC channel does (JSON), and the dump file's bytes (written at
// most once a second: once per 20 changes). Snapshots are made before the clock starts (that is
// discovery's work, not the primary's). Figures are CPU (process.cpuUsage) per change, each size in
// its own process pinned to one CPU with taskset. --baseline runs the same in an older checkout
// (built, with its own dist/) right before each size here, so both rows see the same machine load;
// the machine is shared, so the load average is printed.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { CatalogInstance, CatalogSnapshot, RouteTable, UpstreamSpec } from '../balancer/src/routing/types.js';
import type { TableDefaults } from '../balancer/src/routing/tag-options.js';
import type { TableChange, TableHolder as TableHolderType } from '../balancer/src/routing/table-holder.js';

const argValue = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const ownRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sizes = argValue('sizes', '100,1000,5000').split(',').filter(Boolean).map(Number);
const CHANGES = Number(argValue('changes', '200'));
const INSTANCES = 10;
const TICK_EVERY = 20;
const cpu = argValue('cpu', '1');
const baseline = argValue('baseline', '');

interface Phase { build: number; checker: number; metrics: number; publish: number; dump: number }
interface Row { size: number; cpuUs: number; p50Ms: number; p99Ms: number; wall: Phase; dumpMsPerWrite: number; dumpKb: number }

/** One size in its own pinned process, from the dist/ of `root`. */
function runChild(root: string, size: number): Row {
  const self = fileURLToPath(import.meta.url);
  const args = ['--expose-gc', self, '--child', '--root', root, '--size', String(size), '--changes', String(CHANGES)];
  const pinned = spawnSync('taskset', ['-V']).status === 0;
  const r = pinned
    ? spawnSync('taskset', ['-c', cpu, process.execPath, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 })
    : spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`size ${size} (${root}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Row;
}

/** instance k of service number s: its own address (no server is listed by two services) */
const instance = (service: string, s: number, k: number): CatalogInstance => ({
  serviceId: `${service}-${k}`, service, node: `node${k % 3}`, address: `10.${(s >> 8) & 255}.${s & 255}.${k + 1}`, port: 8080, tags: ['lb=roundrobin'], meta: { zone: `z${k % 2}` }, status: 'passing',
});

interface Phase { build: number; checker: number; metrics: number; publish: number; dump: number }
interface Row { size: number; cpuUs: number; p50Ms: number; p99Ms: number; wall: Phase; dumpMsPerWrite: number; dumpKb: number }

async function runSize(root: string, S: number): Promise<Row> {
  const dist = (p: string) => import(path.join(root, 'dist/balancer/src', p));
  const { default: pino } = await import('pino');
  const { SharedActiveChecker } = await dist('health/shared-checker.js');
  const { BalancerMetrics } = await dist('metrics/balancer-metrics.js');
  const dumpFile = await dist('persistence/dump-file.js');
  const { makeDelta } = await dist('routing/table-delta.js');
  const { TableHolder } = await dist('routing/table-holder.js');
  const { DEFAULT_TABLE_DEFAULTS } = await dist('routing/tag-options.js');
  // older checkouts have neither a table view nor a dump serializer: the same calls as their primary.ts made
  const upstreamOf: (t: RouteTable, n: string) => UpstreamSpec | undefined = await dist('routing/table-upstreams.js')
    .then((m) => m.upstreamOf, () => (t: RouteTable, n: string) => t.upstreams[n]);
  const dumpBytes: (c: unknown) => Buffer = dumpFile.DumpSerializer
    ? ((ser) => (c: unknown) => ser.serialize(c))(new dumpFile.DumpSerializer())
    : (c: unknown) => Buffer.from(dumpFile.serializeDump(c));
  const services: Record<string, readonly CatalogInstance[]> = {};
  for (let s = 0; s < S; s++) services[`svc${s}`] = Object.freeze(Array.from({ length: INSTANCES }, (_, k) => Object.freeze(instance(`svc${s}`, s, k))));
  const start: CatalogSnapshot = { services };
  // change n: service n*7919 % S gains an 11th instance (even n) or loses it again (odd n)
  const snapshots: { snap: CatalogSnapshot; name: string }[] = [];
  let cur = services;
  for (let n = 0; n < CHANGES; n++) {
    const s = (Math.floor(n / 2) * 7919) % S;
    const name = `svc${s}`;
    const list = n % 2 === 0 ? Object.freeze([...cur[name], Object.freeze(instance(name, s, 99))]) : Object.freeze(cur[name].slice(0, INSTANCES));
    cur = { ...cur, [name]: list };
    snapshots.push({ snap: { services: cur }, name });
  }
  const defaults: TableDefaults = {
    ...DEFAULT_TABLE_DEFAULTS,
    check: { type: 'tcp', path: '', intervalMs: 3_600_000, timeoutMs: 1000, rise: 2, fall: 2, expectStatuses: [] },
  };
  const logger = pino({ level: 'silent' });
  const holder: TableHolderType = new TableHolder({ defaults, logger, initialSnapshot: start });
  const checker = new SharedActiveChecker({ logger, broadcast: () => undefined, random: () => 0.999 });
  const metrics = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: [0.1, 1], maxServersPerService: 100 }, { mode: 'dynamic', table: () => holder.stats(), workers: () => ({ generation: 1, workersAlive: 2, workersReady: 2, restarts: 0, reloads: 0 }) });
  checker.apply(holder.current());
  metrics.retainLive(holder.current());
  metrics.store.tick();

  const wall: Phase = { build: 0, checker: 0, metrics: 0, publish: 0, dump: 0 };
  let seq = 0;
  let ipcBytes = 0;
  let pendingDump = false;
  let lastChange: TableChange | undefined;
  // the same listeners, in the same order, as primary.ts (dump save is the debounced writer's hand-over)
  holder.subscribe(() => (pendingDump = true));
  holder.subscribe((change: TableChange) => {
    const t = performance.now();
    metrics.retainLive(change.table, (name: string) => upstreamOf(change.table, name));
    metrics.tableChanged(change.table.version);
    wall.metrics += performance.now() - t;
  });
  holder.subscribe((change: TableChange) => {
    const t = performance.now();
    checker.apply(change.table, change);
    wall.checker += performance.now() - t;
  });
  holder.subscribe((change: TableChange) => {
    const t = performance.now();
    const delta = makeDelta(change.previous, change.table, change.upserted, change.removed);
    for (let w = 0; w < 2; w++) ipcBytes += JSON.stringify({ type: 'table-delta', seq: ++seq, delta }).length;
    wall.publish += performance.now() - t;
    lastChange = change;
  });

  // the start's full write (every piece made once), as the primary writes the dump at start
  dumpBytes({ table: holder.current(), adminUpstreams: holder.adminUpstreams(), snapshot: holder.currentSnapshot() });
  (globalThis as { gc?: () => void }).gc?.();
  const perChange: number[] = [];
  let dumpMs = 0;
  let tickMs = 0;
  let dumpWrites = 0;
  let dumpSize = 0;
  const c0 = process.cpuUsage();
  for (let n = 0; n < CHANGES; n++) {
    const { snap, name } = snapshots[n];
    const t = performance.now();
    const changed = holder.setSnapshot(snap, new Set([name]));
    if (!changed || lastChange?.table !== holder.current()) throw new Error(`change ${n} did not swap the table`);
    perChange.push(performance.now() - t);
    if ((n + 1) % TICK_EVERY === 0) {
      const tm = performance.now();
      metrics.store.tick();
      tickMs += performance.now() - tm;
      wall.metrics += performance.now() - tm;
      if (pendingDump) {
        const td = performance.now();
        // the bytes the file write gets
        const text = dumpBytes({ table: holder.current(), adminUpstreams: holder.adminUpstreams(), snapshot: holder.currentSnapshot(), adminPolicies: holder.policyOverrides().admin });
        const d = performance.now() - td;
        dumpMs += d;
        wall.dump += d;
        dumpWrites++;
        dumpSize = text.length;
        pendingDump = false;
      }
    }
  }
  const c1 = process.cpuUsage(c0);
  checker.stop();
  metrics.stop();
  perChange.sort((a, b) => a - b);
  const pick = (q: number) => perChange[Math.min(perChange.length - 1, Math.floor(q * perChange.length))];
  for (const k of Object.keys(wall) as (keyof Phase)[]) wall[k] /= CHANGES;
  // the holder's own part: what is left of the change after the listeners (the 1 s work is apart)
  const total = perChange.reduce((a, b) => a + b, 0) / CHANGES;
  wall.build = total - wall.checker - wall.publish - (wall.metrics - tickMs / CHANGES);
  if (ipcBytes === 0) throw new Error('no delta was sent');
  return { size: S, cpuUs: (c1.user + c1.system) / CHANGES, p50Ms: pick(0.5), p99Ms: pick(0.99), wall, dumpMsPerWrite: dumpWrites ? dumpMs / dumpWrites : 0, dumpKb: dumpSize / 1024 };
}

if (process.argv.includes('--child')) {
  const row = await runSize(argValue('root', ownRoot), Number(argValue('size', '100')));
  process.stdout.write(JSON.stringify(row) + '\n');
  process.exit(0);
}

const rows: { code: string; row: Row }[] = [];
for (const size of sizes) {
  if (baseline) rows.push({ code: `baseline (${path.basename(baseline)})`, row: runChild(path.resolve(baseline), size) });
  rows.push({ code: 'this checkout', row: runChild(ownRoot, size) });
}
const f = (v: number, d = 2) => v.toFixed(d);
console.log(`# primary-apply-cost: node ${process.version}, each size pinned to CPU ${cpu} (taskset), ${CHANGES} changes per size, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (shared machine: figures are noisy)`);
console.log(`# command: node dist/bench/primary-apply-cost.js --sizes ${sizes.join(',')} --changes ${CHANGES} --cpu ${cpu}${baseline ? ` --baseline ${baseline}` : ''}`);
console.log('| services x 10 | code | CPU per change (all of it) | one change (holder + listeners) wall p50 / p99 | build+version+diff | active checker | metrics live view (+1 s tick / 20) | delta to 2 workers (JSON) | dump bytes (1 per 20 changes) | dump bytes per write / size |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const { code, row: r } of rows) {
  console.log(`| ${r.size} | ${code} | ${f(r.cpuUs / 1000)} ms | ${f(r.p50Ms)} / ${f(r.p99Ms)} ms | ${f(r.wall.build)} ms | ${f(r.wall.checker)} ms | ${f(r.wall.metrics)} ms | ${f(r.wall.publish, 3)} ms | ${f(r.wall.dump)} ms | ${f(r.dumpMsPerWrite, 1)} ms / ${f(r.dumpKb / 1024, 1)} MB |`);
}
