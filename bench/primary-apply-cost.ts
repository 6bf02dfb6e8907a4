// The primary's CPU per Consul change, in process, side by side for S services x 10 instances
// (a script, not a test):
//   npx tsc -p tsconfig.json && node dist/bench/primary-apply-cost.js [--sizes 100,1000,5000] [--changes 200] [--cpu 1]
// Each change is what discovery hands the table holder when one instance comes or goes (a new
// snapshot with one service's list replaced, and its name as the hint); everything the primary does
// with it runs as primary.ts wires it: incremental build + version + diff (TableHolder), the shared
// active checker following the table (every service has an active check, interval 1 h so no probe
// fires), the metrics store's live view (its 1 s tick walks it once per 20 changes: 20 changes/s),
// the delta to 2 workers serialized as the IPC channel does (JSON), and the dump file's text
// (written at most once a second: once per 20 changes; its bytes as the write gets them). Snapshots are made before the clock starts
// (that is discovery's work, not the primary's). Figures are CPU (process.cpuUsage) per change, the
// process pinned to one CPU with taskset; the machine is shared, so the load average is printed.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { SharedActiveChecker } from '../balancer/src/health/shared-checker.js';
import { BalancerMetrics } from '../balancer/src/metrics/balancer-metrics.js';
import { DumpSerializer } from '../balancer/src/persistence/dump-file.js';
import { makeDelta } from '../balancer/src/routing/table-delta.js';
import { TableHolder, type TableChange } from '../balancer/src/routing/table-holder.js';
import { upstreamOf } from '../balancer/src/routing/table-upstreams.js';
import { DEFAULT_TABLE_DEFAULTS, type TableDefaults } from '../balancer/src/routing/tag-options.js';
import type { CatalogInstance, CatalogSnapshot } from '../balancer/src/routing/types.js';

const argValue = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sizes = argValue('sizes', '100,1000,5000').split(',').filter(Boolean).map(Number);
const CHANGES = Number(argValue('changes', '200'));
const INSTANCES = 10;
const TICK_EVERY = 20;
const cpu = argValue('cpu', '1');

// pinned: re-run under taskset once (BENCH_PINNED marks the child)
if (process.env.BENCH_PINNED === undefined && spawnSync('taskset', ['-V']).status === 0) {
  const r = spawnSync('taskset', ['-c', cpu, process.execPath, '--expose-gc', ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, BENCH_PINNED: cpu } });
  process.exit(r.status ?? 1);
}

const instance = (service: string, k: number, port: number): CatalogInstance => ({
  serviceId: `${service}-${k}`, service, node: `node${k % 3}`, address: '127.0.0.1', port, tags: ['lb=roundrobin'], meta: { zone: `z${k % 2}` }, status: 'passing',
});

interface Phase { build: number; checker: number; metrics: number; publish: number; dump: number }
interface Row { size: number; cpuUs: number; p50Ms: number; p99Ms: number; wall: Phase; dumpMsPerWrite: number; dumpKb: number }

function runSize(S: number): Row {
  const services: Record<string, readonly CatalogInstance[]> = {};
  for (let s = 0; s < S; s++) services[`svc${s}`] = Object.freeze(Array.from({ length: INSTANCES }, (_, k) => Object.freeze(instance(`svc${s}`, k, 20_000 + k))));
  const start: CatalogSnapshot = { services };
  // change n: service n*7919 % S gains an 11th instance (even n) or loses it again (odd n)
  const snapshots: { snap: CatalogSnapshot; name: string }[] = [];
  let cur = services;
  for (let n = 0; n < CHANGES; n++) {
    const name = `svc${(Math.floor(n / 2) * 7919) % S}`;
    const list = n % 2 === 0 ? Object.freeze([...cur[name], Object.freeze(instance(name, 99, 29_999))]) : Object.freeze(cur[name].slice(0, INSTANCES));
    cur = { ...cur, [name]: list };
    snapshots.push({ snap: { services: cur }, name });
  }
  const defaults: TableDefaults = {
    ...DEFAULT_TABLE_DEFAULTS,
    check: { type: 'tcp', path: '', intervalMs: 3_600_000, timeoutMs: 1000, rise: 2, fall: 2, expectStatuses: [] },
  };
  const logger = pino({ level: 'silent' });
  const holder = new TableHolder({ defaults, logger, initialSnapshot: start });
  const checker = new SharedActiveChecker({ logger, broadcast: () => undefined, random: () => 0.999 });
  const metrics = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: [0.1, 1], maxServersPerService: 100 }, { mode: 'dynamic', table: () => holder.stats(), workers: () => ({ generation: 1, workersAlive: 2, workersReady: 2, restarts: 0, reloads: 0 }) });
  checker.apply(holder.current());
  metrics.retainLive(holder.current());
  metrics.store.tick();

  const dumpText = new DumpSerializer();
  const wall: Phase = { build: 0, checker: 0, metrics: 0, publish: 0, dump: 0 };
  let seq = 0;
  let ipcBytes = 0;
  let pendingDump = false;
  let lastChange: TableChange | undefined;
  // the same listeners, in the same order, as primary.ts (dump save is the debounced writer's hand-over)
  holder.subscribe(() => (pendingDump = true));
  holder.subscribe((change) => {
    const t = performance.now();
    metrics.retainLive(change.table, (name) => upstreamOf(change.table, name));
    metrics.tableChanged(change.table.version);
    wall.metrics += performance.now() - t;
  });
  holder.subscribe((change) => {
    const t = performance.now();
    checker.apply(change.table, change);
    wall.checker += performance.now() - t;
  });
  holder.subscribe((change) => {
    const t = performance.now();
    const delta = makeDelta(change.previous, change.table, change.upserted, change.removed);
    for (let w = 0; w < 2; w++) ipcBytes += JSON.stringify({ type: 'table-delta', seq: ++seq, delta }).length;
    wall.publish += performance.now() - t;
    lastChange = change;
  });

  // the start's full write (every piece made once), as the primary writes the dump at start
  dumpText.serialize({ table: holder.current(), adminUpstreams: holder.adminUpstreams(), snapshot: holder.currentSnapshot() });
  (globalThis as { gc?: () => void }).gc?.();
  const perChange: number[] = [];
  let dumpMs = 0;
  let tickMs = 0;
  let dumpWrites = 0;
  let dumpBytes = 0;
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
        const text = dumpText.serialize({ table: holder.current(), adminUpstreams: holder.adminUpstreams(), snapshot: holder.currentSnapshot(), adminPolicies: holder.policyOverrides().admin });
        const d = performance.now() - td;
        dumpMs += d;
        wall.dump += d;
        dumpWrites++;
        dumpBytes = text.length;
        pendingDump = false;
      }
    }
  }
  const c1 = process.cpuUsage(c0);
  checker.stop();
  metrics.stop();
  const t0 = holder.buildTiming();
  void t0;
  perChange.sort((a, b) => a - b);
  const pick = (q: number) => perChange[Math.min(perChange.length - 1, Math.floor(q * perChange.length))];
  for (const k of Object.keys(wall) as (keyof Phase)[]) wall[k] /= CHANGES;
  // the holder's own part: what is left of the change after the listeners (the 1 s work is apart)
  const total = perChange.reduce((a, b) => a + b, 0) / CHANGES;
  wall.build = total - wall.checker - wall.publish - (wall.metrics - tickMs / CHANGES);
  if (ipcBytes === 0) throw new Error('no delta was sent');
  return { size: S, cpuUs: (c1.user + c1.system) / CHANGES, p50Ms: pick(0.5), p99Ms: pick(0.99), wall, dumpMsPerWrite: dumpWrites ? dumpMs / dumpWrites : 0, dumpKb: dumpBytes / 1024 };
}

const rows = sizes.map(runSize);
const f = (v: number, d = 2) => v.toFixed(d);
console.log(`# primary-apply-cost: node ${process.version}, pinned to CPU ${process.env.BENCH_PINNED ?? '(none: no taskset)'}, ${CHANGES} changes per size, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (shared machine: figures are noisy)`);
console.log(`# command: node dist/bench/primary-apply-cost.js --sizes ${sizes.join(',')} --changes ${CHANGES} --cpu ${cpu}`);
console.log('| services x 10 | CPU per change (all of it) | one change (holder + listeners) wall p50 / p99 | build+version+diff | active checker | metrics live view (+1 s tick / 20) | delta to 2 workers (JSON) | dump text (1 per 20 changes) | dump text per write / size |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.size} | ${f(r.cpuUs / 1000)} ms | ${f(r.p50Ms)} / ${f(r.p99Ms)} ms | ${f(r.wall.build)} ms | ${f(r.wall.checker)} ms | ${f(r.wall.metrics)} ms | ${f(r.wall.publish, 3)} ms | ${f(r.wall.dump)} ms | ${f(r.dumpMsPerWrite, 1)} ms / ${f(r.dumpKb / 1024, 1)} MB |`);
}
