// Run results -> the printed table, the raw series (JSON + CSV) and the per-second rows the chart plots.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ChurnResult } from './churn.js';
import type { LoadResult } from './load-types.js';
import type { ProcSample } from './proc-sampler.js';
import { percentile, round } from './stats.js';
import type { TargetName } from './targets.js';

export interface RunResult {
  readonly target: TargetName;
  /** churn rate, changes per second; 0 = no-churn baseline */
  readonly rate: number;
  readonly command?: string;
  readonly load?: LoadResult;
  readonly churn?: ChurnResult;
  readonly procSamples?: readonly ProcSample[];
  /** CPU seconds the target's processes used during the measured run */
  readonly cpuS?: number;
  /** machine 1-minute load average at the start and end of the run (the box is shared) */
  readonly loadAvg?: readonly [number, number];
  readonly error?: string;
}

export interface SeriesRow {
  readonly target: TargetName;
  readonly rate: number;
  readonly second: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly resets: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
  readonly workers: number | null;
}

const num = (v: number | null | undefined): number | null => (v === null || v === undefined || !Number.isFinite(v) ? null : v);

export function seriesRows(run: RunResult): SeriesRow[] {
  if (!run.load) return [];
  const workersBySecond = new Map<number, number>();
  for (const s of run.procSamples ?? []) {
    const sec = Math.floor(s.t);
    workersBySecond.set(sec, Math.max(workersBySecond.get(sec) ?? 0, s.workers));
  }
  return run.load.series.map((s) => ({
    target: run.target,
    rate: run.rate,
    second: s.second,
    ok: s.ok,
    non2xx: s.non2xx,
    errors: s.errors,
    resets: s.resets,
    p50: num(s.p50),
    p99: num(s.p99),
    max: num(s.max),
    workers: workersBySecond.get(s.second) ?? null,
  }));
}

/** follow times; a probe never served counts as +Infinity (shown as >timeout) */
export function followFigures(churn: ChurnResult | undefined): { p50?: number; p99?: number; hit: number; total: number } {
  const probes = churn?.probes ?? [];
  const times = probes.map((p) => p.followMs ?? Infinity).sort((a, b) => a - b);
  const hit = times.filter(Number.isFinite).length;
  return { p50: times.length ? percentile(times, 50) : undefined, p99: times.length ? percentile(times, 99) : undefined, hit, total: probes.length };
}

function fmtFollow(v: number | undefined, timeoutMs: number): string {
  if (v === Infinity) return `>${timeoutMs}`;
  return fmt(v, 0);
}

export function workersPeak(run: RunResult): number | undefined {
  const samples = run.procSamples ?? [];
  return samples.length ? Math.max(...samples.map((s) => s.workers)) : undefined;
}

export const PROBE_TIMEOUT_MS = 10_000;

const COLUMNS = [
  'target', 'churn/s', 'changes', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'failed', 'resets', 'workers peak', 'CPU s', 'follow p50 ms', 'follow p99 ms', 'probes',
] as const;

function fmt(v: number | undefined | null, digits = 1): string {
  return v === undefined || v === null || !Number.isFinite(v) ? '-' : String(round(v, digits));
}

export function tableRows(runs: readonly RunResult[]): string[][] {
  return runs.map((r) => {
    if (!r.load) return [r.target, r.rate === 0 ? 'none' : String(r.rate), ...COLUMNS.slice(2).map(() => 'FAILED')];
    const f = followFigures(r.churn);
    return [
      r.target,
      r.rate === 0 ? 'none' : String(r.rate),
      String(r.churn?.changes ?? 0),
      fmt(r.load.rps, 0),
      fmt(r.load.p50, 2),
      fmt(r.load.p99, 2),
      fmt(r.load.max, 1),
      String(r.load.errors + r.load.non2xx),
      String(r.load.resets),
      fmt(workersPeak(r), 0),
      fmt(r.cpuS, 1),
      fmtFollow(f.p50, PROBE_TIMEOUT_MS),
      fmtFollow(f.p99, PROBE_TIMEOUT_MS),
      f.total ? `${f.hit}/${f.total}` : '-',
    ];
  });
}

export function formatTable(runs: readonly RunResult[]): string {
  const rows = [COLUMNS.slice() as string[], ...tableRows(runs)];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => (i < 1 ? c.padEnd(widths[i]) : (c ?? '').padStart(widths[i]))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i < 1 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(rows[0]), sep, ...rows.slice(1).map(line)].join('\n');
}

export interface WrittenFiles {
  readonly json: string;
  readonly csv: string;
  readonly seriesDir: string;
}

/** chartSeconds: the chart files stop before this second (the last, partial second would mislead) */
export function writeRaw(outDir: string, meta: Record<string, unknown>, runs: readonly RunResult[], chartSeconds = Infinity): WrittenFiles {
  mkdirSync(outDir, { recursive: true });
  const json = path.join(outDir, 'compare-modes.json');
  writeFileSync(json, `${JSON.stringify({ ...meta, runs }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  const rows = runs.flatMap(seriesRows);
  const header = 'target,rate,second,ok,non2xx,errors,resets,p50_ms,p99_ms,max_ms,workers';
  const csvText = [header, ...rows.map((r) => [r.target, r.rate, r.second, r.ok, r.non2xx, r.errors, r.resets, r.p50 ?? '', r.p99 ?? '', r.max ?? '', r.workers ?? ''].join(','))].join('\n');
  const csv = path.join(outDir, 'compare-modes-series.csv');
  writeFileSync(csv, `${csvText}\n`);
  // one whitespace-separated file per (rate, target) for gnuplot; '?' marks a second without answers
  const seriesDir = path.join(outDir, 'series');
  mkdirSync(seriesDir, { recursive: true });
  for (const run of runs) {
    const data = seriesRows(run).filter((r) => r.second < chartSeconds).map((r) => `${r.second} ${r.p50 ?? '?'} ${r.p99 ?? '?'} ${r.max ?? '?'} ${r.errors + r.non2xx} ${r.workers ?? '?'}`);
    writeFileSync(path.join(seriesDir, `rate${run.rate}-${run.target}.dat`), `# second p50_ms p99_ms max_ms failed workers\n${data.join('\n')}\n`);
  }
  return { json, csv, seriesDir };
}

/** one line per run with what the table leaves out: error codes, scheduled-send latency, churn health */
export function formatNotes(runs: readonly RunResult[]): string[] {
  return runs.map((r) => {
    const name = `${r.target} @ ${r.rate === 0 ? 'no churn' : `${r.rate}/s`}`;
    if (!r.load) return `  ${name}: FAILED: ${(r.error ?? '?').split('\n').slice(0, 3).join(' / ').slice(0, 300)}`;
    const load = r.load;
    const codes = Object.entries(load.errorCodes).map(([c, n]) => `${c} ${n}`).join(', ');
    const parts = [
      `load avg ${fmt(r.loadAvg?.[0], 1)}->${fmt(r.loadAvg?.[1], 1)}`,
      `from scheduled send p99 ${fmt(load.fromSchedule.p99, 2)} ms max ${fmt(load.fromSchedule.max, 1)} ms`,
      `non-2xx ${load.non2xx}`,
      `unsent (fell behind) ${load.unsent}`,
      codes ? `errors ${codes}` : 'no transport errors',
    ];
    if (r.churn && r.rate > 0) {
      parts.push(`churn failed calls ${r.churn.failedChanges}, late ticks ${r.churn.lateTicks}`);
      const missed = r.churn.probes.filter((p) => p.followMs === undefined).length;
      if (missed) parts.push(`${missed} probe(s) never served within ${PROBE_TIMEOUT_MS / 1000} s`);
    }
    return `  ${name}: ${parts.join('; ')}`;
  });
}
