// The balancer's own figures after known events, scraped from a running balancer and parsed with a
// Prometheus text-format parser: script calls and errors, WebSocket tunnels opened/open/closed,
// HTTP -> HTTPS redirects, certificate expiry per name (directory and KV), Consul 429s, and in reload
// mode the change -> swap latency from the Consul answer to the new generation serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import pino from 'pino';
import { Agent, request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { parseRegistration } from '../support/consul-double/registration.js';
import { consulPut } from '../support/consul-http.js';
import { consulForTest, testScope } from '../support/consul.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until } from '../support/poll.js';
import { makeTestCa } from '../support/tls-certs.js';
import { connectWebSocket, startWebSocketEcho } from '../support/upstreams.js';

interface ParsedMetric { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string; count?: string; sum?: string }[] }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedMetric[];
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

function scraper(adminPort: number, agent: Agent) {
  const scrape = async (): Promise<ParsedMetric[]> => {
    const res = await request(`http://127.0.0.1:${adminPort}/metrics`, { dispatcher: agent, signal: AbortSignal.timeout(5000) });
    assert.equal(res.statusCode, 200);
    return parsePrometheus(await res.body.text());
  };
  const value = (parsed: ParsedMetric[], name: string, labels: Record<string, string> = {}): number | undefined => {
    const m = parsed.find((f) => f.name === name)?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    return m === undefined ? undefined : Number(m.value ?? m.count);
  };
  /** polls until every expected value is there (workers flush once a second), then asserts them exactly */
  const expect = async (what: string, want: [string, Record<string, string>, number][]): Promise<ParsedMetric[]> => {
    let last: ParsedMetric[] = [];
    try {
      return await until(what, async () => {
        last = await scrape();
        return want.every(([n, l, v]) => value(last, n, l) === v) ? last : undefined;
      });
    } catch (err) {
      // the same comparison as an assertion: names what differs
      for (const [n, l, v] of want) assert.equal(value(last, n, l), v, `${what}: ${n}${JSON.stringify(l)}`);
      throw err;
    }
  };
  return { scrape, value, expect };
}

test('scripts, tunnels, redirects, certificates and Consul 429s are counted', { timeout: 60_000 }, async () => {
  // its own double: the test lowers the agent's connection limit, which no client can do to a real agent
  const consul = await consulForTest({ ownDouble: true });
  const scope = testScope();
  const WEB = scope.name('web');
  const CHAT = scope.name('chat');
  const SECURE = scope.name('secure');
  const KV_PREFIX = `${scope.kv('certs')}/`;
  const web = await startNamedBackend('ok');
  const echo = await startWebSocketEcho();
  const ca = await makeTestCa('metrics');
  const certDir = await mkdtemp(path.join(os.tmpdir(), 'metrics-certs-'));
  const agent = new Agent({ connections: 4 });
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    const [dirCert, wildCert, kvCert] = await Promise.all([ca.issue(['a.metrics.test', 'www.metrics.test']), ca.issue(['*.wild.metrics.test'], { days: 3 }), ca.issue(['kv.metrics.test'], { days: 5 })]);
    await writeFile(path.join(certDir, 'a.pem'), dirCert.cert + dirCert.key);
    await writeFile(path.join(certDir, 'wild.pem'), wildCert.cert + wildCert.key);
    await consulPut(consul, `/v1/kv/${KV_PREFIX}kv.metrics.test/cert`, kvCert.cert);
    await consulPut(consul, `/v1/kv/${KV_PREFIX}kv.metrics.test/key`, kvCert.key);
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('web'), Name: WEB, Address: '127.0.0.1', Port: web.port });
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('chat'), Name: CHAT, Address: '127.0.0.1', Port: echo.port });
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('secure'), Name: SECURE, Address: '127.0.0.1', Port: web.port, Tags: ['redirect-https'] });
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--consul-wait', '2s', '--log-level', 'warn', '--tls-listen', '127.0.0.1:0', '--tls-cert-dir', certDir, '--tls-kv-prefix', KV_PREFIX]), logger);
    const proxyPort = primary.proxy.port;
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    const { scrape, value, expect } = scraper(primary.admin.port, agent);
    const send = async (host: string, p: string): Promise<number> => {
      const res = await request(`http://127.0.0.1:${proxyPort}${p}`, { headers: { host }, dispatcher: agent, signal: AbortSignal.timeout(5000) });
      await res.body.text();
      return res.statusCode;
    };
    await until('services routed', () => [WEB, CHAT, SECURE].every((s) => primary!.holder.current().upstreams[s]?.servers.length === 1));

    // certificates: every name of every loaded one (directory and KV), with the leaf's notAfter
    const notAfter = (pem: string) => Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);
    await expect('certificate expiry per name', [
      ['balancer_tls_certs_not_after', { name: 'a.metrics.test', source: 'dir' }, notAfter(dirCert.leaf)],
      ['balancer_tls_certs_not_after', { name: 'www.metrics.test', source: 'dir' }, notAfter(dirCert.leaf)],
      ['balancer_tls_certs_not_after', { name: '*.wild.metrics.test', source: 'dir' }, notAfter(wildCert.leaf)],
      ['balancer_tls_certs_not_after', { name: 'kv.metrics.test', source: 'kv' }, notAfter(kvCert.leaf)],
    ]);
    let p = await scrape();
    assert.equal(p.find((f) => f.name === 'balancer_tls_certs_not_after')?.metrics.length, 4, 'one sample per name');
    assert.equal(value(p, 'balancer_consul_throttled_total'), 0, 'no 429 while the agent has room');

    // a script bound to web: 7 calls, 2 of them throw (the client gets 500 script_failed)
    const source = 'export function onRequest(req) { if (req.path === "/boom") throw new Error("kaboom"); }';
    const put = await request(`${admin}/scripts/thrower?services=${WEB}&maxFailures=100`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: source, dispatcher: agent });
    assert.equal(put.statusCode, 200, await put.body.text());
    await until('script in the worker', async () => (await send(WEB, '/boom')) === 500);
    for (let i = 0; i < 5; i++) assert.equal(await send(WEB, '/'), 200);
    assert.equal(await send(WEB, '/boom'), 500);
    // redirects: 3 plain-HTTP requests to a redirect-https service
    for (let i = 0; i < 3; i++) assert.equal(await send(SECURE, '/x'), 308);
    // tunnels: two WebSockets open, one closed
    const ws1 = await connectWebSocket(proxyPort, CHAT);
    const ws2 = await connectWebSocket(proxyPort, CHAT);
    ws1.send('hi');
    assert.equal(await ws1.receive(), 'echo:hi');
    ws1.close();
    p = await expect('scripts, redirects and tunnels counted', [
      ['balancer_script_calls_total', { script: 'thrower' }, 7],
      ['balancer_script_errors_total', { script: 'thrower' }, 2],
      ['balancer_service_requests_total', { service: WEB, code: '500' }, 2],
      ['balancer_service_requests_total', { service: WEB, code: '200' }, 5],
      ['balancer_service_requests_total', { service: SECURE, code: '308', method: 'GET' }, 3],
      ['balancer_service_requests_total', { service: CHAT, code: '101', protocol: 'websocket' }, 2],
      ['balancer_service_tunnels_opened_total', { service: CHAT }, 2],
      ['balancer_service_tunnels_closed_total', { service: CHAT }, 1],
      ['balancer_service_open_tunnels', { service: CHAT }, 1],
    ]);
    ws2.close();
    await expect('the second tunnel closed', [
      ['balancer_service_tunnels_closed_total', { service: CHAT }, 2],
      ['balancer_service_open_tunnels', { service: CHAT }, 0],
    ]);

    // Consul 429s: the agent allows this client one connection; five new services need reads at once
    const double = consul.double!;
    double.setMaxConnsPerClient(1);
    try {
      for (let i = 0; i < 5; i++) double.state.register(parseRegistration({ ID: scope.id(`more${i}`), Name: scope.name(`more${i}`), Address: '127.0.0.1', Port: web.port }), false);
      const throttled = await until('429s counted', async () => {
        const v = value(await scrape(), 'balancer_consul_throttled_total') ?? 0;
        return v > 0 ? v : undefined;
      });
      assert.ok(double.stats().rejected > 0, 'the agent refused connections');
      assert.ok(throttled <= double.stats().rejected + 50, `throttled ${throttled} vs ${double.stats().rejected} refused`);
    } finally {
      double.setMaxConnsPerClient(200);
    }
    // it recovers: the new services make it into the table
    await until('converged after the 429s', () => [0, 1, 2, 3, 4].every((i) => primary!.holder.current().upstreams[scope.name(`more${i}`)] !== undefined), 20_000);
  } finally {
    await primary?.stop();
    await agent.close();
    web.server.close();
    await echo.close();
    await ca.close();
    await rm(certDir, { recursive: true, force: true });
    await scope.clean(consul);
    await consul.close();
  }
});

test('reload mode: change -> swap latency from the Consul answer to the new generation serving', { timeout: 60_000 }, async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const SERVICE = scope.name('web');
  const a = await startNamedBackend('ok');
  const b = await startNamedBackend('ok');
  const outDir = await mkdtemp(path.join(os.tmpdir(), 'metrics-reload-'));
  const agent = new Agent({ connections: 2 });
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('a'), Name: SERVICE, Address: '127.0.0.1', Port: a.port });
    primary = await startPrimary(balancerConfig(['--mode', 'reload', '--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1',
      '--config-out', path.join(outDir, 'balancer.conf'), '--drain-timeout', '5s', '--log-level', 'warn']), logger);
    const { scrape, value } = scraper(primary.admin.port, agent);
    await until('a served', () => primary!.holder.current().upstreams[SERVICE]?.servers.length === 1);
    const before = await scrape();
    assert.equal(value(before, 'balancer_table_change_to_swap_seconds'), 0, 'the first generation is not a change');
    assert.equal(value(before, 'balancer_consul_throttled_total'), 0, 'the renderer\'s Consul budget: no 429 yet');
    assert.equal(value(before, 'balancer_consul_queries_total'), undefined, 'not known in reload mode: left out, not 0');
    const registeredAt = Date.now();
    await consulPut(consul, '/v1/agent/service/register', { ID: scope.id('b'), Name: SERVICE, Address: '127.0.0.1', Port: b.port });
    await until('b served by a new generation', () => primary!.holder.current().upstreams[SERVICE]?.servers.length === 2, 20_000);
    const servedAt = Date.now();
    const p = await until('the swap timed', async () => {
      const p = await scrape();
      return (value(p, 'balancer_table_change_to_swap_seconds') ?? 0) >= 1 ? p : undefined;
    });
    const h = p.find((f) => f.name === 'balancer_table_change_to_swap_seconds')!;
    assert.equal(h.type, 'HISTOGRAM');
    assert.equal(Number(h.metrics[0].count), 1);
    const seconds = Number(h.metrics[0].sum);
    assert.ok(seconds > 0 && seconds <= (servedAt - registeredAt) / 1000 + 0.05, `change -> swap ${seconds} s, registration -> served ${(servedAt - registeredAt) / 1000} s`);
    assert.equal(value(p, 'balancer_reloads_total'), 1);
  } finally {
    await primary?.stop();
    await agent.close();
    a.server.close();
    b.server.close();
    await rm(outDir, { recursive: true, force: true });
    await scope.clean(consul);
    await consul.close();
  }
});
