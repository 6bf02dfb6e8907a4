// Debian's redis-server as a test backend (no persistence, loopback only), and redis-cli as a client.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { freePort } from './free-port.js';
import { runCommand } from './run-command.js';
import { untilRetryingErrors } from './poll.js';

export interface RedisServer {
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await untilRetryingErrors(`redis-server on ${port}`, () => new Promise<boolean>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.once('error', reject);
  }), 10_000, 50);
  return {
    port, child,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** One redis-cli command on a new connection; the reply, or a thrown error (exit code, "ERR", connection error). */
export async function redisCli(port: number, args: readonly string[], timeoutMs = 5_000): Promise<string> {
  const r = await runCommand('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { signal: AbortSignal.timeout(timeoutMs), timeoutMs, allowFailure: true });
  const out = r.stdout.trim();
  // redis-cli exits 0 on some connection errors and prints them: refuse anything that is not a reply
  if (r.code !== 0 || /^(Could not connect|Error:|ERR )/m.test(out) || r.stderr.trim() !== '') throw new Error(`redis-cli ${args.join(' ')}: exit ${r.code} ${out} ${r.stderr.trim()}`.slice(0, 300));
  return out;
}
