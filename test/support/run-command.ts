// Child processes for test fixtures (docker, docker-compose, tar): bounded by a timeout and an AbortSignal,
// output collected, a non-zero exit thrown as CommandError with the tail of stderr.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';

export class CommandError extends Error {
  readonly code = 'ERR_TEST_COMMAND' as const;
  readonly result?: CommandResult;
  constructor(message: string, result?: CommandResult) {
    super(message);
    this.name = 'CommandError';
    this.result = result;
  }
}

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** a file streamed to the child's stdin */
  readonly stdinFile?: string;
  /** non-zero exit is returned instead of thrown */
  readonly allowFailure?: boolean;
}

/** Run a command with a timeout and an AbortSignal; throws CommandError on a non-zero exit. */
export async function runCommand(file: string, args: readonly string[], opts: RunOptions): Promise<CommandResult> {
  const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]);
  const child = spawn(file, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    signal,
    killSignal: 'SIGKILL',
    stdio: [opts.stdinFile ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  if (opts.stdinFile && child.stdin) {
    const input = createReadStream(opts.stdinFile);
    input.on('error', (e) => child.stdin?.destroy(e));
    input.pipe(child.stdin);
    child.stdin.on('error', () => { /* the child exited early; its exit code tells why */ });
  }
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (e) => reject(new CommandError(
      `${file} ${args.join(' ')}: ${signal.aborted ? `aborted (timeout ${opts.timeoutMs} ms or cancelled)` : e.message}`)));
    child.once('close', (c) => resolve(c));
  });
  const result = { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
  if (code !== 0 && !opts.allowFailure) {
    throw new CommandError(
      `${file} ${args.join(' ')} exited ${code}\n${result.stderr.slice(-4000)}${result.stdout.slice(-2000)}`, result);
  }
  return result;
}

