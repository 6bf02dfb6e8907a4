// Side by side: our balancer's dynamic mode, its reload mode, and Debian nginx driven by our renderer
// (`nginx -s reload` on every change), under a constant bounded load while Consul churns at a fixed rate.
// Prints one table, writes the raw series to bench/out/ and a PNG chart. A benchmark: it never asserts.
//
//   npm run build && node dist/bench/compare-modes.js [--rates 1,10,50] [--duration 20]
//        [--rps 500] [--connections 16] [--workers 2] [--targets dynamic,reload,nginx]
//        [--probe-every 3] [--pool 12] [--initial 6] [--out bench/out] [--no-baseline]
//        [--balancer-flags "--debounce 100ms"]   (appended to our balancer's command line, both modes)
//
// Needs: wrk is NOT used (per-second series come from our own load client, bench/compare/load-client.ts);
// nginx (Debian package `nginx`, run as our own foreground process under a temp prefix on 127.0.0.1);
// gnuplot for the chart (Debian: `apt-get install -y gnuplot-nox`; without it the chart is skipped).
//
// Per run (one target, one churn rate; the target is started fresh for every run):
//  - the Consul double (one process for the whole comparison) gets the service reset to `--initial` of
//    `--pool` loopback backends (one backend process, each port answers its own id);
//  - the load client keeps `--connections` keep-alive connections at `--rps` requests/s in total for
//    `--duration` s (latency from the scheduled send time, so stalls count), Host: web;
//  - the churn driver registers/deregisters one instance per 1/rate s through /v1/agent/service/*,
//    keeping >= 2 registered; every `--probe-every` s one add is a never-used port ("probe"), and the time
//    from its registration to the first request it serves is "follow";
//  - worker processes (node/nginx in the target's process tree, minus the primary/master) are counted
//    every 100 ms.
// Everything is bounded in time and killed at the end, on error and on SIGINT. Loopback only.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendPool } from './compare/backend-pool.js';
import { drawChart } from './compare/chart.js';
import { registerInitial, runChurn } from './compare/churn.js';
import { ConsulAgent } from './compare/consul-agent.js';
import { startLoad } from './compare/load.js';
import { ProcessSet, waitForLine } from './compare/processes.js';
import { ProcSampler } from './compare/proc-sampler.js';
import { cpuSeconds, loadAverage } from './compare/cpu.js';
import { formatNotes, formatTable, PROBE_TIMEOUT_MS, writeRaw, type RunResult } from './compare/report.js';
import { startTarget, TARGET_NAMES, type RunningTarget, type TargetName } from './compare/targets.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVICE = 'web';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const numberFlag = (name: string, dflt: number): number => {
  const v = flag(name);
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number >= 0, got "${v}"`);
  return n;
};

const durationS = numberFlag('duration', 20);
const rps = numberFlag('rps', 500);
const connections = Math.max(1, numberFlag('connections', 16));
const workers = Math.max(1, numberFlag('workers', 2));
const probeEveryS = Math.max(0.5, numberFlag('probe-every', 3));
const poolSize = Math.max(4, numberFlag('pool', 12));
const initial = Math.min(poolSize, Math.max(2, numberFlag('initial', 6)));
const warmupS = numberFlag('warmup', 2);
const churnRates = (flag('rates') ?? '1,10,50').split(',').map(Number).filter((n) => Number.isFinite(n) && n > 0);
const rates = process.argv.includes('--no-baseline') ? churnRates : [0, ...churnRates];
const targets = (flag('targets') ?? TARGET_NAMES.join(',')).split(',').map((t) => t.trim()) as TargetName[];
for (const t of targets) if (!TARGET_NAMES.includes(t)) throw new Error(`--targets: unknown target "${t}" (${TARGET_NAMES.join(',')})`);
const balancerFlags = (flag('balancer-flags') ?? '').split(/\s+/).filter(Boolean);
const outDir = path.resolve(repoRoot, flag('out') ?? path.join('bench', 'out'));

const processes = new ProcessSet();
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\ninterrupted: stopping every process started\n');
  void processes.stopAll().finally(() => process.exit(130));
});
process.on('SIGTERM', () => void processes.stopAll().finally(() => process.exit(143)));
process.on('exit', () => processes.killAllNow());

const log = (msg: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

async function startConsul(): Promise<{ addr: string }> {
  const cli = path.join(repoRoot, 'dist', 'test', 'support', 'consul-double', 'cli.js');
  const proc = processes.spawn('consul-double', process.execPath, [cli, '--port', '0', '--host', '127.0.0.1']);
  const line = await waitForLine(proc, (l) => l.includes('"listening"'), 15_000);
  const { port } = JSON.parse(line) as { port: number };
  return { addr: `127.0.0.1:${port}` };
}

async function oneRun(
  target: TargetName, rate: number, ctx: { consulAddr: string; agent: ConsulAgent; backends: BackendPool; pool: number[]; seed: number },
): Promise<RunResult> {
  const initialPorts = ctx.pool.slice(0, initial);
  await registerInitial(ctx.agent, SERVICE, initialPorts);
  // fresh ports for this run's probes: each is registered at most once, so its first hit is unambiguous
  const probePorts = rate > 0 ? await ctx.backends.open(Math.ceil(durationS / probeEveryS) + 1) : [];
  let running: RunningTarget | undefined;
  try {
    running = await startTarget(target, { repoRoot, consulAddr: ctx.consulAddr, service: SERVICE, workers, processes, balancerFlags });
    const url = `http://127.0.0.1:${running.port}/`;
    const loadRun = startLoad(processes, { url, host: SERVICE, connections, rps, warmupS, durationS, timeoutMs: 5000 });
    // churn and sampling start with the measured phase (the warm-up runs on the same connections first)
    await Promise.race([loadRun.measuring, loadRun.result]);
    const roots = running.roots;
    const sampler = new ProcSampler(() => roots, 100);
    const cpuBefore = cpuSeconds(running.cpuRoots);
    const loadBefore = loadAverage();
    try {
      const loadPromise = loadRun.result;
      const churnPromise = runChurn({
        agent: ctx.agent, backends: ctx.backends, service: SERVICE, poolPorts: ctx.pool, probePorts,
        ratePerS: rate, durationS: Math.max(0, durationS - 0.5), probeEveryS, probeTimeoutMs: PROBE_TIMEOUT_MS,
        minRegistered: 2, seed: ctx.seed,
      }, initialPorts);
      // both are bounded; wait for both even when one fails so no churn outlives its run
      const [load, churn] = await Promise.allSettled([loadPromise, churnPromise]);
      if (load.status === 'rejected') throw load.reason;
      if (churn.status === 'rejected') throw churn.reason;
      const cpuS = cpuSeconds(running.cpuRoots) - cpuBefore;
      return {
        target, rate, command: running.command, load: load.value, churn: churn.value, procSamples: sampler.stop(),
        cpuS, loadAvg: [loadBefore, loadAverage()],
      };
    } finally {
      sampler.stop();
    }
  } catch (err) {
    return { target, rate, command: running?.command, error: `${(err as Error).message}\n${running?.output().slice(-1500) ?? ''}` };
  } finally {
    await running?.stop();
  }
}

async function main(): Promise<void> {
  const reproduce = `npm run build && node dist/bench/compare-modes.js --rates ${churnRates.join(',')} --duration ${durationS} --rps ${rps} --connections ${connections} --workers ${workers} --targets ${targets.join(',')}${balancerFlags.length ? ` --balancer-flags "${balancerFlags.join(' ')}"` : ''}`;
  const estimateS = rates.length * targets.length * (durationS + warmupS + 6);
  log(`${rates.length * targets.length} runs of ${durationS}s, about ${Math.round(estimateS / 60)} min`);
  mkdirSync(outDir, { recursive: true });
  const consul = await startConsul();
  const agent = new ConsulAgent(`http://${consul.addr}`);
  const backends = BackendPool.start(processes);
  const pool = await backends.open(poolSize);
  log(`consul double at ${consul.addr}, ${pool.length} backends; warming the backends up`);
  // the backend process is shared by every run: warm it (JIT) so the first run does not pay for it
  await startLoad(processes, { url: `http://127.0.0.1:${pool[0]}/`, host: SERVICE, connections, rps, warmupS: 0, durationS: 3, timeoutMs: 5000 }).result;

  const runs: RunResult[] = [];
  // rate-major: the three targets run back to back at each rate, so a noisy minute hits all of them
  for (const rate of rates) {
    for (const target of targets) {
      if (interrupted) break;
      log(`run: ${target}, churn ${rate}/s`);
      const result = await oneRun(target, rate, { consulAddr: consul.addr, agent, backends, pool, seed: 1000 + rate });
      if (result.error) log(`  FAILED: ${result.error.split('\n')[0]}`);
      else log(`  ${Math.round(result.load!.rps)} req/s, p99 ${result.load!.p99.toFixed(2)} ms, resets ${result.load!.resets}, failed ${result.load!.errors + result.load!.non2xx}, changes ${result.churn?.changes ?? 0}`);
      runs.push(result);
    }
  }

  const meta = {
    generatedAt: new Date().toISOString(),
    reproduce,
    settings: { durationS, rps, connections, workers, probeEveryS, poolSize, initial, warmupS, rates, targets, balancerFlags },
    commands: Object.fromEntries(runs.filter((r) => r.command).map((r) => [r.target, r.command])),
  };
  const files = writeRaw(outDir, meta, runs, Math.floor(durationS));
  const chart = await drawChart(outDir, files.seriesDir, rates, targets);

  const out = [
    `# reproduce: ${reproduce}`,
    `# load: ${connections} keep-alive connections, ${rps > 0 ? `${rps} req/s offered, paced (latency from the actual send, as wrk)` : 'closed loop'}, ${durationS} s per run, Host: ${SERVICE}; ${workers} worker(s) per target`,
    `# churn: one register/deregister per 1/rate s over ${poolSize} backends (>= 2 kept); follow = Consul register -> first request on a never-used instance (probe every ${probeEveryS} s)`,
    '# req/s = answered requests per second (below the offered rate when the target fell behind)',
    '# failed = transport errors + non-2xx; resets = ECONNRESET/EPIPE seen by the client; workers peak = node/nginx processes under the primary/master, sampled every 100 ms',
    '# CPU s = CPU seconds of the target during the run (nginx: + the renderer and its reload commands), exited workers included',
    '',
    formatTable(runs),
    '',
    'per run:',
    ...formatNotes(runs),
    '',
    `raw: ${path.relative(repoRoot, files.json)}, ${path.relative(repoRoot, files.csv)}`,
    chart.png ? `chart: ${path.relative(repoRoot, chart.png)}` : `chart: ${chart.why}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  writeFileSync(path.join(outDir, 'compare-modes.txt'), `${out.join('\n')}\n`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`compare-modes failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await processes.stopAll();
}
// every child is gone; do not let a stray handle keep a finished benchmark alive
process.exit(process.exitCode ?? 0);
