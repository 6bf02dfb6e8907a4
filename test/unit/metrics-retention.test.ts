// Churn must not grow the request figures: servers and services that left the table are dropped
// (in the worker right after their last counts were sent, in the primary after a retention time
// so a scrape still sees their final counts), and a server that arrives after many came and went
// gets its own label instead of "_other".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsStore } from '../../balancer/src/metrics/metrics-store.js';
import { OTHER, RequestMetrics, UNKNOWN_SERVICE } from '../../balancer/src/metrics/request-metrics.js';

const BUCKETS = [0.1, 1];

/** Churn: change c brings server number c (never seen before) into the current service; 3 servers live at a time; a new service every 50 changes. */
function churnStep(c: number): { service: string; server: string; live: Map<string, Set<string>> } {
  const service = `svc-${Math.floor(c / 50)}`;
  const first = Math.max(Math.floor(c / 50) * 50, c - 2);
  const ids = new Set<string>();
  for (let i = first; i <= c; i++) ids.add(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`);
  return { service, server: `10.${(c >> 16) & 255}.${(c >> 8) & 255}.${c & 255}:8080`, live: new Map([[service, ids]]) };
}

test('worker figures: 2,000 servers coming and going leave only the live ones, and the newest is counted under its own id', () => {
  const rm = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  let lastDelta;
  for (let c = 0; c < 2000; c++) {
    const { service, server, live } = churnStep(c);
    rm.requestEnd(service, server, 200, 'GET', 'http', 5, 1, 0, 10);
    rm.requestEnd(undefined, undefined, 404, 'GET', 'http', 1, 0, 0, 0);
    lastDelta = rm.takeDelta();
    rm.retain(live);
  }
  const newest = churnStep(1999);
  const svc = lastDelta!.services.find((s) => s.name === newest.service);
  assert.ok(svc, 'the live service is in the last delta');
  assert.deepEqual(svc.servers.map((s) => s[0]), [newest.server], 'the newest server has its own label, not "_other"');
  const sizes = rm.sizes();
  // the live service with its 3 servers (at most), plus the unknown-host figures
  assert.ok(sizes.services <= 2, `services kept: ${sizes.services}`);
  assert.ok(sizes.servers <= 3, `servers kept: ${sizes.servers}`);
});

test('worker figures: counts not yet sent survive retain(); the folded labels stay', () => {
  const rm = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 1 });
  rm.requestEnd('web', 'a:1', 200, 'GET', 'http', 5, 1, 0, 0);
  rm.requestEnd('web', 'b:1', 200, 'GET', 'http', 5, 1, 0, 0); // beyond the cap: "_other"
  rm.retain(new Map()); // web left the table before its counts were sent
  const delta = rm.takeDelta()!;
  assert.deepEqual(delta.services.map((s) => [s.name, s.servers.map((x) => x[0]).sort()]), [['web', ['_other', 'a:1'].sort()]]);
  rm.retain(new Map([['web', new Set<string>()]]));
  assert.deepEqual(rm.sizes(), { services: 1, servers: 1, tunnels: 0 }, 'a:1 dropped, "_other" kept');
  rm.retain(new Map());
  assert.deepEqual(rm.sizes(), { services: 0, servers: 0, tunnels: 0 });
  rm.requestEnd(undefined, undefined, 404, 'GET', 'http', 1, 0, 0, 0);
  rm.takeDelta();
  rm.retain(new Map());
  assert.equal(rm.sizes().services, 1, `${UNKNOWN_SERVICE} is never dropped`);
});

test('worker figures: a removed service\'s tunnel figures go once none is open and their counts were sent', () => {
  const rm = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  rm.tunnelOpened('ws');
  rm.tunnelOpened('ws');
  rm.tunnelClosed('ws');
  rm.takeDelta();
  rm.retain(new Map());
  assert.equal(rm.sizes().tunnels, 1, 'one tunnel still open: kept');
  rm.tunnelClosed('ws');
  rm.retain(new Map());
  assert.equal(rm.sizes().tunnels, 1, 'its close not yet sent: kept');
  const delta = rm.takeDelta()!;
  assert.deepEqual(delta.tunnels, [['ws', 0, 1]]);
  rm.retain(new Map());
  assert.equal(rm.sizes().tunnels, 0);
});

test('primary store: churn of new servers and services keeps only the live ones plus those removed within the retention time', () => {
  let now = 1_000_000;
  const retainRemovedMs = 60_000;
  const store = new MetricsStore({ bucketsSeconds: BUCKETS, now: () => now, retainRemovedMs, retainRemovedServerMs: 10_000 });
  let lastTick = now;
  for (let c = 0; c < 5000; c++) {
    const { service, server, live } = churnStep(c);
    store.setLive(live);
    store.addDelta({ bucketsSeconds: BUCKETS, services: [{ name: service, retries: 0, series: [[200, 'GET', 'http', 1, 0, 10, 0.005, [1, 0, 0]]], servers: [[server, 1, 0, 5, [3, 1]]] }], scripts: [] });
    now += 20; // 50 changes a second
    if (now - lastTick >= 1000) {
      store.tick();
      lastTick = now;
    }
  }
  const serversKept = () => [...store.services.values()].reduce((n, s) => n + s.servers.size, 0);
  // services removed within 60 s (3000 changes = 60 services of 50 servers), servers removed within
  // 10 s (500 changes; ticks are 1 s apart), also those of removed services; nothing older
  assert.ok(store.services.size <= 62, `services kept: ${store.services.size}`);
  assert.ok(serversKept() <= 560, `servers kept: ${serversKept()}`);
  const last = churnStep(4999);
  assert.ok(store.services.get('svc-0') === undefined, 'the first service, removed long ago, is gone');
  assert.ok(store.services.get(last.service)?.servers.has(last.server), 'the live server is kept');
  // no more changes: after the retention time only the live service and servers remain
  now += retainRemovedMs + 1;
  store.tick();
  assert.deepEqual([...store.services.keys()], [last.service]);
  assert.deepEqual([...store.services.get(last.service)!.servers.keys()].sort(), [...last.live.get(last.service)!].sort());
});

test('primary store: a removed server keeps its figures for the retention time; nothing is dropped before the first table; folded labels stay', () => {
  let now = 0;
  const store = new MetricsStore({ bucketsSeconds: BUCKETS, now: () => now, retainRemovedMs: 10_000, retainRemovedServerMs: 10_000 });
  const delta = (service: string, server: string) => ({ bucketsSeconds: BUCKETS, services: [{ name: service, retries: 0, series: [[200, 'GET', 'http', 1, 0, 0, 0.001, [1, 0, 0]]] as [number, string, string, number, number, number, number, number[]][], servers: [[server, 1, 0, 1, []]] as [string, number, number, number, number[]][] }], scripts: [] });
  store.addDelta(delta('web', 'a:1'));
  store.addDelta(delta(UNKNOWN_SERVICE, 'x:1'));
  store.addDelta(delta(OTHER, 'y:1'));
  now = 60_000;
  store.tick();
  assert.equal(store.services.size, 3, 'no table yet: nothing dropped');
  store.setLive(new Map([['web', new Set(['b:1'])]]));
  store.tick();
  assert.equal(store.services.get('web')?.servers.has('a:1'), false, 'a:1 left and was silent for longer than the retention');
  store.addDelta(delta('web', 'a:1')); // a late count from a worker
  now += 9_000;
  store.tick();
  assert.equal(store.services.get('web')?.servers.get('a:1')?.count, 1, 'kept within the retention time after its last count');
  now += 2_000;
  store.tick();
  assert.equal(store.services.get('web')?.servers.has('a:1'), false);
  assert.ok(store.services.has(UNKNOWN_SERVICE) && store.services.has(OTHER), 'the folded label values are never in a table and stay');
  assert.ok(store.services.get(OTHER)?.servers.has('y:1'));
});

test('primary store defaults: a removed server is dropped after its 65 s window, a removed service after 5 min (scrapes see its last counts)', () => {
  let now = 0;
  const store = new MetricsStore({ bucketsSeconds: BUCKETS, now: () => now });
  const series: [number, string, string, number, number, number, number, number[]][] = [[200, 'GET', 'http', 1, 0, 0, 0.001, [1, 0, 0]]];
  store.addDelta({ bucketsSeconds: BUCKETS, services: [{ name: 'web', retries: 0, series, servers: [['a:1', 1, 0, 1, []], ['b:1', 1, 0, 1, []]] }, { name: 'old', retries: 0, series, servers: [] }], scripts: [] });
  store.setLive(new Map([['web', new Set(['b:1'])]]));
  now = 64_000;
  store.tick();
  assert.deepEqual([...store.services.get('web')!.servers.keys()].sort(), ['a:1', 'b:1']);
  now = 66_000;
  store.tick();
  assert.deepEqual([...store.services.get('web')!.servers.keys()], ['b:1']);
  assert.ok(store.services.has('old'));
  store.addDelta({ bucketsSeconds: BUCKETS, services: [{ name: 'old', retries: 0, series, servers: [['c:1', 1, 0, 1, []]] }], scripts: [] });
  now = 132_000;
  store.tick();
  assert.ok(store.services.has('old'), 'a removed service is kept for 5 min');
  assert.equal(store.services.get('old')!.servers.size, 0, 'but its servers only for 65 s');
  now = 367_000;
  store.tick();
  assert.deepEqual([...store.services.keys()], ['web'], 'live services stay however long they are silent');
});

test('primary store: tunnel counters of a removed service go after the retention time, a live one\'s stay', () => {
  let now = 0;
  const store = new MetricsStore({ bucketsSeconds: BUCKETS, now: () => now, retainRemovedMs: 10_000 });
  store.addDelta({ bucketsSeconds: BUCKETS, services: [], scripts: [], tunnels: [['ws', 2, 1], ['old', 1, 1]] });
  store.setLive(new Map([['ws', new Set<string>()]]));
  now = 9_000;
  store.tick();
  assert.deepEqual([...store.tunnels.keys()].sort(), ['old', 'ws']);
  now = 11_000;
  store.tick();
  assert.deepEqual([...store.tunnels.keys()], ['ws']);
  assert.equal(store.tunnels.get('ws')?.opened, 2);
});
