// GET /metrics of a running balancer (primary + 2 workers, Consul double or a real agent), parsed
// with a Prometheus text-format parser after known traffic: counts per service and code equal what
// was sent, counters never go backwards across a table swap and a killed worker, and scraping
// while traffic flows fails no request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import pino from 'pino';
import { Agent, request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulPut } from '../support/consul-http.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until } from '../support/poll.js';

interface ParsedMetric { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string }[] }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedMetric[];
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const scope = testScope();
const SERVICE = scope.name('web');
/** backends answer 500 on /fail (the error counts) */
const FAIL_PATH_500 = { statusFor: (url: string) => (url === '/fail' ? 500 : 200) };

const register = (c: ConsulTarget, id: string, port: number) =>
  consulPut(c, '/v1/agent/service/register', { ID: id, Name: SERVICE, Address: '127.0.0.1', Port: port });

test('scrape after known traffic: counts per service and code, monotonic across a table swap and a worker restart, no failed request while scraping', { timeout: 60_000 }, async () => {
  const consul = await consulForTest();
  const a = await startNamedBackend('a', FAIL_PATH_500);
  const b = await startNamedBackend('b', FAIL_PATH_500);
  const agent = new Agent({ connections: 8 });
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, scope.id('a'), a.port);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '2s', '--log-level', 'warn', '--metrics-buckets', '0.005,0.05,0.5']), logger);
    const proxy = `http://127.0.0.1:${primary.proxy.port}`;
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    const send = async (host: string, path: string): Promise<number> => {
      const res = await request(`${proxy}${path}`, { headers: { host }, dispatcher: agent, signal: AbortSignal.timeout(5000) });
      await res.body.text();
      return res.statusCode;
    };
    const scrape = async (): Promise<ParsedMetric[]> => {
      const res = await request(`${admin}/metrics`, { dispatcher: agent, signal: AbortSignal.timeout(5000) });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      return parsePrometheus(await res.body.text());
    };
    const value = (parsed: ParsedMetric[], name: string, labels: Record<string, string>): number => {
      const fam = parsed.find((f) => f.name === name);
      const m = fam?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
      return m ? Number(m.value) : 0;
    };
    const ok = (p: ParsedMetric[]) => value(p, 'balancer_service_requests_total', { service: SERVICE, code: '200', method: 'GET' });
    const seen: number[] = [];
    const errors = (p: ParsedMetric[]) => value(p, 'balancer_service_requests_total', { service: SERVICE, code: '500' });
    const unknown = (p: ParsedMetric[]) => value(p, 'balancer_service_requests_total', { service: '_unknown', code: '404' });
    /** waits for the workers' flushes (each worker flushes on its own second), then checks the counts are exactly what was sent */
    const expectCounts = async (sent: number, sentErrors = 10, sentUnknown = 5) => {
      const p = await until(`${sent}/${sentErrors}/${sentUnknown} requests counted`, async () => {
        const p = await scrape();
        seen.push(ok(p));
        return ok(p) >= sent && errors(p) >= sentErrors && unknown(p) >= sentUnknown ? p : undefined;
      }, 8000);
      assert.deepEqual([ok(p), errors(p), unknown(p)], [sent, sentErrors, sentUnknown], 'counted exactly what was sent');
    };
    const expectOk = (sent: number) => expectCounts(sent);

    for (let i = 0; i < 40; i++) assert.equal(await send(SERVICE, '/'), 200);
    for (let i = 0; i < 10; i++) assert.equal(await send(SERVICE, '/fail'), 500);
    for (let i = 0; i < 5; i++) assert.equal(await send(scope.name('nohost'), '/'), 404);
    await expectOk(40);
    let p = await scrape();
    assert.equal(value(p, 'balancer_service_server_up', { service: SERVICE, url: `http://127.0.0.1:${a.port}` }), 1);
    assert.equal(value(p, 'balancer_workers', { state: 'ready' }), 2);
    assert.equal(value(p, 'balancer_consul_reachable', {}), 1);

    // a table swap: a second instance; the counters carry on from where they were
    const swapsBefore = value(p, 'balancer_table_swaps_total', {});
    await register(consul, scope.id('b'), b.port);
    await until('b in the table', () => primary!.holder.current().upstreams[SERVICE]?.servers.length === 2, 8000);
    for (let i = 0; i < 20; i++) assert.equal(await send(SERVICE, '/'), 200);
    await expectOk(60);
    p = await scrape();
    assert.ok(value(p, 'balancer_table_swaps_total', {}) > swapsBefore);
    const changeToSwap = p.find((f) => f.name === 'balancer_table_change_to_swap_seconds') as unknown as { type: string; metrics: { count?: string }[] };
    assert.equal(changeToSwap.type, 'HISTOGRAM');
    assert.ok(Number(changeToSwap.metrics[0].count) >= 1, 'the swap was timed from change to every worker serving it');
    assert.equal(value(p, 'balancer_service_server_up', { service: SERVICE, url: `http://127.0.0.1:${b.port}` }), 1);

    // a worker killed outright (what it had flushed is kept in the primary) and restarted
    const reports = await primary.supervisor.status();
    process.kill(reports[0].pid!, 'SIGKILL');
    await until('worker restarted', () => primary!.supervisor.metrics().restarts === 1 && primary!.supervisor.metrics().workersReady === 2, 15_000);
    for (let i = 0; i < 20; i++) assert.equal(await send(SERVICE, '/'), 200);
    await expectOk(80);
    p = await scrape();
    assert.equal(value(p, 'balancer_worker_restarts_total', {}), 1);

    // scraping in a loop while requests flow: every request still answers 200
    let scraping = true;
    let scrapes = 0;
    const scraper = (async () => {
      while (scraping && scrapes < 2000) {
        await scrape();
        scrapes++;
      }
    })();
    const statuses: number[] = [];
    await Promise.all(Array.from({ length: 6 }, async () => {
      for (let i = 0; i < 50; i++) statuses.push(await send(SERVICE, '/'));
    }));
    scraping = false;
    await scraper;
    assert.equal(statuses.length, 300);
    assert.deepEqual([...new Set(statuses)], [200], 'no failed request while scraping');
    assert.ok(scrapes >= 3, `scrapes during the load: ${scrapes}`);
    await expectOk(380);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `counter went backwards: ${seen.join(',')}`);

    // the duration histograms agree with the counters: per series, cumulative buckets, +Inf = _count = requests_total
    const text = await (await request(`${admin}/metrics`, { dispatcher: agent, signal: AbortSignal.timeout(5000) })).body.text();
    const total = parsePrometheus(text);
    // (the parser folds a labelled histogram's series into one; read its lines untyped to keep their labels)
    const lines = parsePrometheus(text.replace(/^# TYPE \S+ histogram$/gm, '')).flatMap((f) => f.metrics.map((m) => ({ name: f.name, ...m })));
    const mine = (suffix: string, code: string) => lines.filter((l) => l.name === `balancer_service_request_duration_seconds${suffix}` && l.labels?.service === SERVICE && l.labels?.code === code);
    for (const code of ['200', '500']) {
      const count = Number(mine('_count', code)[0]?.value);
      assert.equal(count, value(total, 'balancer_service_requests_total', { service: SERVICE, code }), `histogram count for ${code}`);
      const buckets = mine('_bucket', code);
      assert.deepEqual(buckets.map((b) => b.labels?.le), ['0.005', '0.05', '0.5', '+Inf']);
      for (let i = 1; i < buckets.length; i++) assert.ok(Number(buckets[i].value) >= Number(buckets[i - 1].value), 'cumulative buckets');
      assert.equal(Number(buckets[buckets.length - 1].value), count, '+Inf bucket = count');
      assert.ok(Number(mine('_sum', code)[0]?.value) > 0, 'durations summed');
    }

    // OpenMetrics on request
    const om = await request(`${admin}/metrics`, { headers: { accept: 'application/openmetrics-text;version=1.0.0' }, dispatcher: agent });
    assert.match(String(om.headers['content-type']), /^application\/openmetrics-text/);
    assert.ok((await om.body.text()).endsWith('# EOF\n'));
  } finally {
    await primary?.stop();
    await agent.close();
    a.server.close();
    b.server.close();
    await scope.clean(consul);
    await consul.close();
  }
});
