// One docker-compose project of the demo for a test: every command runs with the same project name,
// files and environment, bounded in time. `docker-compose` (1.29) is preferred, the `docker compose`
// plugin is the fallback.
import { runCommand, type CommandResult } from './run-command.js';

export interface ComposeCli {
  readonly file: string;
  readonly prefixArgs: readonly string[];
  readonly version: string;
}

/** Which compose CLI this machine has; undefined when neither answers. */
export async function findComposeCli(signal: AbortSignal): Promise<ComposeCli | undefined> {
  const candidates: ComposeCli[] = [
    { file: 'docker-compose', prefixArgs: [], version: '' },
    { file: 'docker', prefixArgs: ['compose'], version: '' },
  ];
  for (const c of candidates) {
    try {
      const r = await runCommand(c.file, [...c.prefixArgs, 'version', '--short'], { signal, timeoutMs: 15_000 });
      return { ...c, version: r.stdout.trim() };
    } catch {
      // not installed, or no plugin: try the next one
    }
  }
  return undefined;
}

export interface ComposeProjectOptions {
  readonly cli: ComposeCli;
  readonly project: string;
  /** compose files, in merge order */
  readonly files: readonly string[];
  readonly cwd: string;
  /** variables interpolated into the compose files (merged over process.env) */
  readonly env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
}

export interface ComposeProject {
  readonly name: string;
  run(args: readonly string[], timeoutMs?: number): Promise<CommandResult>;
  /** host:port published for a container port of the first instance of a service */
  port(service: string, containerPort: number): Promise<{ host: string; port: number }>;
  /** container ids of a service's running instances */
  containerIds(service: string): Promise<string[]>;
  /** the last lines of every service's log, for failure messages; never throws */
  logs(tail?: number): Promise<string>;
  /** remove containers, networks, volumes and compose-built images of this project only; never throws */
  down(): Promise<string>;
}

export function composeProject(opts: ComposeProjectOptions): ComposeProject {
  const env = { ...process.env, ...opts.env, COMPOSE_INTERACTIVE_NO_CLI: '1' };
  const base = [...opts.cli.prefixArgs, '--project-name', opts.project, ...opts.files.flatMap((f) => ['--file', f])];
  const run = (args: readonly string[], timeoutMs = 120_000) =>
    runCommand(opts.cli.file, [...base, ...args], { cwd: opts.cwd, env, signal: opts.signal, timeoutMs });
  return {
    name: opts.project,
    run,
    async port(service, containerPort) {
      const r = await run(['port', service, String(containerPort)], 30_000);
      const match = /^(.*):(\d+)\s*$/m.exec(r.stdout.trim());
      if (!match) throw new Error(`docker-compose port ${service} ${containerPort}: unexpected output "${r.stdout.trim()}"`);
      const host = match[1] === '0.0.0.0' || match[1] === '' ? '127.0.0.1' : match[1];
      return { host, port: Number(match[2]) };
    },
    async containerIds(service) {
      const r = await run(['ps', '-q', service], 30_000);
      return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
    },
    async logs(tail = 200) {
      try {
        const r = await runCommand(opts.cli.file, [...base, 'logs', '--no-color', `--tail=${tail}`],
          { cwd: opts.cwd, env, signal: AbortSignal.timeout(30_000), timeoutMs: 30_000, allowFailure: true });
        return r.stdout + r.stderr;
      } catch (error) {
        return `(docker-compose logs failed: ${(error as Error).message})`;
      }
    },
    async down() {
      try {
        // Its own signal: teardown must run even after the test's signal fired.
        const r = await runCommand(opts.cli.file,
          [...base, 'down', '--volumes', '--rmi', 'local', '--remove-orphans', '--timeout', '3'],
          { cwd: opts.cwd, env, signal: AbortSignal.timeout(90_000), timeoutMs: 90_000, allowFailure: true });
        return r.code === 0 ? '' : `docker-compose down exited ${r.code}: ${r.stderr.slice(-2000)}`;
      } catch (error) {
        return `docker-compose down failed: ${(error as Error).message}`;
      }
    },
  };
}
