// Harness side of the load client: run it as its own process for a bounded time, parse its report.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult, LoadSpec } from './load-types.js';
import type { ProcessSet } from './processes.js';

export async function runLoad(processes: ProcessSet, spec: LoadSpec): Promise<LoadResult> {
  const entry = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-client.js');
  const proc = processes.spawn('load-client', process.execPath, [entry, JSON.stringify(spec)]);
  // bound: duration + one request timeout + start-up slack
  const boundMs = spec.durationS * 1000 + spec.timeoutMs + 15_000;
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
