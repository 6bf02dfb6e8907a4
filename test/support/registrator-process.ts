// The real registrator program (`node bin/registrator.js`) as a child process for integration tests and
// benchmarks: its JSON log lines collected and searchable, bounded waits, SIGTERM then SIGKILL on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { onLines } from './output-lines.js';
import { repoRoot } from './repo-root.js';

export interface LogLine {
  readonly level: number;
  readonly msg?: string;
  readonly [key: string]: unknown;
}

export interface RegistratorProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[];
  /** non-JSON output (stderr, crashes) */
  readonly rawOutput: string[];
  waitForLog(predicate: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code */
  stop(graceMs?: number): Promise<number | null>;
  readonly exited: Promise<number | null>;
}

export function spawnRegistrator(args: readonly string[], opts: { env?: NodeJS.ProcessEnv } = {}): RegistratorProcess {
  const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'registrator.js'), ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const rawOutput: string[] = [];
  const listeners = new Set<() => void>();
  const onLine = (line: string) => {
    if (!line.trim()) return;
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      rawOutput.push(line);
    }
    for (const l of listeners) l();
  };
  for (const stream of [child.stdout!, child.stderr!]) onLines(stream, onLine);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const l of listeners) l();
  });

  return {
    child,
    logs,
    rawOutput,
    exited,
    waitForLog(predicate, timeoutMs = 15_000, what = 'log line') {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs.find(predicate);
          if (hit) {
            finish();
            resolve(hit);
          } else if (done) {
            finish();
            reject(new Error(`registrator exited before ${what}; output:\n${tail(logs, rawOutput)}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; output:\n${tail(logs, rawOutput)}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop(graceMs = 5000) {
      if (done) return child.exitCode;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
  };
}

function tail(logs: readonly LogLine[], raw: readonly string[]): string {
  return [...logs.slice(-15).map((l) => JSON.stringify(l)), ...raw.slice(-10)].join('\n');
}

/** Polls fn until it returns a value other than undefined; bounded in time. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface AgentService {
  ID: string;
  Service: string;
  Tags: string[] | null;
  Meta: Record<string, string> | null;
  Port: number;
  Address: string;
}

export interface AgentCheck {
  CheckID: string;
  ServiceID: string;
  Status: string;
  Type: string;
  Name: string;
  [key: string]: unknown;
}

async function getJson<T>(url: string, timeoutMs = 3000): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`GET ${url} -> ${res.status}`);
  return (await res.json()) as T;
}

export function agentServices(consulUrl: string): Promise<Record<string, AgentService>> {
  return getJson(`${consulUrl}/v1/agent/services`);
}

export function agentChecks(consulUrl: string): Promise<Record<string, AgentCheck>> {
  return getJson(`${consulUrl}/v1/agent/checks`);
}

/** Agent services with the given service name. */
export async function servicesNamed(consulUrl: string, name: string): Promise<AgentService[]> {
  return Object.values(await agentServices(consulUrl)).filter((s) => s.Service === name);
}
