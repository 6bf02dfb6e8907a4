// Harness side of the load client: run it as its own process for a bounded time, parse its report.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec } from './load-types.js';
import { waitForLine, type ProcessSet } from './processes.js';

export interface LoadRun {
  /** resolves when the warm-up is over and the measured phase starts */
  readonly measuring: Promise<void>;
  readonly result: Promise<LoadResult>;
}

export function startLoad(processes: ProcessSet, spec: LoadSpec): LoadRun {
  const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-client.js');
  const proc = processes.spawn('load-client', process.execPath, [entry, JSON.stringify(spec)]);
  const measuring = waitForLine(proc, (l) => l === 'LOAD_MEASURING', (spec.warmupS + 15) * 1000).then(() => undefined);
  measuring.catch(() => undefined);
  return { measuring, result: collect(proc, spec) };
}

async function collect(proc: ReturnType<ProcessSet['spawn']>, spec: LoadSpec): Promise<LoadResult> {
  // bound: warm-up + duration + one request timeout + start-up slack
  const boundMs = (spec.warmupS + spec.durationS) * 1000 + spec.timeoutMs + 15_000;
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    proc.exited,
    new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), boundMs); }),
  ]);
  clearTimeout(timer);
  await proc.stop(1000);
  const line = proc.output().split('\n').find((l) => l.startsWith('LOAD_JSON '));
  if (code === 'timeout' || !line) throw new Error(`load client failed (${String(code)}):\n${proc.output().slice(-2000)}`);
  return JSON.parse(line.slice('LOAD_JSON '.length)) as LoadResult;
}
