// Runs the user's reload command (`nginx -s reload`, `systemctl reload haproxy`, ...) through /bin/sh,
// bounded by a timeout and an AbortSignal; the exit code and the tail of stderr are reported so a
// failing reload is visible in the logs.
import { spawn } from 'node:child_process';

export interface ReloadCommandResult {
  readonly command: string;
  /** null when killed by a signal */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** last 4 KiB of stderr */
  readonly stderr: string;
  readonly durationMs: number;
}

const STDERR_TAIL = 4096;
/** after the shell exited, how long its stderr may still deliver before we stop reading */
const STDERR_GRACE_MS = 200;

export function runReloadCommand(
  command: string,
  opts: { timeoutMs: number; signal?: AbortSignal; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<ReloadCommandResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const child = spawn('/bin/sh', ['-c', command], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      // own process group so a timeout kills the whole pipeline, not just the shell
      detached: true,
    });
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGKILL');
    }, opts.timeoutMs);
    const onAbort = () => killGroup('SIGKILL');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL);
    });
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ command, exitCode, signal, timedOut, stderr: stderr.trim(), durationMs: Date.now() - started });
    };
    child.on('error', (err) => {
      stderr = (stderr + err.message).slice(-STDERR_TAIL);
      finish(null, null);
    });
    child.on('close', (code, sig) => finish(code, sig));
    // 'close' waits for stderr to close too; a daemon the command started (`nginx -s reload || nginx`
    // with error_log on stderr) keeps it open for its whole life, in its own session where the timeout
    // cannot kill it. The shell's exit decides; stderr gets a moment to deliver what was written.
    child.on('exit', (code, sig) => {
      setTimeout(() => {
        child.stderr.destroy();
        finish(code, sig);
      }, STDERR_GRACE_MS);
    });
  });
}
