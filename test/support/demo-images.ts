// The demo's images for the end-to-end test, built without a registry: a stand-in node base image
// (node-image.ts); compose/test/app-runtime.Dockerfile FROM it with a tar context holding the app built on
// this host; the role stages of compose/test/app-roles.Dockerfile (registrator, balancer, consul-double)
// FROM that, without a context; and compose/web/Dockerfile FROM the stand-in.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { importNodeImage } from './node-image.js';
import { runCommand } from './run-command.js';

export const APP_ROLES = ['consul-double', 'registrator', 'balancer'] as const;

export interface DemoImagesOptions {
  readonly repoRoot: string;
  /** image name prefix; images are <prefix>-node, <prefix>-runtime, <prefix>-<role>, <prefix>-web */
  readonly prefix: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
}

export interface DemoImages {
  /** every tag created, base image last (the removal order) */
  readonly tags: readonly string[];
  readonly timingsMs: Readonly<Record<string, number>>;
}

/** Top-level paths (relative to repoRoot) of node_modules entries that production needs. */
export function productionModulePaths(repoRoot: string, parseable: string): string[] {
  const rel = parseable.split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith(repoRoot + path.sep))
    .map((line) => path.relative(repoRoot, line))
    .filter((p) => p.startsWith('node_modules' + path.sep))
    .sort();
  // A package nested in one already listed travels with it.
  const kept: string[] = [];
  for (const p of rel) {
    if (!kept.some((k) => p.startsWith(k + path.sep))) kept.push(p);
  }
  return kept;
}

// The legacy builder: BuildKit needs the buildx plugin, which a plain docker.io install lacks.
const BUILD_ENV = { ...process.env, DOCKER_BUILDKIT: '0' };

export async function buildDemoImages(opts: DemoImagesOptions): Promise<DemoImages> {
  const { repoRoot, prefix, signal } = opts;
  const created: string[] = [];
  const timingsMs: Record<string, number> = {};
  const labelArgs = Object.entries(opts.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try { return await work(); } finally { timingsMs[name] = Math.round(performance.now() - t0); }
  };

  const nodeImage = `${prefix}-node`;
  await timed('node-image', () => importNodeImage({ tag: nodeImage, labels: opts.labels, signal }));
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'cbtest-demo-context-'));
  try {
    // Production dependencies only (what `npm prune --omit=dev` leaves); everything if npm cannot tell.
    const ls = await runCommand('npm', ['ls', '--omit=dev', '--parseable', '--all'],
      { cwd: repoRoot, signal, timeoutMs: 30_000, allowFailure: true });
    const modules = productionModulePaths(repoRoot, ls.stdout);
    const extra = path.join(work, 'extra');
    await fs.mkdir(path.join(extra, 'compose', 'test', 'run-dir'), { recursive: true });
    const context = path.join(work, 'context.tar');
    await timed('context-tar', () => runCommand('tar', [
      '-cf', context, '--exclude=*.map', '--exclude=*.md', '--exclude=*.d.ts',
      '-C', repoRoot, 'package.json', 'bin', 'templates', 'dist', 'compose/test/app-runtime.Dockerfile',
      ...(modules.length > 0 ? modules : ['node_modules']),
      '-C', extra, 'compose/test/run-dir',
    ], { signal, timeoutMs: 60_000 }));
    const runtimeTag = `${prefix}-runtime`;
    await timed('runtime', () => runCommand('docker', [
      'build', '-q', '-f', 'compose/test/app-runtime.Dockerfile', '--build-arg', `NODE_IMAGE=${nodeImage}`,
      ...labelArgs, '-t', runtimeTag, '-',
    ], { signal, timeoutMs: 180_000, stdinFile: context, env: BUILD_ENV }));
    created.unshift(runtimeTag);
    for (const role of APP_ROLES) {
      const tag = `${prefix}-${role}`;
      await timed(role, () => runCommand('docker', [
        'build', '-q', '--target', role, '--build-arg', `RUNTIME_IMAGE=${runtimeTag}`, ...labelArgs, '-t', tag, '-',
      ], { signal, timeoutMs: 60_000, stdinFile: path.join(repoRoot, 'compose', 'test', 'app-roles.Dockerfile'), env: BUILD_ENV }));
      created.unshift(tag);
    }
    const webTag = `${prefix}-web`;
    await timed('web', () => runCommand('docker', [
      'build', '-q', '--build-arg', `NODE_IMAGE=${nodeImage}`, ...labelArgs, '-t', webTag,
      path.join(repoRoot, 'compose', 'web'),
    ], { signal, timeoutMs: 120_000, env: BUILD_ENV }));
    created.unshift(webTag);
  } catch (error) {
    await removeImages([...created, nodeImage], signal);
    throw error;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
  return { tags: [...created, nodeImage], timingsMs };
}

/** Remove exactly these tags (children before the base), ignoring ones already gone. */
export async function removeImages(tags: readonly string[], signal: AbortSignal): Promise<void> {
  for (const tag of tags) {
    await runCommand('docker', ['rmi', '--force', tag], { signal, timeoutMs: 60_000, allowFailure: true });
  }
}
