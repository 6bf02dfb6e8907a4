// Load generator process: a fixed number of keep-alive connections, each sending one request at a
// time, paced to a total rate (rps > 0) or as fast as answers come (rps = 0). Latency is counted from
// the actual send, as wrk does (on a loaded 2-core box the client's own timer lag must not count as the
// proxy's); paced runs also report figures from the scheduled send (wrk2's coordinated-omission
// correction: a stall is charged to every request it delayed). Prints one `LOAD_JSON {...}` line.
//   node dist/bench/compare/load-client.js '<json LoadSpec>'
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { summarize } from './stats.js';
import type { LoadResult, LoadSecond, LoadSpec } from './load-types.js';

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const url = new URL(spec.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections, maxFreeSockets: spec.connections });

interface Bucket {
  latencies: number[];
  ok: number;
  non2xx: number;
  errors: number;
  resets: number;
}
// figures of the current phase; the warm-up phase's are thrown away
function newTally() {
  return {
    buckets: [] as Bucket[],
    errorCodes: {} as Record<string, number>,
    all: [] as number[],
    allFromSchedule: [] as number[],
    ok: 0,
    non2xx: 0,
    errors: 0,
    resets: 0,
    unsent: 0,
  };
}
let tally = newTally();

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE']);

function bucketAt(t: number): Bucket {
  const i = Math.max(0, Math.floor(t / 1000));
  const { buckets } = tally;
  while (buckets.length <= i) buckets.push({ latencies: [], ok: 0, non2xx: 0, errors: 0, resets: 0 });
  return buckets[i];
}

function once(): Promise<{ status?: number; code?: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (r: { status?: number; code?: string }): void => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    const req = http.request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: 'GET', headers: { host: spec.host } },
      (res) => {
        res.on('error', (err: NodeJS.ErrnoException) => settle({ code: err.code ?? 'EBODY' }));
        res.on('end', () => settle({ status: res.statusCode }));
        res.resume();
      },
    );
    req.setTimeout(spec.timeoutMs, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => settle({ code: err.code ?? 'EUNKNOWN' }));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function connectionLoop(index: number, t0: number, endAt: number): Promise<void> {
  const paced = spec.rps > 0;
  const intervalMs = paced ? (1000 * spec.connections) / spec.rps : 0;
  let scheduled = t0 + (paced ? (index * intervalMs) / spec.connections : 0);
  // bounded: one request per interval until the deadline (or as fast as answers come, still until it)
  for (let n = 0; n < 10_000_000; n++) {
    const now = performance.now();
    // a run never outlasts its duration: requests still due when it ends are counted as unsent
    if (now >= endAt || (paced && scheduled >= endAt)) {
      if (paced) tally.unsent += Math.max(0, Math.ceil((endAt - scheduled) / intervalMs));
      return;
    }
    if (paced && scheduled > now) await sleep(scheduled - now);
    // a timer may fire up to 1 ms early (whole-ms timers): never count from before the actual send
    const sentAt = performance.now();
    const scheduledAt = paced ? Math.min(scheduled, sentAt) : sentAt;
    const r = await once();
    const doneAt = performance.now();
    const b = bucketAt(doneAt - t0);
    const t = tally;
    if (r.code !== undefined) {
      t.errors++;
      b.errors++;
      t.errorCodes[r.code] = (t.errorCodes[r.code] ?? 0) + 1;
      if (RESET_CODES.has(r.code)) {
        t.resets++;
        b.resets++;
      }
    } else {
      const latency = doneAt - sentAt;
      b.latencies.push(latency);
      t.all.push(latency);
      t.allFromSchedule.push(doneAt - scheduledAt);
      if (r.status !== undefined && r.status >= 200 && r.status < 300) {
        t.ok++;
        b.ok++;
      } else {
        t.non2xx++;
        b.non2xx++;
      }
    }
    if (paced) scheduled += intervalMs;
  }
}

const runPhase = (t0: number, durationS: number): Promise<void[]> =>
  Promise.all(Array.from({ length: spec.connections }, (_, i) => connectionLoop(i, t0, t0 + durationS * 1000)));

async function main(): Promise<void> {
  // warm-up on the same connections (JIT, keep-alive pools), then the harness starts churn on this line
  if (spec.warmupS > 0) await runPhase(performance.now(), spec.warmupS);
  tally = newTally();
  process.stdout.write('LOAD_MEASURING\n');
  const t0 = performance.now();
  const startedAt = performance.timeOrigin + t0;
  await runPhase(t0, spec.durationS);
  const elapsedS = (performance.now() - t0) / 1000;
  const { ok, non2xx, errors, resets, unsent, errorCodes } = tally;
  const total = summarize(tally.all);
  const fromSchedule = summarize(tally.allFromSchedule);
  const series: LoadSecond[] = tally.buckets.map((b, second) => {
    const s = summarize(b.latencies);
    return { second, ok: b.ok, non2xx: b.non2xx, errors: b.errors, resets: b.resets, p50: s.p50, p99: s.p99, max: s.max };
  });
  const result: LoadResult = {
    startedAt,
    elapsedS,
    requests: ok + non2xx + errors,
    ok,
    non2xx,
    errors,
    resets,
    unsent,
    errorCodes,
    rps: (ok + non2xx) / elapsedS,
    p50: total.p50,
    p99: total.p99,
    max: total.max,
    fromSchedule: { p50: fromSchedule.p50, p99: fromSchedule.p99, max: fromSchedule.max },
    series,
  };
  process.stdout.write(`LOAD_JSON ${JSON.stringify(result)}\n`);
  agent.destroy();
}

process.on('SIGTERM', () => process.exit(1));
await main();
