// PNG of latency over time with gnuplot (Debian: apt-get install -y gnuplot-nox): one panel per churn
// rate, one colour per target, p99 solid, p50 dashed, crosses on seconds that had failed requests.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TargetName } from './targets.js';

const COLOURS: Record<TargetName, string> = { dynamic: '#1b9e77', reload: '#d95f02', nginx: '#7570b3' };

export function gnuplotAvailable(): boolean {
  try {
    execFileSync('gnuplot', ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;

export function chartScript(png: string, seriesDir: string, rates: readonly number[], targets: readonly TargetName[]): string {
  const lines = [
    `set terminal pngcairo size 1300,${Math.max(1, rates.length) * 300 + 60} font ',10'`,
    `set output ${quote(png)}`,
    "set datafile missing '?'",
    `set multiplot layout ${rates.length},1 title 'latency per second under Consul churn (ms, log scale): p99 solid, p50 dashed, x = second with failed requests'`,
    'set logscale y',
    'set grid',
    'set key outside right top',
    "set xlabel 'second of the run'",
    "set ylabel 'ms'",
  ];
  for (const rate of rates) {
    lines.push(`set title ${quote(rate === 0 ? 'no churn (baseline)' : `${rate} Consul changes per second`)}`);
    const plots: string[] = [];
    for (const t of targets) {
      const file = path.join(seriesDir, `rate${rate}-${t}.dat`);
      if (!existsSync(file)) continue;
      const c = COLOURS[t];
      plots.push(`${quote(file)} using 1:3 with lines lw 2 lc rgb '${c}' title '${t} p99'`);
      plots.push(`${quote(file)} using 1:2 with lines dt 2 lw 1 lc rgb '${c}' title '${t} p50'`);
      plots.push(`${quote(file)} using 1:($5 > 0 ? $4 : 1/0) with points pt 2 ps 1.2 lc rgb '${c}' title '${t} failures'`);
    }
    if (plots.length === 0) lines.push("set label 1 'no data' at graph 0.5,0.5 center", 'plot 1/0 notitle', 'unset label 1');
    else lines.push(`plot ${plots.join(', \\\n     ')}`);
  }
  lines.push('unset multiplot', '');
  return lines.join('\n');
}

/** Writes the PNG; resolves with its path, or with undefined and a reason when gnuplot is missing/fails. */
export function drawChart(outDir: string, seriesDir: string, rates: readonly number[], targets: readonly TargetName[]): Promise<{ png?: string; why?: string }> {
  if (!gnuplotAvailable()) return Promise.resolve({ why: 'gnuplot not installed (Debian: apt-get install -y gnuplot-nox): chart skipped' });
  const png = path.join(outDir, 'compare-modes-latency.png');
  const script = path.join(outDir, 'compare-modes-latency.gp');
  writeFileSync(script, chartScript(png, seriesDir, rates, targets));
  return new Promise((resolve) => {
    execFile('gnuplot', [script], { timeout: 30_000 }, (err, _out, stderr) => {
      if (err) resolve({ why: `gnuplot failed: ${err.message} ${stderr.slice(0, 500)}` });
      else resolve({ png });
    });
  });
}
