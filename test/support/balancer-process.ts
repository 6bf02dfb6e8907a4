// The real balancer program (`node bin/balancer.js`) as a child process: JSON log lines of the
// primary and its workers collected, bounded waits, SIGTERM then SIGKILL on stop, SIGKILL on demand.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { LogLine } from './registrator-process.js';
import { onLines } from './output-lines.js';
import { repoRoot } from './repo-root.js';

export interface BalancerProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  readonly rawOutput: string[];
  readonly exited: Promise<number | null>;
  waitForLog(predicate: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  stop(graceMs?: number): Promise<number | null>;
}

export function spawnBalancer(args: readonly string[], env: NodeJS.ProcessEnv = {}): BalancerProcess {
  const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'balancer.js'), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const rawOutput: string[] = [];
  const onLine = (line: string) => {
    if (!line.trim()) return;
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      rawOutput.push(line);
    }
  };
  for (const stream of [child.stdout!, child.stderr!]) onLines(stream, onLine);
  let done = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { done = true; resolve(code); }));
  return {
    child, logs, rawOutput, exited,
    async waitForLog(predicate, timeoutMs = 15_000, what = 'log line') {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hit = logs.find(predicate);
        if (hit) return hit;
        if (done) throw new Error(`balancer exited before ${what}; output: ${rawOutput.slice(-5).join(' | ')}`);
        // what the process said last is the cause, whatever it is (a bare "timed out" left none to find)
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last log lines: ${logs.slice(-8).map((l) => JSON.stringify(l).slice(0, 300)).join(' | ') || '(none)'}; other output: ${rawOutput.slice(-5).join(' | ') || '(none)'}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop(graceMs = 5_000) {
      if (done) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
