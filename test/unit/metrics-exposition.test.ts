// Request figures from the worker-side recorder through the primary's store to the exposition,
// parsed back with a Prometheus text-format parser: counts per service and code, histograms
// consistent, caps and folding, counters monotonic across a worker replaced in its slot,
// OpenMetrics framing, the prefix flag, and the dashboard's quantiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { BalancerMetrics, type BalancerMetricSources } from '../../balancer/src/metrics/balancer-metrics.js';
import type { WorkerMetricsMessage } from '../../balancer/src/metrics/delta.js';
import { fineBucketIndex, fineBucketUpperMs, fineQuantileMs, FINE_BUCKET_COUNT } from '../../balancer/src/metrics/fine-histogram.js';
import { RequestMetrics } from '../../balancer/src/metrics/request-metrics.js';
import { parseBalancerArgs } from '../../balancer/src/config.js';

interface ParsedMetric { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string; sum?: string }[] }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedMetric[];

const BUCKETS = [0.1, 0.3, 1.2, 5];
const SOURCES: BalancerMetricSources = {
  mode: 'dynamic',
  table: () => ({ version: 'v1', swaps: 3, upstreams: 2 }),
  workers: () => ({ generation: 1, workersAlive: 2, workersReady: 2, restarts: 0, reloads: 0 }),
  consul: () => ({ reachable: true, services: 2, queries: 10, errors: 1, throttled: 0 }),
  dump: () => ({ writes: 4, failures: 0 }),
};

function report(slot: number, generation: number, rm: RequestMetrics): WorkerMetricsMessage {
  return {
    type: 'metrics', slot, generation, delta: rm.takeDelta(),
    gauges: { process: { rssBytes: 1, heapUsedBytes: 1, heapTotalBytes: 1, eventLoopLagMeanSeconds: 0, eventLoopLagP99Seconds: 0, eventLoopLagMaxSeconds: 0 }, inflight: [['web', 2]], serverUp: [['web', '127.0.0.1:1', 1], ['web', '127.0.0.1:2', 0]] },
  };
}

function family(parsed: ParsedMetric[], name: string): ParsedMetric {
  const f = parsed.find((m) => m.name === name);
  assert.ok(f, `family ${name} missing; have ${parsed.map((m) => m.name).join(', ')}`);
  return f;
}

function counterValue(parsed: ParsedMetric[], name: string, labels: Record<string, string>): number {
  const f = family(parsed, name);
  const m = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  return m ? Number(m.value) : 0;
}

test('counts per service and code equal what was observed; histograms are consistent', async () => {
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: BUCKETS, maxServersPerService: 10 }, SOURCES);
  const w0 = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  const w1 = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  for (let i = 0; i < 30; i++) w0.requestEnd('web', '127.0.0.1:1', 200, 'GET', 'http', 50, 1, 0, 10);
  for (let i = 0; i < 7; i++) w1.requestEnd('web', '127.0.0.1:2', 503, 'GET', 'http', 400, 2, 0, 5);
  for (let i = 0; i < 5; i++) w1.requestEnd('api', '127.0.0.1:3', 201, 'POST', 'http', 2000, 1, 100, 0);
  for (let i = 0; i < 4; i++) w0.requestEnd(undefined, undefined, 404, 'GET', 'http', 0, 0, 0, 0);
  w1.requestEnd('web', '127.0.0.1:1', 200, 'BREW', 'http', 10, 1, 0, 0);
  m.onWorkerReport(report(0, 1, w0));
  m.onWorkerReport(report(1, 1, w1));
  const { body, contentType } = await m.render(undefined);
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  const parsed = parsePrometheus(body);

  const req = 'balancer_service_requests_total';
  assert.equal(family(parsed, req).type, 'COUNTER');
  assert.equal(counterValue(parsed, req, { service: 'web', code: '200', method: 'GET' }), 30);
  assert.equal(counterValue(parsed, req, { service: 'web', code: '503', method: 'GET' }), 7);
  assert.equal(counterValue(parsed, req, { service: 'api', code: '201', method: 'POST' }), 5);
  assert.equal(counterValue(parsed, req, { service: '_unknown', code: '404' }), 4, 'unknown hosts fold into one label value');
  assert.equal(counterValue(parsed, req, { service: 'web', code: '200', method: 'OTHER' }), 1, 'unknown methods fold into OTHER');
  assert.equal(counterValue(parsed, 'balancer_service_retries_total', { service: 'web' }), 7);
  assert.equal(counterValue(parsed, 'balancer_service_requests_bytes_total', { service: 'api', code: '201' }), 500);
  assert.equal(counterValue(parsed, 'balancer_service_responses_bytes_total', { service: 'web', code: '200', method: 'GET' }), 300);
  assert.equal(counterValue(parsed, 'balancer_service_open_connections', { service: 'web' }), 4, 'in-flight summed over workers');
  assert.equal(counterValue(parsed, 'balancer_service_server_up', { service: 'web', url: 'http://127.0.0.1:1' }), 1);
  assert.equal(counterValue(parsed, 'balancer_service_server_up', { service: 'web', url: 'http://127.0.0.1:2' }), 0);

  assert.equal(family(parsed, 'balancer_service_request_duration_seconds').type, 'HISTOGRAM');
  // parse-prometheus-text-format folds all series of a labelled histogram into one; read the
  // histogram's lines as untyped samples (same text, TYPE line dropped) to keep their labels
  const lines = parsePrometheus(body.replace(/^# TYPE \S+ histogram$/gm, ''));
  // (untyped, each run of lines with one name is its own family)
  const samples = (name: string) => lines.filter((f) => f.name === name).flatMap((f) => f.metrics);
  const buckets = samples('balancer_service_request_duration_seconds_bucket');
  const counts = samples('balancer_service_request_duration_seconds_count');
  const sums = samples('balancer_service_request_duration_seconds_sum');
  assert.equal(counts.length, 5, 'one histogram per (service, code, method, protocol)');
  const same = (a: Record<string, string> | undefined, b: Record<string, string> | undefined) =>
    Object.entries(b ?? {}).every(([k, v]) => a?.[k] === v);
  for (const c of counts) {
    const mine = buckets.filter((x) => same(x.labels, c.labels));
    const les = mine.map((x) => x.labels!.le);
    assert.deepEqual(les, [...BUCKETS.map(String), '+Inf'], 'configured buckets, ascending, then +Inf');
    let prev = 0;
    for (const x of mine) {
      assert.ok(Number(x.value) >= prev, 'cumulative buckets never decrease');
      prev = Number(x.value);
    }
    assert.equal(prev, Number(c.value), '+Inf bucket equals the count');
    assert.equal(Number(c.value), counterValue(parsed, req, c.labels!), `histogram count equals the request counter for ${JSON.stringify(c.labels)}`);
  }
  const bucket = (labels: Record<string, string>) => Number(buckets.find((x) => same(x.labels, labels))?.value);
  assert.equal(bucket({ service: 'web', code: '200', method: 'GET', le: '0.1' }), 30);
  assert.equal(bucket({ service: 'api', code: '201', le: '1.2' }), 0);
  assert.equal(bucket({ service: 'api', code: '201', le: '5' }), 5);
  const webSum = Number(sums.find((x) => same(x.labels, { service: 'web', code: '200', method: 'GET' }))?.value);
  assert.ok(Math.abs(webSum - 1.5) < 1e-9, `sum ${webSum}`);

  assert.equal(counterValue(parsed, 'balancer_consul_reachable', {}), 1);
  assert.equal(counterValue(parsed, 'balancer_table_swaps_total', {}), 3);
  assert.equal(family(parsed, 'balancer_process_resident_memory_bytes').metrics.length, 3, 'primary + 2 workers');
});

test('counters are monotonic across flushes and across a worker replaced in its slot', async () => {
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: BUCKETS, maxServersPerService: 10 }, SOURCES);
  let worker = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  const seen: number[] = [];
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 10; i++) worker.requestEnd('web', '127.0.0.1:1', 200, 'GET', 'http', 5, 1, 0, 0);
    m.onWorkerReport(report(0, round < 2 ? 1 : 2, worker));
    // the worker dies and a fresh one (counting from zero) takes its slot
    if (round === 1) worker = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
    // an empty flush adds nothing
    m.onWorkerReport(report(0, round < 2 ? 1 : 2, worker));
    const parsed = parsePrometheus((await m.render(undefined)).body);
    seen.push(counterValue(parsed, 'balancer_service_requests_total', { service: 'web', code: '200' }));
  }
  assert.deepEqual(seen, [10, 20, 30, 40]);
});

test('label cardinality: servers beyond the cap fold into _other; a delta counted with other buckets is dropped', async () => {
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: BUCKETS, maxServersPerService: 2 }, SOURCES);
  const w = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 2 });
  for (let p = 1; p <= 5; p++) w.requestEnd('web', `127.0.0.1:${p}`, 200, 'GET', 'http', 1, 1, 0, 0);
  const delta = w.takeDelta()!;
  assert.deepEqual(delta.services[0].servers.map((s) => s[0]).sort(), ['127.0.0.1:1', '127.0.0.1:2', '_other']);
  assert.equal(delta.services[0].servers.find((s) => s[0] === '_other')![1], 3);
  m.store.addDelta(delta);
  m.store.addDelta({ ...delta, bucketsSeconds: [1, 2] });
  assert.equal(m.store.droppedDeltas, 1);
  const parsed = parsePrometheus((await m.render(undefined)).body);
  assert.equal(counterValue(parsed, 'balancer_service_requests_total', { service: 'web' }), 5);
  assert.equal(w.takeDelta(), undefined, 'nothing new: no delta');
});

test('OpenMetrics when asked, with # EOF and counters typed without _total; the prefix flag renames every family', async () => {
  const m = new BalancerMetrics({ prefix: 'traefik', bucketsSeconds: BUCKETS, maxServersPerService: 10 }, SOURCES);
  const w = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  w.requestEnd('web', '127.0.0.1:1', 200, 'GET', 'http', 5, 1, 0, 0);
  m.onWorkerReport(report(0, 1, w));
  const om = await m.render('application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5');
  assert.match(om.contentType, /^application\/openmetrics-text; version=1\.0\.0/);
  assert.ok(om.body.endsWith('# EOF\n'));
  assert.match(om.body, /^# TYPE traefik_service_requests counter$/m);
  assert.match(om.body, /^traefik_service_requests_total\{service="web",code="200",method="GET",protocol="http"\} 1$/m);
  // the same families rendered as text afterwards keep their _total names (fresh objects per scrape)
  const text = parsePrometheus((await m.render(undefined)).body);
  assert.equal(counterValue(text, 'traefik_service_requests_total', { service: 'web' }), 1);
  assert.ok(text.every((f) => f.name.startsWith('traefik_')));
});

test('fine histogram quantiles land within a bucket of the truth', () => {
  const counts = new Float64Array(FINE_BUCKET_COUNT);
  for (let ms = 1; ms <= 100; ms++) counts[fineBucketIndex(ms)]++;
  const p50 = fineQuantileMs(counts, 0.5)!;
  const p99 = fineQuantileMs(counts, 0.99)!;
  assert.ok(p50 > 50 / 1.25 && p50 < 50 * 1.25, `p50 ${p50}`);
  assert.ok(p99 > 99 / 1.25 && p99 < 99 * 1.25, `p99 ${p99}`);
  assert.equal(fineQuantileMs(new Float64Array(FINE_BUCKET_COUNT), 0.5), undefined);
  assert.equal(fineBucketIndex(0), 0);
  assert.equal(fineBucketIndex(1e9), FINE_BUCKET_COUNT - 1);
  assert.equal(fineBucketUpperMs(FINE_BUCKET_COUNT - 1), Infinity);
});

test('metrics flags: defaults, custom buckets and prefix; bad values refused with the flag named', () => {
  const ok = parseBalancerArgs([], {}, { cores: 1 });
  assert.equal(ok.kind, 'config');
  if (ok.kind === 'config') assert.deepEqual(ok.metrics, { prefix: 'balancer', bucketsSeconds: [0.1, 0.3, 1.2, 5], maxServersPerService: 100 });
  const custom = parseBalancerArgs(['--metrics-prefix', 'traefik', '--metrics-buckets', '0.005,0.05,0.5', '--metrics-max-servers', '3'], {}, { cores: 1 });
  if (custom.kind !== 'config') assert.fail(String(custom));
  assert.deepEqual(custom.metrics, { prefix: 'traefik', bucketsSeconds: [0.005, 0.05, 0.5], maxServersPerService: 3 });
  for (const [argv, flag] of [[['--metrics-buckets', '1,0.5'], 'metrics-buckets'], [['--metrics-buckets', 'x'], 'metrics-buckets'], [['--metrics-prefix', '9bad-name'], 'metrics-prefix'], [['--metrics-max-servers', '0'], 'metrics-max-servers']] as const) {
    const r = parseBalancerArgs([...argv], {}, { cores: 1 });
    assert.equal(r.kind, 'error', argv.join(' '));
    if (r.kind === 'error') assert.match(r.message, new RegExp(flag));
  }
});

test('one-minute windows: req/s and p99 per service and server from the cumulative totals, first requests included', () => {
  let now = 100_000;
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: BUCKETS, maxServersPerService: 10 }, SOURCES, () => now);
  const w = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  for (let second = 0; second < 10; second++) {
    for (let i = 0; i < 20; i++) w.requestEnd('web', '127.0.0.1:1', 200, 'GET', 'http', 10, 1, 0, 0);
    m.onWorkerReport(report(0, 1, w));
    now += 1000;
    m.store.tick();
  }
  const svc = m.store.serviceWindow('web');
  assert.ok(Math.abs(svc.rps - 200 / 11) < 0.5, `service req/s ${svc.rps}`);
  assert.ok(svc.p99Ms! > 10 / 1.25 && svc.p99Ms! < 10 * 1.25, `p99 ${svc.p99Ms}`);
  assert.ok(svc.points.length >= 9);
  assert.ok(svc.points.every((p) => p.rps >= 0));
  const srv = m.store.serverWindow('web', '127.0.0.1:1');
  assert.ok(srv.rps > 15 && srv.rps < 25, `server req/s ${srv.rps}`);
  assert.equal(m.store.serverWindow('web', 'nope').rps, 0);
});

test('upgrade tunnels: opened/closed counters per service, open tunnels a gauge summed over live workers', async () => {
  let now = 50_000;
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: BUCKETS, maxServersPerService: 10 }, SOURCES, () => now);
  const w0 = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  const w1 = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  for (let i = 0; i < 3; i++) w0.tunnelOpened('chat');
  w0.tunnelClosed('chat');
  w1.tunnelOpened('chat');
  const withTunnels = (slot: number, w: RequestMetrics): WorkerMetricsMessage => {
    const r = report(slot, 1, w);
    return { ...r, gauges: { ...r.gauges, openTunnels: w.openTunnels() } };
  };
  m.onWorkerReport(withTunnels(0, w0));
  m.onWorkerReport(withTunnels(1, w1));
  let parsed = parsePrometheus((await m.render(undefined)).body);
  assert.equal(counterValue(parsed, 'balancer_service_tunnels_opened_total', { service: 'chat' }), 4);
  assert.equal(counterValue(parsed, 'balancer_service_tunnels_closed_total', { service: 'chat' }), 1);
  assert.equal(counterValue(parsed, 'balancer_service_open_tunnels', { service: 'chat' }), 3);
  // worker 1 stops reporting (killed): its open tunnel leaves the gauge, the counters stay
  now += 10_000;
  w0.tunnelClosed('chat');
  m.onWorkerReport(withTunnels(0, w0));
  parsed = parsePrometheus((await m.render(undefined)).body);
  assert.equal(counterValue(parsed, 'balancer_service_open_tunnels', { service: 'chat' }), 1);
  assert.equal(counterValue(parsed, 'balancer_service_tunnels_opened_total', { service: 'chat' }), 4);
  assert.equal(counterValue(parsed, 'balancer_service_tunnels_closed_total', { service: 'chat' }), 2);
});

test('script counts: the host\'s cumulative calls/errors become deltas, a new version or a fresh load starts again', async () => {
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: BUCKETS, maxServersPerService: 10 }, SOURCES);
  const w = new RequestMetrics({ bucketsSeconds: BUCKETS, maxServersPerService: 10 });
  w.scriptTotals([{ name: 'auth', version: 'v1', calls: 10, errors: 1 }]);
  m.onWorkerReport(report(0, 1, w));
  w.scriptTotals([{ name: 'auth', version: 'v1', calls: 25, errors: 1 }, { name: 'tag', version: 'a', calls: 0, errors: 0 }]);
  m.onWorkerReport(report(0, 1, w));
  // v2 replaces v1 (its counts start at 0); then v2 reloaded afresh under the same version
  w.scriptTotals([{ name: 'auth', version: 'v2', calls: 4, errors: 2 }]);
  m.onWorkerReport(report(0, 1, w));
  w.scriptTotals([{ name: 'auth', version: 'v2', calls: 1, errors: 0 }]);
  m.onWorkerReport(report(0, 1, w));
  w.scriptTotals([{ name: 'auth', version: 'v2', calls: 1, errors: 0 }]);
  assert.equal(w.takeDelta(), undefined, 'unchanged totals: nothing to send');
  m.scriptCalled('primary-side', true);
  const parsed = parsePrometheus((await m.render(undefined)).body);
  assert.equal(counterValue(parsed, 'balancer_script_calls_total', { script: 'auth' }), 10 + 15 + 4 + 1);
  assert.equal(counterValue(parsed, 'balancer_script_errors_total', { script: 'auth' }), 1 + 2);
  assert.equal(family(parsed, 'balancer_script_calls_total').metrics.some((x) => x.labels?.script === 'tag'), false, 'a script never called has no series');
  assert.equal(counterValue(parsed, 'balancer_script_errors_total', { script: 'primary-side' }), 1);
});

test('certificate expiry per name with its source; change -> swap timed from the moment given (reload mode)', async () => {
  let now = 1_000_000;
  const m = new BalancerMetrics({ prefix: 'balancer', bucketsSeconds: BUCKETS, maxServersPerService: 10 }, SOURCES, () => now);
  m.setCertificateSource(() => [{ name: 'a.example', notAfterMs: 1_900_000_000_500, source: 'dir' }, { name: '*.b.example', notAfterMs: 1_800_000_000_000, source: 'kv' }]);
  m.tableChanged('v2', now - 1_500);
  m.tableServed('v2', 700);
  m.tableServed('v3', 10); // never seen changing: not timed
  const body = (await m.render(undefined)).body;
  const parsed = parsePrometheus(body);
  assert.equal(counterValue(parsed, 'balancer_tls_certs_not_after', { name: 'a.example', source: 'dir' }), 1_900_000_000);
  assert.equal(counterValue(parsed, 'balancer_tls_certs_not_after', { name: '*.b.example', source: 'kv' }), 1_800_000_000);
  assert.match(body, /^balancer_table_change_to_swap_seconds_count 1$/m);
  assert.match(body, /^balancer_table_change_to_swap_seconds_sum 1\.5$/m);
  assert.match(body, /^balancer_table_change_to_swap_seconds_bucket\{le="1"\} 0$/m);
  assert.match(body, /^balancer_table_change_to_swap_seconds_bucket\{le="2\.5"\} 1$/m);
  now += 1;
});
