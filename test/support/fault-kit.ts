// What the fault suite needs around the real programs: backends in their own processes (so a
// `kill -9` is real), a bounded keep-alive load that records every failure, and the footprint
// (RSS, open file descriptors) of a process tree read from /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { Agent, request } from 'undici';
import { processTree, treeUsage } from '../../bench/support/proc-stats.js';

// A backend as a separate node process: GET answers its name, any body is drained and counted.
const BACKEND_SOURCE = `
const http = require('node:http');
const name = process.argv[1];
const server = http.createServer((req, res) => {
  let bytes = 0;
  req.on('data', (c) => { bytes += c.length; });
  req.on('end', () => {
    const body = req.method === 'GET' ? name : name + ' ' + bytes;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

export interface BackendProcess {
  readonly name: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** SIGKILL and wait for the exit */
  kill9(): Promise<void>;
  close(): Promise<void>;
}

export async function startBackendProcess(name: string): Promise<BackendProcess> {
  const child = spawn(process.execPath, ['-e', BACKEND_SOURCE, name], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend ${name} did not start within 10 s`)), 10_000);
    let buffered = '';
    child.stdout!.on('data', (c: Buffer) => {
      buffered += c.toString();
      const nl = buffered.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve((JSON.parse(buffered.slice(0, nl)) as { port: number }).port);
      }
    });
    child.once('exit', (code) => reject(new Error(`backend ${name} exited with ${code}`)));
  });
  const stop = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { name, port, child, kill9: () => stop('SIGKILL'), close: () => stop('SIGTERM') };
}

export interface LoadResult {
  readonly ok: number;
  readonly failed: number;
  /** first failures, for the assertion message */
  readonly failures: readonly string[];
  /** performance.now() of each failure */
  readonly failedAt: readonly number[];
}

export interface KeepAliveLoad {
  /** successful replies so far */
  readonly ok: () => number;
  /** stop sending, wait for the requests in flight, close the connections */
  stop(): Promise<LoadResult>;
  /** how many of the replies so far named each backend */
  servedBy(): ReadonlyMap<string, number>;
}

/**
 * `concurrency` chains of keep-alive GETs (idempotent, so the balancer may retry them on another
 * server) until stopped, maxMs passed or maxRequests were sent. A reply that is not a 200 from a
 * backend is a lost request.
 */
export function startKeepAliveLoad(port: number, host: string, opts: { concurrency: number; maxMs: number; maxRequests: number }): KeepAliveLoad {
  const agent = new Agent({ connections: opts.concurrency, keepAliveTimeout: 4_000, pipelining: 1 });
  const deadline = performance.now() + opts.maxMs;
  let stopped = false;
  let sent = 0;
  let ok = 0;
  const failures: string[] = [];
  const failedAt: number[] = [];
  const served = new Map<string, number>();
  const chain = async () => {
    while (!stopped && performance.now() < deadline && sent < opts.maxRequests) {
      sent++;
      try {
        const res = await request(`http://127.0.0.1:${port}/fault`, { dispatcher: agent, headers: { host }, signal: AbortSignal.timeout(10_000) });
        const body = await res.body.text();
        if (res.statusCode === 200 && body.startsWith('b-')) {
          ok++;
          served.set(body, (served.get(body) ?? 0) + 1);
        } else {
          failedAt.push(performance.now());
          if (failures.length < 10) failures.push(`HTTP ${res.statusCode} ${body.slice(0, 120)}`);
        }
      } catch (err) {
        failedAt.push(performance.now());
        if (failures.length < 10) failures.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
      }
    }
  };
  const chains = Array.from({ length: opts.concurrency }, () => chain());
  return {
    ok: () => ok,
    servedBy: () => served,
    async stop() {
      stopped = true;
      await Promise.all(chains);
      await agent.close();
      return { ok, failed: failedAt.length, failures, failedAt };
    },
  };
}

export interface Footprint {
  readonly rssMb: number;
  readonly fds: number;
  readonly processes: number;
}

/** RSS and open file descriptors of a process and its descendants. */
export function footprint(rootPid: number): Footprint {
  let fds = 0;
  const pids = processTree(rootPid);
  for (const pid of pids) {
    try {
      fds += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      /* the process ended between the listing and now */
    }
  }
  return { rssMb: Math.round(treeUsage(rootPid).rssMb), fds, processes: pids.length };
}

/** Poll fn every intervalMs until it returns a value, at most timeoutMs; the elapsed ms and the value. */
export async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, intervalMs = 50): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return { ms: Math.round(performance.now() - started), value: v };
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
