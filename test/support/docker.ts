// Docker test bed: engine check, the `web` image built without any registry, containers labelled with this
// run's ID, and removal of exactly this run's containers and networks (in `after`, and again on exit).
//
// The web image: `docker import` of a tarball holding Debian's busybox-static (/bin/busybox) and a tiny
// start script; busybox httpd serves a page naming its container. It is tagged by content hash
// (cbtest/web:<hash>) and shared between runs and concurrent test files: building is idempotent (an existing
// tag is reused) and serialized by a lock file; it is never removed by a test (others may be using it) and
// carries the label cbtest.image=web so `docker image prune --filter label=cbtest.image` clears it.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCommand } from './run-command.js';

export const RUN_LABEL = 'cbtest.run';
const BUSYBOX = '/bin/busybox';
const CALL_TIMEOUT_MS = 30_000;

const START_SCRIPT = `#!/bin/busybox sh
# Serve a page naming this container on every exposed port (PORTS, default 80).
/bin/busybox mkdir -p /www /tmp
echo "web container \${WEB_NAME:-$(/bin/busybox hostname)}" > /www/index.html
for p in \${PORTS:-80}; do /bin/busybox httpd -p "$p" -h /www; done
exec /bin/busybox sleep 2147483647
`;

/** This process's run ID: the label value on everything it creates. */
export const runId = `r${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

export interface DockerCheck {
  readonly ok: boolean;
  readonly detail: string;
}

/** Whether a Docker engine answers (`docker info`, bounded). */
export async function dockerAvailable(timeoutMs = 10_000): Promise<DockerCheck> {
  try {
    const r = await runCommand('docker', ['info', '--format', '{{.ServerVersion}}'], { signal: AbortSignal.timeout(timeoutMs), timeoutMs, allowFailure: true });
    if (r.code === 0) return { ok: true, detail: `docker engine ${r.stdout.trim()}` };
    return { ok: false, detail: r.stderr.trim() || `docker info exited ${r.code}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

/** For `before()`: throws (so the test FAILS, never silently passes) when no engine answers. */
export async function requireDocker(): Promise<void> {
  const check = await dockerAvailable();
  if (!check.ok) {
    throw Object.assign(new Error(`Docker engine not reachable - these integration tests need one (start dockerd, or run .ci/run): ${check.detail}`), { code: 'ERR_NO_DOCKER' });
  }
}

export async function docker(args: readonly string[], opts: { timeoutMs?: number; allowFailure?: boolean; signal?: AbortSignal } = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? CALL_TIMEOUT_MS;
  const r = await runCommand('docker', args, { signal: opts.signal ?? AbortSignal.timeout(timeoutMs), timeoutMs, allowFailure: opts.allowFailure });
  return r.stdout.trim();
}

/** The static busybox binary, with a clear error when busybox-static is missing (a dynamic one cannot run alone). */
function staticBusybox(): Buffer {
  let bin: Buffer;
  try {
    bin = readFileSync(BUSYBOX);
  } catch (err) {
    throw Object.assign(new Error(`${BUSYBOX} not found: install Debian's busybox-static (apt-get install busybox-static): ${(err as Error).message}`), { code: 'ERR_NO_BUSYBOX' });
  }
  if (bin.includes('/lib64/ld-linux') || bin.includes('/lib/ld-linux')) {
    throw Object.assign(new Error(`${BUSYBOX} is dynamically linked: install busybox-static instead of busybox`), { code: 'ERR_NO_BUSYBOX' });
  }
  return bin;
}

function webImageTag(): string {
  const hash = createHash('sha256').update(staticBusybox()).update(START_SCRIPT).digest('hex').slice(0, 12);
  return `cbtest/web:${hash}`;
}

async function imageExists(tag: string): Promise<boolean> {
  const r = await runCommand('docker', ['image', 'inspect', '--format', '{{.Id}}', tag], { signal: AbortSignal.timeout(CALL_TIMEOUT_MS), timeoutMs: CALL_TIMEOUT_MS, allowFailure: true });
  return r.code === 0;
}

/** A lock file shared by every test process on this machine; stale after 60 s (a crashed holder). */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lockPath = path.join(os.tmpdir(), `${name}.lock`);
  const deadline = Date.now() + 90_000;
  for (;;) {
    try {
      const handle = await fs.open(lockPath, 'wx');
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const stat = await fs.stat(lockPath).catch(() => undefined);
      if (stat && Date.now() - stat.mtimeMs > 60_000) await fs.rm(lockPath, { force: true });
      if (Date.now() > deadline) throw Object.assign(new Error(`timed out waiting for ${lockPath}`), { code: 'ERR_TEST_LOCK' });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockPath, { force: true });
  }
}

let webImagePromise: Promise<string> | undefined;

/** The web image's tag, built on first use (no pull). Idempotent and safe across concurrent processes. */
export function webImage(): Promise<string> {
  webImagePromise ??= buildWebImage().catch((err) => {
    webImagePromise = undefined;
    throw err;
  });
  return webImagePromise;
}

async function buildWebImage(): Promise<string> {
  const tag = webImageTag();
  if (await imageExists(tag)) return tag;
  return withLock('cbtest-web-image', async () => {
    if (await imageExists(tag)) return tag;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cbtest-web-'));
    try {
      const root = path.join(dir, 'root');
      await fs.mkdir(path.join(root, 'bin'), { recursive: true });
      await fs.mkdir(path.join(root, 'tmp'), { recursive: true, mode: 0o1777 });
      await fs.mkdir(path.join(root, 'www'), { recursive: true });
      await fs.copyFile(BUSYBOX, path.join(root, 'bin', 'busybox'));
      await fs.chmod(path.join(root, 'bin', 'busybox'), 0o755);
      await fs.symlink('busybox', path.join(root, 'bin', 'sh'));
      await fs.writeFile(path.join(root, 'start.sh'), START_SCRIPT, { mode: 0o755 });
      const tarball = path.join(dir, 'web.tar');
      await runCommand('tar', ['-C', root, '-cf', tarball, '.'], { signal: AbortSignal.timeout(CALL_TIMEOUT_MS), timeoutMs: CALL_TIMEOUT_MS });
      await runCommand('docker', [
        'import',
        '--change', 'CMD ["/bin/busybox", "sh", "/start.sh"]',
        '--change', 'EXPOSE 80',
        '--change', 'LABEL cbtest.image=web',
        tarball, tag,
      ], { signal: AbortSignal.timeout(60_000), timeoutMs: 60_000 });
      return tag;
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
}

export interface RunContainerOptions {
  readonly name?: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
  /** container ports to publish on 127.0.0.1 (ephemeral host port); "80" or "53/udp" */
  readonly publish?: readonly string[];
  /** exposed but not published */
  readonly expose?: readonly string[];
  readonly network?: string;
  readonly image?: string;
  /** extra `docker run` arguments before the image */
  readonly extraArgs?: readonly string[];
}

/** A unique container name for this run. */
export function containerName(hint: string): string {
  return `cbtest-${runId}-${hint}-${randomBytes(4).toString("hex")}`;
}

/** `docker run -d` with this run's label; returns the full container ID. */
export async function runContainer(opts: RunContainerOptions = {}): Promise<{ id: string; name: string }> {
  const image = opts.image ?? (await webImage());
  const name = opts.name ?? containerName('web');
  const args = ['run', '-d', '--name', name, '--label', `${RUN_LABEL}=${runId}`];
  for (const [k, v] of Object.entries(opts.env ?? {})) args.push('-e', `${k}=${v}`);
  for (const [k, v] of Object.entries(opts.labels ?? {})) args.push('--label', `${k}=${v}`);
  for (const p of opts.publish ?? []) args.push('-p', `127.0.0.1::${p}`);
  for (const p of opts.expose ?? []) args.push('--expose', p);
  if (opts.network) args.push('--network', opts.network);
  args.push(...(opts.extraArgs ?? []), image);
  const id = await docker(args);
  return { id, name };
}

export async function createContainer(opts: RunContainerOptions = {}): Promise<{ id: string; name: string }> {
  const image = opts.image ?? (await webImage());
  const name = opts.name ?? containerName('web');
  const args = ['create', '--name', name, '--label', `${RUN_LABEL}=${runId}`];
  for (const [k, v] of Object.entries(opts.env ?? {})) args.push('-e', `${k}=${v}`);
  for (const [k, v] of Object.entries(opts.labels ?? {})) args.push('--label', `${k}=${v}`);
  for (const p of opts.publish ?? []) args.push('-p', `127.0.0.1::${p}`);
  if (opts.network) args.push('--network', opts.network);
  args.push(...(opts.extraArgs ?? []), image);
  const id = await docker(args);
  return { id, name };
}

/** The host port Docker published for a container port ("80/tcp"). */
export async function publishedPort(id: string, containerPort = '80/tcp'): Promise<number> {
  const out = await docker(['inspect', '--format', `{{(index (index .NetworkSettings.Ports "${containerPort}") 0).HostPort}}`, id]);
  return Number(out);
}

export async function containerIp(id: string): Promise<string> {
  return docker(['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', id]);
}

export async function stopContainer(id: string): Promise<void> {
  await docker(['stop', '-t', '1', id]);
}

export async function removeContainer(id: string): Promise<void> {
  await docker(['rm', '-f', id], { allowFailure: true });
}

/** A network labelled with this run's ID. */
export async function createNetwork(hint: string): Promise<string> {
  const name = `cbtest-${runId}-${hint}`;
  await docker(['network', 'create', '--label', `${RUN_LABEL}=${runId}`, name]);
  return name;
}

/** Removes every container and network of this run (never anything else). */
export async function cleanupRun(id = runId): Promise<void> {
  const filter = `label=${RUN_LABEL}=${id}`;
  const containers = (await docker(['ps', '-aq', '--filter', filter], { allowFailure: true })).split('\n').filter(Boolean);
  if (containers.length > 0) await docker(['rm', '-f', '-v', ...containers], { allowFailure: true, timeoutMs: 120_000 });
  const networks = (await docker(['network', 'ls', '-q', '--filter', filter], { allowFailure: true })).split('\n').filter(Boolean);
  if (networks.length > 0) await docker(['network', 'rm', ...networks], { allowFailure: true });
}

/** Last-resort cleanup when the process exits without reaching `after` (synchronous, bounded). */
function cleanupOnExitSync(): void {
  try {
    const filter = `label=${RUN_LABEL}=${runId}`;
    const ids = execFileSync('docker', ['ps', '-aq', '--filter', filter], { timeout: 10_000, encoding: 'utf8' }).split('\n').filter(Boolean);
    if (ids.length > 0) execFileSync('docker', ['rm', '-f', '-v', ...ids], { timeout: 60_000, stdio: 'ignore' });
    const nets = execFileSync('docker', ['network', 'ls', '-q', '--filter', filter], { timeout: 10_000, encoding: 'utf8' }).split('\n').filter(Boolean);
    if (nets.length > 0) execFileSync('docker', ['network', 'rm', ...nets], { timeout: 30_000, stdio: 'ignore' });
  } catch {
    // best effort: the engine may be gone
  }
}
process.once('exit', cleanupOnExitSync);
