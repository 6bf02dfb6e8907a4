// CPU per table delta in a worker at N services x M instances, in process: the IPC decode of the
// delta (JSON, as node:cluster sends it), applyDelta, compileTable with the changed names,
// PeerHealth.retainChanged and the active checker's apply. One upstream changes per delta (an
// instance moves). Prints µs of CPU per delta (process.cpuUsage) and the load average (shared host).
// Run: node dist/bench/worker-apply-delta.js [services=5000] [instances=10] [deltas=400]
import os from 'node:os';
import { PeerHealth } from '../balancer/src/health/peer-health.js';
import { ActiveChecker } from '../balancer/src/health/active-checker.js';
import { compileTable } from '../balancer/src/proxy/compiled-table.js';
import { tableFromUpstreams } from '../balancer/src/routing/build-table.js';
import { applyDelta, type TableDelta } from '../balancer/src/routing/table-delta.js';
import type { RouteTable, ServerSpec, UpstreamSpec } from '../balancer/src/routing/types.js';
import pino from 'pino';

const services = Number(process.argv[2] ?? 5000);
const instances = Number(process.argv[3] ?? 10);
const deltas = Number(process.argv[4] ?? 400);

const srv = (host: string, port: number): ServerSpec => ({ id: `${host}:${port}`, host, port, weight: 1, maxFails: 2, failTimeoutMs: 1000, down: false, backup: false });
const up = (i: number, shift: number): UpstreamSpec => ({
  name: `svc-${i}`, algorithm: 'roundrobin', origin: 'consul', retry: { tries: 2, timeoutMs: 0, onStatuses: [502], nonIdempotent: false },
  servers: Array.from({ length: instances }, (_, k) => srv(`10.${(i >> 8) & 255}.${i & 255}.${k + 1}`, 8000 + shift + k)),
});

const record: Record<string, UpstreamSpec> = {};
for (let i = 0; i < services; i++) record[`svc-${i}`] = up(i, 0);
// the worker's first table arrives by IPC as plain JSON
let table: RouteTable = JSON.parse(JSON.stringify(tableFromUpstreams(record, []))) as RouteTable;
const env = { random: Math.random, now: () => 0 };
const health = new PeerHealth();
health.retain(table, 0);
const checker = new ActiveChecker({ sink: health, logger: pino({ level: 'silent' }), now: () => 0, random: Math.random });
checker.apply(table);
let compiled = compileTable(table, undefined, health, env);

const parts = { decode: 0, applyDelta: 0, compile: 0, retain: 0, checker: 0 };
// CPU of each whole delta, for the p50/p99 (a flat copy every 256 changes is the tail)
const each: number[] = [];
const cpu = (f: () => void): number => { const c = process.cpuUsage(); f(); const d = process.cpuUsage(c); return d.user + d.system; };
for (let n = 0; n < deltas; n++) {
  const before = Object.values(parts).reduce((a, b) => a + b, 0);
  const i = (n * 7919) % services;
  const wire = JSON.stringify({ type: 'table-delta', seq: n, delta: { from: table.version, to: `v${n}`, upserted: [up(i, 100 + (n % 50))], removed: [] } });
  let delta!: TableDelta;
  parts.decode += cpu(() => { delta = (JSON.parse(wire) as { delta: TableDelta }).delta; });
  let next!: RouteTable;
  parts.applyDelta += cpu(() => { const r = applyDelta(table, delta); if (!r.ok) throw new Error('gap'); next = r.table; });
  const names = new Set([...delta.upserted.map((u) => u.name), ...delta.removed]);
  parts.compile += cpu(() => { compiled = compileTable(next, compiled, health, env, undefined, names); });
  parts.retain += cpu(() => { health.retainChanged(table, next, names, n); });
  parts.checker += cpu(() => { checker.apply(next, { previous: table, upserted: [...names], removed: [] }); });
  table = next;
  each.push(Object.values(parts).reduce((a, b) => a + b, 0) - before);
}
checker.stop();
const per = (us: number): string => `${Math.round(us / deltas)} µs`;
const total = Object.values(parts).reduce((a, b) => a + b, 0);
console.log(`worker CPU per one-upstream delta at ${services} x ${instances} (${deltas} deltas), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const [k, v] of Object.entries(parts)) console.log(`  ${k.padEnd(11)} ${per(v)}`);
each.sort((a, b) => a - b);
const q = (f: number): number => each[Math.min(each.length - 1, Math.floor(f * each.length))];
console.log(`  total       ${per(total)} (per delta p50 ${Math.round(q(0.5))} µs, p99 ${Math.round(q(0.99))} µs, max ${Math.round(each[each.length - 1])} µs)`);
