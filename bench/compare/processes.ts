// Every process the comparison starts is spawned detached (its own process group) and registered in
// a ProcessSet, so one call ends the whole tree (nginx master + workers, the balancer primary + every
// worker generation) at the end of a run, on error and on SIGINT.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface GroupProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** last ~20 kB of stdout+stderr, for error messages */
  output(): string;
  readonly exited: Promise<number | null>;
  /** SIGTERM to the group, SIGKILL after graceMs; resolves when the leader exited */
  stop(graceMs?: number): Promise<void>;
}

const OUTPUT_KEEP = 20_000;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

export class ProcessSet {
  private readonly live = new Set<GroupProcess>();

  /** ipc: open a node IPC channel (the child must be a node program) */
  spawn(name: string, cmd: string, args: readonly string[], opts: SpawnOptions & { ipc?: boolean } = {}): GroupProcess {
    const { ipc, ...spawnOpts } = opts;
    const child = spawn(cmd, [...args], {
      ...spawnOpts,
      detached: true,
      stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) throw new Error(`${name}: spawn ${cmd} failed`);
    const pid = child.pid;
    let out = '';
    const keep = (d: Buffer): void => {
      out += d.toString();
      if (out.length > OUTPUT_KEEP * 2) out = out.slice(-OUTPUT_KEEP);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const set = this.live;
    const proc: GroupProcess = {
      name,
      child,
      pid,
      output: () => out.slice(-OUTPUT_KEEP),
      exited,
      async stop(graceMs = 5000) {
        // the group may outlive its leader (draining workers), so signal it even after the leader exited
        signalGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
        await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs + 1000))]);
        clearTimeout(timer);
        signalGroup(pid, 'SIGKILL');
        set.delete(proc);
      },
    };
    set.add(proc);
    return proc;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((p) => p.stop(3000)));
  }

  /** synchronous last resort (process 'exit' handler) */
  killAllNow(): void {
    for (const p of this.live) signalGroup(p.pid, 'SIGKILL');
    this.live.clear();
  }
}

/** Resolves with the first stdout line that matches, or rejects after timeoutMs / on exit. */
export function waitForLine(proc: GroupProcess, match: (line: string) => boolean, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (match(line)) {
          done();
          resolve(line);
          return;
        }
      }
    };
    const onExit = (): void => {
      done();
      reject(new Error(`${proc.name} exited before it was ready:\n${proc.output()}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${proc.name} not ready within ${timeoutMs} ms:\n${proc.output()}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      proc.child.stdout?.off('data', onData);
      proc.child.off('exit', onExit);
    };
    proc.child.stdout?.on('data', onData);
    proc.child.once('exit', onExit);
  });
}
