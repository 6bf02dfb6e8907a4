// The real balancer program (`node bin/balancer.js`) on ephemeral ports (read from its "balancer started"
// line), output kept for failure messages, SIGTERM then SIGKILL on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './repo-root.js';

export interface BalancerProcess {
  readonly child: ChildProcess;
  readonly proxyPort: number;
  readonly adminPort: number;
  output(): string;
  stop(graceMs?: number): Promise<number | null>;
}

// a liveness bound, not a speed target: on a busy 2-core CI machine (load ~20) the primary and its two
// workers took more than 20 s to come up
const START_BOUND_MS = 60_000;

export function startBalancer(args: readonly string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<BalancerProcess> {
  const child = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'balancer.js'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CONSUL_HTTP_ADDR: '', ...opts.env },
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`balancer did not start in time:\n${out.slice(-3000)}`));
    }, opts.timeoutMs ?? START_BOUND_MS);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.length > 2_000_000) out = out.slice(-1_000_000);
      const m = /"proxyPort":(\d+),"adminPort":(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stderr!.off('data', onData);
        const keep = (c: Buffer) => {
          out += c.toString();
          if (out.length > 2_000_000) out = out.slice(-1_000_000);
        };
        child.stdout!.on('data', keep);
        child.stderr!.on('data', keep);
        resolve({
          child,
          proxyPort: Number(m[1]),
          adminPort: Number(m[2]),
          output: () => out,
          async stop(graceMs = 8000) {
            if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
            child.kill('SIGTERM');
            const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
            const code = await exited;
            clearTimeout(killer);
            return code;
          },
        });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`balancer exited with ${code} before starting:\n${out.slice(-3000)}`));
    });
  });
}
