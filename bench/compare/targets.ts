// The three things compared, each started fresh for a run and stopped after it:
//   dynamic - our balancer, --mode dynamic (tables swapped in place in every worker)
//   reload  - our balancer, --mode reload (render templates/balancer.conf.hbs, new worker generation)
//   nginx   - Debian nginx (our own foreground process under a temp prefix) whose upstreams are rendered
//             from templates/nginx-upstreams.conf.hbs by our renderer, which runs `nginx -s reload`
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, tempDir, waitForPort } from '../support/processes.js';
import { waitUntilServing } from './http-check.js';
import type { GroupProcess, ProcessSet } from './processes.js';

export type TargetName = 'dynamic' | 'reload' | 'nginx';
export const TARGET_NAMES: readonly TargetName[] = ['dynamic', 'reload', 'nginx'];

export interface TargetContext {
  readonly repoRoot: string;
  readonly consulAddr: string;
  readonly service: string;
  readonly workers: number;
  readonly processes: ProcessSet;
  /** appended to our balancer's command line (both modes), e.g. ['--debounce', '100ms'] */
  readonly balancerFlags?: readonly string[];
}

export interface RunningTarget {
  readonly name: TargetName;
  readonly port: number;
  /** roots of the process trees whose workers are counted */
  readonly roots: readonly number[];
  /** roots of every process tree whose CPU is the target's (nginx: master + renderer) */
  readonly cpuRoots: readonly number[];
  /** how it was started, for the report */
  readonly command: string;
  stop(): Promise<void>;
  /** recent output of its processes (for errors) */
  output(): string;
}

const READY_TIMEOUT_MS = 30_000;

/** paths inside the repository shown relative to it, for a readable command line */
const rel = (ctx: TargetContext, arg: string): string =>
  arg.startsWith(`${ctx.repoRoot}${path.sep}`) ? path.relative(ctx.repoRoot, arg) : arg;

async function startOurs(ctx: TargetContext, mode: 'dynamic' | 'reload'): Promise<RunningTarget> {
  const port = await freePort();
  const admin = await freePort();
  const dir = tempDir(`compare-${mode}-`);
  const args = [
    path.join(ctx.repoRoot, 'bin', 'balancer.js'), '--consul', ctx.consulAddr, '--mode', mode,
    '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${admin}`, '--workers', String(ctx.workers),
    '--log-level', 'warn', '--drain-timeout', '10s',
  ];
  if (mode === 'reload') args.push('--config-out', path.join(dir, 'balancer.conf'));
  args.push(...(ctx.balancerFlags ?? []));
  const proc = ctx.processes.spawn(`balancer-${mode}`, process.execPath, args, { cwd: ctx.repoRoot });
  try {
    await Promise.race([waitForPort(port, READY_TIMEOUT_MS), proc.exited.then(() => { throw new Error('exited'); })]);
    await waitUntilServing(port, ctx.service, 20, READY_TIMEOUT_MS);
  } catch (err) {
    await proc.stop();
    throw new Error(`balancer --mode ${mode} did not start serving: ${(err as Error).message}\n${proc.output().slice(-3000)}`);
  }
  return {
    name: mode,
    port,
    roots: [proc.pid],
    cpuRoots: [proc.pid],
    command: `node ${args.map((a) => rel(ctx, a)).join(' ')}`,
    stop: () => proc.stop(),
    output: () => proc.output(),
  };
}

function nginxConf(dir: string, workers: number): string {
  return [
    `worker_processes ${workers};`,
    `error_log ${dir}/error.log warn;`,
    `pid ${dir}/nginx.pid;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;`,
    `  include ${dir}/upstreams.conf;`,
    '}',
    '',
  ].join('\n');
}

async function waitForFile(file: string, timeoutMs: number, alive: GroupProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} was not rendered within ${timeoutMs} ms`);
    if (alive.child.exitCode !== null) throw new Error(`${alive.name} exited`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startNginxRendered(ctx: TargetContext): Promise<RunningTarget> {
  const port = await freePort();
  const dir = tempDir('compare-nginx-');
  const confPath = path.join(dir, 'nginx.conf');
  writeFileSync(confPath, nginxConf(dir, ctx.workers));
  const reloadCommand = `nginx -q -s reload -p ${dir} -c ${confPath}`;
  const template = path.join(ctx.repoRoot, 'templates', 'nginx-upstreams.conf.hbs');
  const output = path.join(dir, 'upstreams.conf');
  const renderCli = path.join(ctx.repoRoot, 'dist', 'balancer', 'src', 'render', 'cli.js');
  const args = [renderCli, '--consul', ctx.consulAddr, '--render', `${template}:${output}`, '--reload-command', reloadCommand, '--log-level', 'warn'];
  const renderer = ctx.processes.spawn('renderer', process.execPath, args, {
    cwd: ctx.repoRoot,
    env: { ...process.env, NGINX_LISTEN: `127.0.0.1:${port}` },
  });
  let nginx: GroupProcess | undefined;
  try {
    await waitForFile(output, READY_TIMEOUT_MS, renderer);
    // the first render's reload command finds no nginx yet (it fails and is logged); nginx reads the file now
    nginx = ctx.processes.spawn('nginx', 'nginx', ['-p', dir, '-c', confPath, '-g', 'daemon off;']);
    await Promise.race([waitForPort(port, READY_TIMEOUT_MS), nginx.exited.then(() => { throw new Error('nginx exited'); })]);
    await waitUntilServing(port, ctx.service, 20, READY_TIMEOUT_MS);
  } catch (err) {
    const out = `${renderer.output().slice(-2000)}\n${nginx?.output().slice(-2000) ?? ''}`;
    await Promise.all([renderer.stop(), nginx?.stop()]);
    throw new Error(`nginx + renderer did not start serving: ${(err as Error).message}\n${out}`);
  }
  const started = nginx;
  return {
    name: 'nginx',
    port,
    roots: [started.pid],
    cpuRoots: [started.pid, renderer.pid],
    command: `NGINX_LISTEN=127.0.0.1:${port} node ${args.map((a) => rel(ctx, a)).join(' ')}  +  nginx -p ${dir} -c ${confPath} -g 'daemon off;'`,
    async stop() {
      await renderer.stop();
      await started.stop();
    },
    output: () => `${renderer.output()}\n${started.output()}`,
  };
}

/** Starts a target; once more with fresh ports when the first try fails (freePort() can race another process). */
export async function startTarget(name: TargetName, ctx: TargetContext): Promise<RunningTarget> {
  const start = (): Promise<RunningTarget> => (name === 'nginx' ? startNginxRendered(ctx) : startOurs(ctx, name));
  try {
    return await start();
  } catch (first) {
    process.stderr.write(`  ${name} did not start (${(first as Error).message.split('\n')[0]}); retrying with fresh ports\n`);
    return start();
  }
}
