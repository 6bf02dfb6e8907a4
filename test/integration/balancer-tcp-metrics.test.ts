// GET /metrics after real TCP connections and refused requests (primary + 2 workers, Consul double or
// a real agent): a TCP echo service (proto=tcp) reached from 127.0.0.2 (relayed) and 127.0.0.3
// (deny=: closed), an HTTP service denying 127.0.0.3 (403) and one with rate=1/s (429s). The
// counters summed over both workers are exactly what the clients saw: connections by result, bytes
// each way, the duration histogram's count, the open gauge while one connection is held, and the
// denied / limited counts by service and protocol. In process: a server refusing every connect counts
// one connect error per try and the connection as all-failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createRequire } from 'node:module';
import pino from 'pino';
import { request } from 'undici';
import { startPrimary } from '../../balancer/src/cluster/primary.js';
import { balancerConfig } from '../support/balancer-config.js';
import { consulForTest, testScope, type ConsulTarget } from '../support/consul.js';
import { freePort } from '../support/free-port.js';
import { startNamedBackend } from '../support/http-backend.js';
import { until, untilRetryingErrors } from '../support/poll.js';

interface ParsedMetric { name: string; type: string; metrics: { labels?: Record<string, string>; value?: string; count?: string; sum?: string }[] }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => ParsedMetric[];
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

async function register(consul: ConsulTarget, id: string, name: string, port: number, tags: string[]): Promise<void> {
  const headers: Record<string, string> = process.env.CONSUL_HTTP_TOKEN ? { 'x-consul-token': process.env.CONSUL_HTTP_TOKEN } : {};
  const res = await request(`${consul.url}/v1/agent/service/register`, {
    method: 'PUT', headers, body: JSON.stringify({ ID: id, Name: name, Address: '127.0.0.1', Port: port, Tags: tags }), signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.statusCode, 200, await res.body.text());
}

/** A TCP connection from `from` that sends "ping" and waits for its echo; held open while `hold` is given. */
function ping(from: string, port: number, hold?: Promise<void>): Promise<'ping' | 'closed'> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let text = '';
    s.setEncoding('utf8');
    s.setTimeout(5000, () => s.destroy());
    s.on('data', (d: string) => {
      text += d;
      if (text !== 'ping') return;
      resolve('ping');
      if (hold) void hold.then(() => s.end()); else s.end();
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(text === 'ping' ? 'ping' : 'closed'));
    s.write('ping');
  });
}

test('TCP and refusal metrics: connections by result, bytes, durations, open gauge, denied and limited by service and protocol', { timeout: 90_000 }, async () => {
  const consul = await consulForTest();
  const scope = testScope();
  const [db, web, rated] = [scope.name('db'), scope.name('web'), scope.name('rated')];
  const backend = await startNamedBackend('web');
  const echo = net.createServer((s) => { s.on('error', () => undefined); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const tcpPort = await freePort();
  let primary: Awaited<ReturnType<typeof startPrimary>> | undefined;
  try {
    await register(consul, scope.id('db1'), db, (echo.address() as net.AddressInfo).port, ['proto=tcp', `urlprefix-:${tcpPort}`, 'deny=ip:127.0.0.3']);
    await register(consul, scope.id('web1'), web, backend.port, ['deny=ip:127.0.0.3']);
    await register(consul, scope.id('rated1'), rated, backend.port, ['rate=1/s', 'burst=1']);
    primary = await startPrimary(balancerConfig(['--consul', consul.addr, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '2',
      '--consul-wait', '2s', '--log-level', 'warn', '--tcp-ports', `${tcpPort}`]), logger);
    const proxyPort = primary.proxy.port;
    const admin = `http://127.0.0.1:${primary.admin.port}`;
    const holder = primary.holder;
    await until('services in the table', () => [db, web, rated].every((n) => holder.current().upstreams[n] !== undefined), 8000);
    await untilRetryingErrors('tcp port open', async () => (await ping('127.0.0.2', tcpPort)) === 'ping', 8000, 50);
    const scrape = async (): Promise<ParsedMetric[]> => {
      const res = await request(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.statusCode, 200);
      return parsePrometheus(await res.body.text());
    };
    const metric = (parsed: ParsedMetric[], name: string, labels: Record<string, string>) =>
      parsed.find((f) => f.name === name)?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
    const value = (parsed: ParsedMetric[], name: string, labels: Record<string, string>) => Number(metric(parsed, name, labels)?.value ?? 0);

    // the first relayed connection above may have come after failed tries while the port opened: count from here
    const before = await until('the first relayed connection reported', async () => {
      const p = await scrape();
      return value(p, 'balancer_tcp_connections_total', { service: db, result: 'relayed' }) >= 1 ? p : undefined;
    }, 10_000);
    const relayed0 = value(before, 'balancer_tcp_connections_total', { service: db, result: 'relayed' });
    const in0 = value(before, 'balancer_tcp_received_bytes_total', { service: db });
    const out0 = value(before, 'balancer_tcp_sent_bytes_total', { service: db });
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    assert.equal(await ping('127.0.0.2', tcpPort, held), 'ping', 'held connection relayed');
    for (let i = 0; i < 4; i++) assert.equal(await ping('127.0.0.2', tcpPort), 'ping');
    for (let i = 0; i < 2; i++) assert.equal(await ping('127.0.0.3', tcpPort), 'closed', 'denied address closed');
    await until('the held connection is counted open', async () => value(await scrape(), 'balancer_tcp_open_connections', { service: db }) === 1, 10_000);

    /** one request on a new connection from `from`: its status */
    const get = (host: string, from: string): Promise<number> => new Promise((resolve, reject) => {
      const s = net.connect({ port: proxyPort, host: '127.0.0.1', localAddress: from });
      let text = '';
      s.setEncoding('latin1');
      s.setTimeout(5000, () => { s.destroy(); reject(new Error('no answer in 5 s')); });
      s.on('data', (d: string) => { text += d; });
      s.on('error', () => undefined);
      s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
      s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    for (let i = 0; i < 3; i++) assert.equal(await get(web, '127.0.0.3'), 403);
    let limited = 0;
    for (let i = 0; i < 8; i++) if ((await get(rated, '127.0.0.2')) === 429) limited++;
    assert.ok(limited > 0, 'rate=1/s: some of 8 quick requests answered 429');

    release();
    const relayed = relayed0 + 5;
    await until('every figure reported', async () => {
      const p = await scrape();
      return value(p, 'balancer_tcp_connections_total', { service: db, result: 'relayed' }) === relayed
        && value(p, 'balancer_tcp_open_connections', { service: db }) === 0
        && value(p, 'balancer_rate_limited_total', { service: rated, protocol: 'http' }) === limited
        && value(p, 'balancer_access_denied_total', { service: web, protocol: 'http' }) === 3;
    }, 15_000).catch(async (err: Error) => {
      const text = await (await request(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).body.text();
      throw new Error(`${err.message}; expected relayed=${relayed} limited=${limited}; got:\n${text.split('\n').filter((l) => /^balancer_(tcp_(connections_total|open)|access_denied|rate_limited)/.test(l)).join('\n')}`);
    });
    const p = await scrape();
    assert.equal(value(p, 'balancer_tcp_connections_total', { service: db, result: 'denied' }), 2, 'denied connections by result');
    assert.equal(value(p, 'balancer_access_denied_total', { service: db, protocol: 'tcp' }), 2, 'denied TCP connections');
    assert.equal(value(p, 'balancer_access_denied_total', { service: web, protocol: 'http' }), 3);
    assert.equal(value(p, 'balancer_rate_limited_total', { service: rated, protocol: 'http' }), limited, 'every 429 the client saw');
    assert.equal(value(p, 'balancer_rate_limited_total', { service: web, protocol: 'http' }), 0);
    // every relayed connection sent "ping" and got it back; the denied ones were closed before a byte was read
    assert.equal(value(p, 'balancer_tcp_received_bytes_total', { service: db }) - in0, 4 * 5);
    assert.equal(value(p, 'balancer_tcp_sent_bytes_total', { service: db }) - out0, 4 * 5);
    assert.equal(value(p, 'balancer_tcp_connect_errors_total', { service: db }), 0, 'the echo server never refused');
    const total = (p.find((f) => f.name === 'balancer_tcp_connections_total')?.metrics ?? []).filter((m) => m.labels?.service === db).reduce((n, m) => n + Number(m.value), 0);
    // the parser keeps no labels of a histogram's samples: its _count line is read off the text
    const text = await (await request(`${admin}/metrics`, { signal: AbortSignal.timeout(5000) })).body.text();
    const count = new RegExp(`^balancer_tcp_connection_duration_seconds_count\\{service="${db}"\\} (\\d+)$`, 'm').exec(text)?.[1];
    assert.equal(Number(count), total, 'one duration per ended connection');
    assert.match(text, new RegExp(`^balancer_tcp_connection_duration_seconds_bucket\\{service="${db}",le="0\\.01"\\} \\d+$`, 'm'));
  } finally {
    await primary?.stop();
    await scope.clean(consul);
    backend.server.closeAllConnections();
    backend.server.close();
    echo.close();
    await consul.close();
  }
});

test('TCP connect errors: a server refusing every connect is counted once per try, the connection as all-failed', async () => {
  const { createWorkerRuntime } = await import('../../balancer/src/proxy/proxy-runtime.js');
  const { tableFromUpstreams } = await import('../../balancer/src/routing/build-table.js');
  const { DEFAULT_TABLE_DEFAULTS } = await import('../../balancer/src/routing/tag-options.js');
  const { RequestMetrics } = await import('../../balancer/src/metrics/request-metrics.js');
  const [tcp, dead] = [await freePort(), await freePort()];
  const metrics = new RequestMetrics({ bucketsSeconds: [1], maxServersPerService: 10 });
  const rt = createWorkerRuntime({
    logger, accessLog: false, maxConnectionsPerServer: 8, observer: metrics,
    timeouts: { connectMs: 1000, headersMs: 5000, idleMs: 5000, clientKeepAliveMs: 1000 },
    l4: { tcpPorts: { from: tcp, to: tcp }, tcpHost: '127.0.0.1', idleMs: 60_000, drainMs: 1000, proxyProtocolFrom: [] },
  });
  try {
    rt.applyTable(tableFromUpstreams({
      dead: {
        name: 'dead', algorithm: 'roundrobin', origin: 'admin', retry: { ...DEFAULT_TABLE_DEFAULTS.retry, tries: 2 }, protocol: 'tcp', listen: [{ port: tcp }],
        // maxFails 0: never ejected, so every connection tries it
        servers: [{ id: `127.0.0.1:${dead}`, host: '127.0.0.1', port: dead, weight: 1, maxFails: 0, failTimeoutMs: 10_000, down: false, backup: false }],
      },
    }, []));
    await untilRetryingErrors('tcp port open', () => new Promise<boolean>((resolve, reject) => {
      const s = net.connect({ port: tcp, host: '127.0.0.1' }, () => resolve(true));
      s.on('error', reject);
      s.on('close', () => resolve(true));
    }), 5000, 50);
    for (let i = 0; i < 3; i++) assert.equal(await ping('127.0.0.1', tcp), 'closed');
    // the port probe above counts too: 4 connections, each with the one try there was (the only server, tried once)
    const results: Record<string, number> = {};
    let connectErrors = 0;
    await until('4 connections ended', () => {
      for (const t of metrics.edge.takeDelta().tcp ?? []) {
        assert.equal(t.name, 'dead');
        for (const [r, n] of t.results) results[r] = (results[r] ?? 0) + n;
        connectErrors += t.connectErrors;
      }
      return Object.values(results).reduce((a, b) => a + b, 0) >= 4;
    }, 5000);
    assert.deepEqual(results, { 'all-failed': 4 });
    assert.equal(connectErrors, 4, 'one failed connect per connection');
    assert.deepEqual(metrics.edge.openTcp(), [], 'nothing open');
  } finally {
    await rt.close();
  }
});
