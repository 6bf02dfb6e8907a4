// `--consul-watch per-service` at start: every service's first read is a plain read, a whole answer at
// once. Against an agent that answers one read at a time (a busy agent: answers come at its rate, however
// many are asked for), the watcher keeps no more plain reads in flight than the agent answers in a quarter
// of the read deadline (per-service/read-gate.ts, stream-schedule.ts plainReadLimit): here one answer per
// 5 ms and a 1 s deadline, 50 (75 if answers arrive bunched), so none waits behind hundreds of others past
// its deadline. Measured before the gate: 5,000 services
// x 10 at load 22, all 5,000 first reads sent together, each outlived its 30 s deadline, was retried, and
// the table never filled (10,074 of 15,046 reads failed in 111 s).
// The agent here is the test's own HTTP/2 server (the property is the client's; the double answers
// reads concurrently): catalog/services names the services, a health read without an index is queued and
// answered in turn every few ms, a query with an index is held and never answered.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import pino from 'pino';
import { watchConsulPerService, type PerServiceWatcher } from '../../balancer/src/discovery/per-service/watch.js';
import { until } from '../support/poll.js';
import { makeTestCa } from '../support/tls-certs.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const SERVICES = 300;
const ANSWER_EVERY_MS = 5;

interface SerialAgent {
  readonly url: string;
  /** plain health reads open at once, at most (streams opened and not yet closed) */
  readonly peakPlainReads: () => number;
  readonly plainReads: () => number;
  close(): Promise<void>;
}

async function startSerialAgent(cert: string, key: string, names: readonly string[]): Promise<SerialAgent> {
  let open = 0;
  let peak = 0;
  let reads = 0;
  const queue: Array<{ stream: http2.ServerHttp2Stream; name: string }> = [];
  const held = new Set<http2.ServerHttp2Stream>();
  const answer = (stream: http2.ServerHttp2Stream, index: number, body: unknown) => {
    if (stream.closed || stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-consul-index': String(index) });
    stream.end(JSON.stringify(body));
  };
  // one answer at a time, in order, each costing the agent its turn even when the client gave up on it
  const timer = setInterval(() => {
    const next = queue.shift();
    if (next) {
      answer(next.stream, 10, [{ Node: { Node: 'n1', Address: '127.0.0.1' }, Service: { ID: `${next.name}-1`, Service: next.name, Address: '127.0.0.1', Port: 20_000, Tags: [] }, Checks: [{ CheckID: 'serfHealth', Status: 'passing' }] }]);
    }
  }, ANSWER_EVERY_MS);
  const server = http2.createSecureServer({ cert, key, settings: { maxConcurrentStreams: 250 } });
  server.on('stream', (stream, headers) => {
    const url = new URL(String(headers[':path']), 'https://agent');
    const blocking = Number(url.searchParams.get('index') ?? 0) > 0;
    stream.on('error', () => undefined);
    if (url.pathname === '/v1/catalog/services') {
      if (blocking) held.add(stream);
      else answer(stream, 5, Object.fromEntries(names.map((n) => [n, []])));
      return;
    }
    const m = /^\/v1\/health\/service\/(.+)$/.exec(url.pathname);
    if (!m) {
      stream.respond({ ':status': 404 });
      stream.end();
      return;
    }
    if (blocking) {
      held.add(stream);
      stream.once('close', () => held.delete(stream));
      return;
    }
    reads++;
    open++;
    if (open > peak) peak = open;
    stream.once('close', () => open--);
    queue.push({ stream, name: decodeURIComponent(m[1]) });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    peakPlainReads: () => peak,
    plainReads: () => reads,
    async close() {
      clearInterval(timer);
      for (const s of held) s.close();
      for (const q of queue) q.stream.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test(`per-service at start: ${SERVICES} first reads to an agent answering one every ${ANSWER_EVERY_MS} ms, at most 100 in flight, every service in the first table`, { timeout: 120_000 }, async (t) => {
  const ca = await makeTestCa('per-service-first-reads');
  const pem = await ca.issue(['localhost'], { extraIps: ['127.0.0.1'] });
  const names = Array.from({ length: SERVICES }, (_, i) => `svc${i}`);
  const agent = await startSerialAgent(pem.cert, pem.key, names);
  const ac = new AbortController();
  let watcher: PerServiceWatcher | undefined;
  t.after(async () => {
    ac.abort();
    await watcher?.done;
    await agent.close();
    await ca.close();
  });
  watcher = watchConsulPerService({
    endpoint: { baseUrl: agent.url }, ca: ca.cert, waitMs: 60_000, minQueryIntervalMs: 5, debounceMs: 2, maxConns: 16, readTimeoutMs: 1_000,
    logger, onSnapshot: () => undefined,
  }, ac.signal);
  const w = watcher;
  await w.ready;
  await until('every service in the table', () => Object.keys(w.current()?.services ?? {}).length === SERVICES, 60_000);
  const stats = w.perServiceStats();
  t.diagnostic(`plain reads ${agent.plainReads()}, peak in flight at the agent ${agent.peakPlainReads()}, watcher errors ${w.stats().errors} (${JSON.stringify(stats.errorCodes)})`);
  assert.ok(agent.peakPlainReads() <= 100, `at most 100 plain reads open at the agent at once, saw ${agent.peakPlainReads()} (gate ${JSON.stringify(stats.plainReads)})`);
  assert.ok(stats.plainReads.peak <= stats.plainReads.peakLimit, `the gate held its limit: ${JSON.stringify(stats.plainReads)}`);
});
