// Restart the Docker engine under a running test (the fault suite): the dockerd process found by
// pgrep is stopped with SIGTERM and started again with the same command line, detached, as .ci/run
// started it. On a host whose engine is managed by systemd, `systemctl restart docker` instead.
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { dockerAvailable } from './docker.js';
import { runCommand } from './run-command.js';

async function dockerdPid(): Promise<number | undefined> {
  const r = await runCommand('pgrep', ['-xo', 'dockerd'], { signal: AbortSignal.timeout(5_000), timeoutMs: 5_000, allowFailure: true });
  const pid = Number(r.stdout.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw Object.assign(new Error(`dockerd restart: timed out after ${timeoutMs} ms waiting for ${what}`), { code: 'ERR_DOCKERD_RESTART' });
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Stop dockerd, start it again, resolve once `docker info` answers; returns when it answered again. */
export async function restartDockerd(logFile: string): Promise<{ downMs: number }> {
  const started = Date.now();
  if (existsSync('/run/systemd/system')) {
    await runCommand('systemctl', ['restart', 'docker'], { signal: AbortSignal.timeout(120_000), timeoutMs: 120_000 });
  } else {
    const pid = await dockerdPid();
    if (pid === undefined) throw Object.assign(new Error('dockerd restart: no dockerd process found (is the engine remote?)'), { code: 'ERR_DOCKERD_RESTART' });
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
    process.kill(pid, 'SIGTERM');
    await waitUntil('the old dockerd to exit', () => !alive(pid), 60_000);
    const out = openSync(logFile, 'a');
    const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', out, out] });
    child.unref();
  }
  await waitUntil('docker info to answer again', async () => (await dockerAvailable(5_000)).ok, 90_000);
  return { downMs: Date.now() - started };
}
