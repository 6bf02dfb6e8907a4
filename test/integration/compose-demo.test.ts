// The docker-compose demo end to end, in both balancer modes: real docker-compose, Docker engine,
// registrator, balancer and web; the Consul API double stands in for the consul image and a `docker import`
// of the host's node binary for node:20-bookworm-slim (no registry here). Checks: traffic reaches the one
// web instance; after scaling to 3 all three answer; scaling back to 1 under a request loop fails no
// request and the removed instances get no traffic afterwards.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildDemoImages, removeImages } from '../support/demo-images.js';
import { composeProject, findComposeCli, type ComposeCli, type ComposeProject } from '../support/compose-project.js';
import { getOnce, pollUntil, startLoad, type Reply, type Target } from '../support/demo-traffic.js';
import { runCommand } from '../support/run-command.js';

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'compose', 'docker-compose.yml'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('compose/docker-compose.yml not found above the test file');
    dir = parent;
  }
  return dir;
}

const repoRoot = findRepoRoot();
const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
const labels = { 'cbtest.run': runId };
const imagePrefix = `cbtest-${runId}`;
// Unique per run: the registrator sees every container on the engine, other tests' `web`s included.
const webService = `web-${runId}`;
const suiteSignal = AbortSignal.timeout(420_000);

async function whyUnavailable(): Promise<string | undefined> {
  try {
    await runCommand('docker', ['info', '--format', '{{.ServerVersion}}'], { signal: suiteSignal, timeoutMs: 15_000 });
  } catch {
    return 'no Docker engine answers (docker info failed)';
  }
  if (!existsSync(path.join(repoRoot, 'dist', 'test', 'support', 'consul-double', 'cli.js'))) return 'run `npm run build` first';
  return undefined;
}

const unavailable = await whyUnavailable();
const cli: ComposeCli | undefined = unavailable ? undefined : await findComposeCli(suiteSignal);
const skip = unavailable ?? (cli ? undefined : 'neither docker-compose nor the docker compose plugin is installed');

function describeReplies(replies: readonly Reply[], limit = 15): string {
  const failed = replies.filter((r) => r.error);
  const by = new Map<string, number>();
  for (const r of replies) by.set(r.servedBy ?? `error: ${r.error}`, (by.get(r.servedBy ?? `error: ${r.error}`) ?? 0) + 1);
  return `${replies.length} requests, ${failed.length} failed; by instance: ${JSON.stringify(Object.fromEntries(by))}`
    + (failed.length > 0 ? `\nfirst failures: ${JSON.stringify(failed.slice(0, limit))}` : '');
}

async function hostnames(ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const r = await runCommand('docker', ['inspect', '--format', '{{.Config.Hostname}}', ...ids],
    { signal: suiteSignal, timeoutMs: 30_000 });
  return r.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
}

async function catalogCount(consul: { host: string; port: number }, service: string): Promise<number | string> {
  try {
    const res = await fetch(`http://${consul.host}:${consul.port}/v1/catalog/service/${service}`,
      { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return `HTTP ${res.status}`;
    return ((await res.json()) as unknown[]).length;
  } catch (error) {
    return (error as Error).message;
  }
}

// the compose file requires one (the admin API is reachable from every container of the demo network)
const ADMIN_TOKEN = randomBytes(16).toString('hex');

interface BalancerStatus {
  readonly upstreams?: ReadonlyArray<{ readonly name: string; readonly servers: ReadonlyArray<{ readonly host: string; readonly port: number; readonly status: string }> }>;
}

async function balancerStatus(admin: { host: string; port: number }): Promise<BalancerStatus> {
  const res = await fetch(`http://${admin.host}:${admin.port}/status`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 200, `balancer admin /status answered ${res.status}`);
  return (await res.json()) as BalancerStatus;
}

async function waitForBalancerServers(admin: { host: string; port: number }, service: string, want: number, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  let last = 'no answer';
  while (performance.now() < deadline) {
    try {
      const status = await balancerStatus(admin);
      const servers = status.upstreams?.find((u) => u.name === service)?.servers ?? [];
      if (servers.length === want) return { ok: true, last: '' };
      last = JSON.stringify(status).slice(0, 2000);
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(100);
  }
  return { ok: false, last };
}

async function waitForCatalog(consul: { host: string; port: number }, service: string, want: number, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  let last: number | string = 'no answer';
  while (performance.now() < deadline) {
    last = await catalogCount(consul, service);
    if (last === want) return;
    await sleep(200);
  }
  assert.fail(`Consul catalog: ${want} instance(s) of ${service} expected within ${timeoutMs} ms, last saw ${last}`);
}

describe('docker-compose demo end to end', { skip, timeout: 400_000 }, () => {
  let imageTags: readonly string[] = [];
  const projects: ComposeProject[] = [];

  before(async () => {
    const t0 = performance.now();
    const images = await buildDemoImages({ repoRoot, prefix: imagePrefix, labels, signal: suiteSignal });
    imageTags = images.tags;
    process.stderr.write(`# compose-demo: images built in ${Math.round(performance.now() - t0)} ms ${JSON.stringify(images.timingsMs)} (${cli?.file} ${cli?.version})\n`);
  }, { timeout: 240_000 });

  after(async () => {
    const cleanup = AbortSignal.timeout(180_000);
    for (const p of projects) {
      const problem = await p.down();
      if (problem) process.stderr.write(`# compose-demo: ${p.name}: ${problem}\n`);
    }
    // Anything of this run that compose did not remove (a crash between `up` and `down`).
    const leftovers = await runCommand('docker', ['ps', '-aq', '--filter', `label=cbtest.run=${runId}`],
      { signal: cleanup, timeoutMs: 30_000, allowFailure: true });
    const ids = leftovers.stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await runCommand('docker', ['rm', '-f', ...ids], { signal: cleanup, timeoutMs: 60_000, allowFailure: true });
    const nets = await runCommand('docker', ['network', 'ls', '-q', '--filter', `label=cbtest.run=${runId}`],
      { signal: cleanup, timeoutMs: 30_000, allowFailure: true });
    const netIds = nets.stdout.split('\n').filter(Boolean);
    if (netIds.length > 0) await runCommand('docker', ['network', 'rm', ...netIds], { signal: cleanup, timeoutMs: 60_000, allowFailure: true });
    await removeImages(imageTags, cleanup);
  }, { timeout: 200_000 });

  for (const mode of ['dynamic', 'reload'] as const) {
    it(`${mode} mode: one instance answers, three after scaling up, no failure while scaling down`, { timeout: 180_000 }, async () => {
      const project = composeProject({
        cli: cli!,
        project: `cbtest${runId}${mode[0]}`,
        files: ['docker-compose.yml', 'docker-compose.ci.yml'],
        cwd: path.join(repoRoot, 'compose'),
        env: {
          BALANCER_MODE: mode,
          // empty: ephemeral host ports on 127.0.0.1 (read back with `docker-compose port`)
          BALANCER_PORT: '', BALANCER_ADMIN_PORT: '', CONSUL_PORT: '',
          CBTEST_RUN: runId, CBTEST_IMAGES: imagePrefix, CBTEST_WEB_SERVICE: webService,
          BALANCER_ADMIN_TOKEN: ADMIN_TOKEN,
        },
        signal: suiteSignal,
      });
      projects.push(project);
      // Both spellings of scaling are part of the walkthrough: one per mode.
      const scale = (n: number) => mode === 'dynamic'
        ? project.run(['up', '-d', '--no-build', '--scale', `web=${n}`])
        : project.run(['scale', `web=${n}`]);
      const step = (name: string, t0: number) =>
        process.stderr.write(`# compose-demo ${mode}: ${name} after ${Math.round(performance.now() - t0)} ms\n`);
      const t0 = performance.now();
      try {
        await project.run(['up', '-d', '--no-build']);
        step('up', t0);
        const proxy = await project.port('balancer', 8080);
        const admin = await project.port('balancer', 8081);
        const consul = await project.port('consul', 8500);
        const target: Target = { host: proxy.host, port: proxy.port, service: webService };

        // 1. the single instance answers
        const [firstName] = await hostnames(await project.containerIds('web'));
        const first = await pollUntil(target, (seen) => seen.at(-1)?.servedBy !== undefined,
          { timeoutMs: 60_000, intervalMs: 250, signal: suiteSignal });
        assert.ok(first.ok, `no answer through the balancer (Host: ${webService}) within 60 s; `
          + `catalog has ${await catalogCount(consul, webService)} instance(s); ${describeReplies(first.seen.slice(-5))}`);
        assert.equal(first.seen.at(-1)?.servedBy, firstName, 'the answer names the one web container');
        step('first answer', t0);

        // 2. three instances, all answer
        await scale(3);
        const threeNames = await hostnames(await project.containerIds('web'));
        assert.equal(threeNames.length, 3, `three web containers after scaling up, got ${threeNames.join(', ')}`);
        const spread = await pollUntil(target,
          (seen) => threeNames.every((n) => seen.some((r) => r.servedBy === n)),
          { timeoutMs: 45_000, intervalMs: 20, signal: suiteSignal });
        assert.ok(spread.ok, `all of ${threeNames.join(', ')} should answer within 45 s; `
          + `catalog has ${await catalogCount(consul, webService)}; ${describeReplies(spread.seen)}`);
        step(`three answer (${spread.seen.length} requests)`, t0);

        // 3. back to one under a continuous request loop
        const load = startLoad(target, { concurrency: 2, maxMs: 90_000, maxRequests: 30_000, pauseMs: 5 });
        await sleep(1_000);
        await scale(1);
        const [survivor] = await hostnames(await project.containerIds('web'));
        await waitForCatalog(consul, webService, 1, 20_000);
        const catalogAt = performance.now();
        // Reload mode follows the catalog only once a new worker generation listens: wait for the
        // balancer's own view (every worker of the serving generation) to hold the survivor alone.
        const converged = await waitForBalancerServers(admin, webService, 1, 30_000);
        assert.ok(converged.ok, `the balancer should drop the removed instances within 30 s of the catalog: ${converged.last}`);
        const settledAt = performance.now();
        step(`scaled down (balancer followed the catalog in ${Math.round(settledAt - catalogAt)} ms)`, t0);
        await sleep(3_000);
        const replies = await load.stop();
        const removed = threeNames.filter((n) => n !== survivor);
        const failed = replies.filter((r) => r.error);
        assert.equal(failed.length, 0, `no request may fail while scaling down: ${describeReplies(replies)}`);
        const afterwards = replies.filter((r) => r.startedAt >= settledAt);
        const lastStart = Math.round((replies.at(-1)?.startedAt ?? 0) - settledAt);
        assert.ok(afterwards.length >= 20, `the loop kept running after the scale-down (${afterwards.length} requests; `
          + `last request started ${lastStart} ms after it, slowest ${Math.max(...replies.map((r) => r.ms))} ms; ${describeReplies(replies)})`);
        const strays = afterwards.filter((r) => r.servedBy !== survivor);
        assert.equal(strays.length, 0,
          `after the scale-down only ${survivor} answers; removed ${removed.join(', ')}: ${describeReplies(afterwards)}`);
        const slowest = Math.max(...afterwards.map((r) => r.ms));
        assert.ok(slowest < 2_000, `no request after the scale-down waits on a removed instance (slowest ${slowest} ms)`);
        step(`done: ${describeReplies(replies)}; slowest afterwards ${slowest} ms`, t0);

        // and the balancer still routes on a fresh request
        assert.equal((await getOnce(target, 5_000)).servedBy, survivor);
      } catch (error) {
        process.stderr.write(`# compose-demo ${mode}: FAILED; docker-compose logs:\n${await project.logs(150)}\n`);
        throw error;
      } finally {
        const problem = await project.down();
        if (problem) process.stderr.write(`# compose-demo ${mode}: ${problem}\n`);
        step('down', t0);
      }
    });
  }
});
