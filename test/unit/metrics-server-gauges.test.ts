// Server-up and in-flight gauges as changes: the worker's tracker sends only what moved (nothing
// when idle), the primary applies numbered changes, a missed number asks for a full set, removed
// servers and services leave the gauges. The differential test drives PeerHealth with random events
// and table changes and checks the primary's view against the whole-status computation the reporter
// used to send every second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerHealth } from '../../balancer/src/health/peer-health.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import type { RouteTable, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';
import { ServerGaugeTracker, tableGaugeView, type ServerGaugeChanges } from '../../balancer/src/metrics/server-gauges.js';
import { applyServerGauges, MetricsStore, type WorkerServerGauges } from '../../balancer/src/metrics/metrics-store.js';
import type { WorkerGauges, WorkerMetricsMessage } from '../../balancer/src/metrics/delta.js';
import { mulberry32 } from '../support/fuzz.js';

const PROCESS = { rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, eventLoopLagMeanSeconds: 0, eventLoopLagP99Seconds: 0, eventLoopLagMaxSeconds: 0 };

function srv(id: string, extra: Partial<ServerSpec> = {}): ServerSpec {
  const [host, port] = id.split(':');
  return { id, host, port: Number(port), weight: 1, maxFails: 1, failTimeoutMs: 1000, down: false, backup: false, ...extra };
}

function upstream(name: string, servers: ServerSpec[]): UpstreamSpec {
  return { name, algorithm: 'roundrobin', servers, origin: 'consul', retry: { tries: 1, timeoutMs: 0, onStatuses: [], nonIdempotent: false } };
}

function tableOf(spec: Record<string, ServerSpec[]>): RouteTable {
  const ups: Record<string, UpstreamSpec> = {};
  for (const [name, servers] of Object.entries(spec)) ups[name] = upstream(name, servers);
  return tableFromUpstreams(ups, []);
}

/** A worker's health + tracker, as proxy-runtime wires them. */
class WorkerModel {
  table: RouteTable;
  readonly health = new PeerHealth();
  readonly tracker = new ServerGaugeTracker();
  now = 0;
  constructor(table: RouteTable) {
    this.table = table;
    this.health.retain(table, 0);
  }
  apply(next: RouteTable, changed?: Set<string>): void {
    const prev = this.table;
    this.table = next;
    this.tracker.tableChanged(changed);
    if (changed === undefined) this.health.retain(next, this.now);
    else this.health.retainChanged(prev, next, changed, this.now);
  }
  report(full: boolean): ServerGaugeChanges {
    const view = tableGaugeView(() => this.table, this.health, () => this.now);
    return this.tracker.next(view, this.health.takeGaugeChanges(this.now), full);
  }
}

function gaugesOf(c: ServerGaugeChanges, seq: number): WorkerGauges {
  return {
    process: PROCESS, inflight: c.inflight, serverUp: c.serverUp, gaugeSeq: seq, full: c.full,
    ...(c.serverUpRemoved.length > 0 ? { serverUpRemoved: c.serverUpRemoved } : {}),
    ...(c.servicesRemoved.length > 0 ? { servicesRemoved: c.servicesRemoved } : {}),
  };
}

/** What the reporter sent every second before: every server from status(). */
function wholeFromStatus(w: WorkerModel): { up: Map<string, Map<string, number>>; inflight: Map<string, number> } {
  const up = new Map<string, Map<string, number>>();
  const inflight = new Map<string, number>();
  for (const u of w.health.status(w.table, w.now)) {
    let n = 0;
    for (const s of u.servers) {
      n += s.inflight;
      let m = up.get(u.name);
      if (m === undefined) up.set(u.name, (m = new Map()));
      m.set(s.id, s.status === 'ok' || s.status === 'err' ? 1 : 0);
    }
    inflight.set(u.name, n);
  }
  return { up, inflight };
}

const emptyState = (): WorkerServerGauges => ({ seq: undefined, inflight: new Map(), up: new Map(), awaitingFullSince: undefined });
const sorted = <V>(m: Map<string, V>): [string, V][] => [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));

test('tracker: a full set first, nothing while idle, then only the server and service that moved', () => {
  const a = srv('10.0.0.1:80');
  const b = srv('10.0.0.2:80');
  const c = srv('10.0.0.3:80');
  const w = new WorkerModel(tableOf({ api: [a, b], web: [c] }));
  const first = w.report(false);
  assert.equal(first.full, false, 'not asked for: yet every upstream is compared (first report after a table)');
  assert.deepEqual(first.serverUp.sort(), [['api', a.id, 1], ['api', b.id, 1], ['web', c.id, 1]]);
  assert.deepEqual(first.inflight.sort(), [['api', 0], ['web', 0]]);

  const scenarios: { label: string; act: () => void; want: Partial<ServerGaugeChanges> }[] = [
    { label: 'idle', act: () => undefined, want: { serverUp: [], inflight: [] } },
    { label: 'a request starts on a', act: () => w.health.onAttemptStart(a.id, w.now), want: { serverUp: [], inflight: [['api', 1]] } },
    { label: 'it ends in a failure: a ejected (max_fails 1)', act: () => w.health.onAttemptEnd(a.id, { ok: false, latencyMs: 1, error: 'x' }, w.now), want: { serverUp: [['api', a.id, 0]], inflight: [['api', 0]] } },
    { label: 'still ejected: nothing to send', act: () => { w.now += 500; }, want: { serverUp: [], inflight: [] } },
    { label: 'the ejection ends with time alone', act: () => { w.now += 600; }, want: { serverUp: [['api', a.id, 1]], inflight: [] } },
    { label: 'idle again', act: () => undefined, want: { serverUp: [], inflight: [] } },
    {
      label: 'a table delta removes b and adds d to api',
      act: () => w.apply(tableOf({ api: [a, srv('10.0.0.4:80')], web: [c] }), new Set(['api'])),
      want: { serverUp: [['api', '10.0.0.4:80', 1]], serverUpRemoved: [['api', b.id]], inflight: [] },
    },
    {
      label: 'a delta removes web, marks a down',
      act: () => w.apply(tableOf({ api: [srv(a.id, { down: true }), srv('10.0.0.4:80')] }), new Set(['api', 'web'])),
      want: { serverUp: [['api', a.id, 0]], servicesRemoved: ['web'], inflight: [] },
    },
    {
      label: 'a full table with one change compares every upstream but sends only the difference',
      act: () => w.apply(tableOf({ api: [srv(a.id), srv('10.0.0.4:80')], new: [c] })),
      want: { serverUp: [['api', a.id, 1], ['new', c.id, 1]], inflight: [['new', 0]] },
    },
  ];
  for (const s of scenarios) {
    s.act();
    const got = w.report(false);
    assert.equal(got.full, false, s.label);
    for (const [k, v] of Object.entries(s.want)) assert.deepEqual((got as unknown as Record<string, unknown>)[k], v, `${s.label}: ${k}`);
    for (const k of ['serverUpRemoved', 'servicesRemoved'] as const) if (!(k in s.want)) assert.deepEqual(got[k], [], `${s.label}: ${k}`);
  }
  const full = w.report(true);
  assert.equal(full.full, true);
  assert.deepEqual(full.serverUp.sort(), [['api', a.id, 1], ['api', '10.0.0.4:80', 1], ['new', c.id, 1]]);
  assert.deepEqual(full.inflight.sort(), [['api', 0], ['new', 0]]);
  assert.equal(w.tracker.size(), 3, 'the tracker remembers only the servers of the table');
});

test('primary apply: numbered changes, gaps ask for a full set, removed servers and services go', () => {
  type Step = { label: string; gauges: Partial<WorkerGauges>; continuing?: boolean; at?: number; wantFull: boolean; up: [string, [string, number][]][]; inflight: [string, number][] };
  const steps: Step[] = [
    { label: 'full set', gauges: { gaugeSeq: 0, full: true, serverUp: [['api', 'a', 1], ['api', 'b', 1], ['web', 'c', 0]], inflight: [['api', 2], ['web', 0]] }, continuing: false, wantFull: false, up: [['api', [['a', 1], ['b', 1]]], ['web', [['c', 0]]]], inflight: [['api', 2], ['web', 0]] },
    { label: 'empty change', gauges: { gaugeSeq: 1, serverUp: [], inflight: [] }, wantFull: false, up: [['api', [['a', 1], ['b', 1]]], ['web', [['c', 0]]]], inflight: [['api', 2], ['web', 0]] },
    { label: 'b down, api in flight 0', gauges: { gaugeSeq: 2, serverUp: [['api', 'b', 0]], inflight: [['api', 0]] }, wantFull: false, up: [['api', [['a', 1], ['b', 0]]], ['web', [['c', 0]]]], inflight: [['api', 0], ['web', 0]] },
    { label: 'a removed, web removed', gauges: { gaugeSeq: 3, serverUp: [], inflight: [], serverUpRemoved: [['api', 'a']], servicesRemoved: ['web'] }, wantFull: false, up: [['api', [['b', 0]]]], inflight: [['api', 0]] },
    { label: 'the last server of api removed: its up series go, its in-flight stays', gauges: { gaugeSeq: 4, serverUp: [], inflight: [], serverUpRemoved: [['api', 'b']] }, wantFull: false, up: [], inflight: [['api', 0]] },
    { label: 'a report lost (5 missing): not applied, ask for a full set', gauges: { gaugeSeq: 6, serverUp: [['api', 'z', 1]], inflight: [['api', 9]] }, at: 1000, wantFull: true, up: [], inflight: [['api', 0]] },
    { label: 'the next change is not applied either, not asked again yet', gauges: { gaugeSeq: 7, serverUp: [['api', 'z', 1]], inflight: [] }, at: 2000, wantFull: false, up: [], inflight: [['api', 0]] },
    { label: 'no full set after 5 s: asked again', gauges: { gaugeSeq: 8, serverUp: [], inflight: [] }, at: 6000, wantFull: true, up: [], inflight: [['api', 0]] },
    { label: 'the full set replaces everything', gauges: { gaugeSeq: 9, full: true, serverUp: [['api', 'z', 1]], inflight: [['api', 1]] }, at: 6500, wantFull: false, up: [['api', [['z', 1]]]], inflight: [['api', 1]] },
    { label: 'changes apply again', gauges: { gaugeSeq: 10, serverUp: [['new', 'y', 1]], inflight: [['new', 0]] }, wantFull: false, up: [['api', [['z', 1]]], ['new', [['y', 1]]]], inflight: [['api', 1], ['new', 0]] },
    { label: 'a fresh worker (restart) whose first report is a change: ask', gauges: { gaugeSeq: 11, serverUp: [], inflight: [] }, continuing: false, at: 7000, wantFull: true, up: [['api', [['z', 1]]], ['new', [['y', 1]]]], inflight: [['api', 1], ['new', 0]] },
    { label: 'unnumbered (older worker, double): the whole set replaces', gauges: { serverUp: [['web', 'c', 1]], inflight: [['web', 3]] }, wantFull: false, up: [['web', [['c', 1]]]], inflight: [['web', 3]] },
    { label: 'after an unnumbered report a numbered change has no base: ask', gauges: { gaugeSeq: 0, serverUp: [], inflight: [] }, at: 20_000, wantFull: true, up: [['web', [['c', 1]]]], inflight: [['web', 3]] },
  ];
  const g = emptyState();
  for (const s of steps) {
    const gauges: WorkerGauges = { process: PROCESS, inflight: [], serverUp: [], ...s.gauges };
    const wantFull = applyServerGauges(g, gauges, s.continuing ?? true, s.at ?? 0);
    assert.equal(wantFull, s.wantFull, `${s.label}: wantFull`);
    assert.deepEqual(sorted(g.up).map(([k, m]) => [k, sorted(m)]), s.up, `${s.label}: up`);
    assert.deepEqual(sorted(g.inflight), s.inflight, `${s.label}: inflight`);
  }
});

test('primary store: per worker slot and generation; a stale worker\'s next change asks for a full set; serverUp() takes the worst', () => {
  let now = 0;
  const store = new MetricsStore({ bucketsSeconds: [1], now: () => now, staleAfterMs: 5_000 });
  const msg = (slot: number, generation: number, gauges: Partial<WorkerGauges>): WorkerMetricsMessage =>
    ({ type: 'metrics', slot, generation, gauges: { process: PROCESS, inflight: [], serverUp: [], ...gauges } });
  assert.equal(store.addWorkerReport(msg(0, 1, { gaugeSeq: 0, full: true, serverUp: [['api', 'a', 1]], inflight: [['api', 1]] })).wantFull, false);
  assert.equal(store.addWorkerReport(msg(1, 1, { gaugeSeq: 0, full: true, serverUp: [['api', 'a', 1]], inflight: [['api', 2]] })).wantFull, false);
  assert.equal(store.addWorkerReport(msg(1, 1, { gaugeSeq: 1, serverUp: [['api', 'a', 0]], inflight: [] })).wantFull, false);
  assert.deepEqual([...store.serverUp().get('api')!], [['a', 0]], 'down in one worker: down');
  assert.deepEqual([...store.inflight()], [['api', 3]]);
  // an old generation still draining does not touch the new one's gauges
  assert.equal(store.addWorkerReport(msg(0, 2, { gaugeSeq: 0, full: true, serverUp: [['api', 'b', 1]], inflight: [['api', 0]] })).wantFull, false);
  assert.equal(store.addWorkerReport(msg(0, 1, { gaugeSeq: 1, serverUp: [['api', 'x', 1]], inflight: [['api', 7]] })).wantFull, false);
  assert.deepEqual([...store.inflight()], [['api', 2]]);
  now += 3_000;
  assert.equal(store.addWorkerReport(msg(0, 2, { gaugeSeq: 1, serverUp: [], inflight: [] })).wantFull, false);
  now += 3_000; // slot 1 went silent: its gauges are dropped
  assert.equal(store.addWorkerReport(msg(0, 2, { gaugeSeq: 2, serverUp: [], inflight: [] })).wantFull, false);
  assert.deepEqual([...store.serverUp().get('api')!], [['b', 1]]);
  assert.equal(store.addWorkerReport(msg(1, 1, { gaugeSeq: 2, serverUp: [], inflight: [] })).wantFull, true, 'its next change has nothing to apply to');
  assert.equal(store.addWorkerReport(msg(1, 1, { gaugeSeq: 3, full: true, serverUp: [['api', 'b', 0]], inflight: [['api', 1]] })).wantFull, false);
  assert.deepEqual([...store.serverUp().get('api')!], [['b', 0]]);
  assert.deepEqual([...store.inflight()], [['api', 1]]);
});

test('differential: random health events and table changes, the primary\'s gauges equal the whole status every report (lost reports resync)', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const rnd = mulberry32(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const ids = Array.from({ length: 12 }, (_, i) => `10.0.${seed}.${i}:80`);
    const names = ['a', 'b', 'c', 'd', 'e'];
    const randomTable = (): RouteTable => {
      const spec: Record<string, ServerSpec[]> = {};
      for (const n of names) {
        if (rnd() < 0.2) continue;
        // servers shared between upstreams on purpose: health is per server id
        const mine = ids.filter(() => rnd() < 0.35).map((id) => srv(id, { down: rnd() < 0.1 }));
        spec[n] = mine;
      }
      return tableOf(spec);
    };
    const w = new WorkerModel(randomTable());
    const g = emptyState();
    let seq = 0;
    let full = true;
    for (let step = 0; step < 400; step++) {
      const r = rnd();
      const id = pick(ids);
      if (r < 0.3) w.health.onAttemptStart(id, w.now);
      else if (r < 0.55) w.health.onAttemptEnd(id, { ok: rnd() < 0.6, latencyMs: 3, error: 'e' }, w.now);
      else if (r < 0.62) w.health.ejectShared(id, 300 + Math.floor(rnd() * 2000), w.now);
      else if (r < 0.72) {
        const next = randomTable();
        if (rnd() < 0.5) w.apply(next);
        else {
          const changed = new Set<string>();
          for (const n of names) {
            const before = Object.hasOwn(w.table.upstreams, n) ? JSON.stringify(w.table.upstreams[n]) : undefined;
            const after = Object.hasOwn(next.upstreams, n) ? JSON.stringify(next.upstreams[n]) : undefined;
            if (before !== after) changed.add(n);
          }
          w.apply(next, changed);
        }
      }
      w.now += Math.floor(rnd() * 400);
      if (rnd() < 0.5) continue; // several events between two reports
      const c = w.report(full);
      full = false;
      const lost = rnd() < 0.05;
      const s = seq++;
      if (lost) continue; // the primary never sees it; the next one has a gap
      if (applyServerGauges(g, gaugesOf(c, s), true, w.now)) {
        full = true; // the worker is asked; its next report is a full set
        continue;
      }
      if (g.awaitingFullSince !== undefined) continue;
      const want = wholeFromStatus(w);
      assert.deepEqual(sorted(g.up).map(([k, m]) => [k, sorted(m)]), sorted(want.up).map(([k, m]) => [k, sorted(m)]), `seed ${seed} step ${step}: server up`);
      assert.deepEqual(sorted(g.inflight), sorted(want.inflight), `seed ${seed} step ${step}: in flight`);
    }
  }
});

test('retainChanged picks a shared server\'s settings as retain does (first owner by name with a check, else the first), without a pass over its owners', () => {
  const check = { type: 'http' as const, path: '/h', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, expectStatuses: [200] };
  for (const seed of [21, 22, 23, 24]) {
    const rnd = mulberry32(seed);
    const ids = ['10.9.0.1:80', '10.9.0.2:80', '10.9.0.3:80'];
    const names = Array.from({ length: 12 }, (_, i) => `u${String.fromCharCode(97 + i)}`);
    const specOf = (name: string): UpstreamSpec | undefined => {
      if (rnd() < 0.2) return undefined;
      const servers = ids.filter(() => rnd() < 0.6).map((id) => srv(id, { maxFails: 1 + Math.floor(rnd() * 3) }));
      return { ...upstream(name, servers), ...(rnd() < 0.3 ? { check: { ...check, rise: 1 + Math.floor(rnd() * 3) } } : {}) };
    };
    const ups: Record<string, UpstreamSpec> = {};
    for (const n of names) {
      const u = specOf(n);
      if (u !== undefined) ups[n] = u;
    }
    let table = tableFromUpstreams(ups, []);
    const inc = new PeerHealth({ sharedActive: true });
    inc.retain(table, 0);
    for (let step = 1; step < 150; step++) {
      const next: Record<string, UpstreamSpec> = { ...table.upstreams };
      const changed = new Set<string>();
      for (let k = 0; k < 1 + Math.floor(rnd() * 2); k++) {
        const n = names[Math.floor(rnd() * names.length)];
        const u = specOf(n);
        if (u === undefined) delete next[n];
        else next[n] = u;
        changed.add(n);
      }
      const nextTable = tableFromUpstreams(next, []);
      inc.retainChanged(table, nextTable, changed, step);
      table = nextTable;
      const full = new PeerHealth({ sharedActive: true });
      full.retain(table, step);
      // the settings show in the status: active (check or not, its rise) and what max_fails does
      const shape = (h: PeerHealth) => h.status(table, step).map((u) => [u.name, u.servers.map((s) => [s.id, s.active === null ? null : s.active.up])]);
      assert.deepEqual(shape(inc), shape(full), `seed ${seed} step ${step}`);
      for (const id of ids) {
        const a = (inc as unknown as { records: Map<string, { activeSpec?: { rise: number }; passive: { maxFails: number } }> }).records.get(id);
        const b = (full as unknown as { records: Map<string, { activeSpec?: { rise: number }; passive: { maxFails: number } }> }).records.get(id);
        assert.deepEqual([a?.activeSpec?.rise, a?.passive.maxFails], [b?.activeSpec?.rise, b?.passive.maxFails], `seed ${seed} step ${step} ${id}: settings`);
      }
    }
  }
});
