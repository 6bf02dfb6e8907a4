// The README's command lines, run as a newcomer runs them: read out of README.md ("Fresh machine", the
// docker-compose demo, "Quick start without Docker") and compose/README.md, each line typed as written
// into one shell (a second terminal for the lines that run on), on an empty environment. The one change
// CI makes: every docker-compose command gets compose/docker-compose.ci.yml (images built from local
// ones, the Consul API double for the consul image), through a `docker-compose` first on PATH. Every
// code line of those sections has a row below saying how it is run and what shows it worked; a line
// without a row, or a row without a line, fails the test, so the README cannot drift from what runs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { startConsulDouble, type ConsulDouble } from '../support/consul-double/index.js';
import { buildDemoImages, removeImages } from '../support/demo-images.js';
import { composeProject, findComposeCli, type ComposeCli } from '../support/compose-project.js';
import { allCodeLines, codeLines, sectionLines } from '../support/readme-commands.js';
import { repoRoot } from '../support/repo-root.js';
import { runCommand } from '../support/run-command.js';

const root = repoRoot();
const readme = await readFile(path.join(root, 'README.md'), 'utf8');
const composeReadme = await readFile(path.join(root, 'compose', 'README.md'), 'utf8');
const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
const imagePrefix = `cbtest-${runId}`;
const project = `cbreadme${runId}`;
const suiteSignal = AbortSignal.timeout(2_400_000);
/** the ports the README's commands use as written */
const FIXED_PORTS = [8080, 8081, 8500];

/** What a line does when run, and what shows it worked. */
type Treatment =
  /** typed into the session; exit status 0; `expect` on its output, `then` waits for its effect */
  | { readonly kind: 'run'; readonly timeoutMs?: number; readonly expect?: (out: string) => string | undefined; readonly then?: (s: Session) => Promise<void> }
  /** runs on in a second terminal (started in the session's directory) until the block ends or `stops` */
  | { readonly kind: 'terminal'; readonly ready: (out: string) => boolean; readonly readyMs?: number }
  /** not run by this test, and why */
  | { readonly kind: 'not-here'; readonly why: string }
  /** a sample of output, not a command */
  | { readonly kind: 'output' };

interface Terminal {
  readonly line: string;
  readonly child: ChildProcess;
  out: string;
}

interface Session {
  /** everything the demo's traffic loop (a second terminal) printed so far */
  terminalOutput(match: string): string;
}

const json = (out: string): unknown => {
  try {
    return JSON.parse(out);
  } catch {
    return undefined;
  }
};
const webNames = (out: string) => new Set([...out.matchAll(/web instance (\S+) answered/g)].map((m) => m[1]));

async function waitFor(what: string, ms: number, ok: () => boolean): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) assert.fail(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const LOOP = "while sleep 0.2; do curl -s -H 'Host: web' localhost:8080; done";
const NOT_PULLED = 'builds ../Dockerfile FROM node:20-bookworm-slim with npm ci: needs image pulls and the npm registry (the CI override builds the same roles from local images)';

/** Every code line of the sections, by its exact text; the commands of compose/README.md that README.md lacks run in the demo's sitting. */
const TREATMENTS = new Map<string, Treatment>([
  // Fresh machine
  ['npm ci                                             # install (builds dist/ via `prepare`)',
    { kind: 'not-here', why: 'the install this test runs in (CI ran it before the tests; a second one would replace the node_modules under this run)' }],
  ['npx balancer --help                                # the programs run with npx',
    // the first npx of a fresh npm cache installs this package into it (its `prepare` compiles it): minutes on a busy machine
    { kind: 'run', timeoutMs: 900_000, expect: (out) => (out.includes('Usage: balancer') ? undefined : 'no usage text') }],
  ['docker-compose -f compose/docker-compose.yml up -d --build   # the main job: the demo (needs Docker and image pulls)',
    { kind: 'run', timeoutMs: 600_000 }],
  ['npm test                                           # the whole test suite (what CI runs)',
    { kind: 'not-here', why: 'the whole suite, this test among it' }],
  // The docker-compose demo (README.md)
  ['cd compose', { kind: 'run' }],
  ['docker-compose up -d --build', { kind: 'run', timeoutMs: 600_000 }],
  [`${LOOP}     # in a second terminal`,
    { kind: 'terminal', ready: (out) => webNames(out).size > 0, readyMs: 120_000 }],
  ['docker-compose up -d --scale web=3        # or: docker-compose scale web=3 — three names take turns',
    { kind: 'run', timeoutMs: 300_000, then: (s) => waitFor('three web names take turns in the traffic loop', 90_000, () => webNames(s.terminalOutput(LOOP)).size >= 3) }],
  ['docker-compose up -d --scale web=1        # no request fails: instances drain via their health check',
    { kind: 'run', timeoutMs: 300_000 }],
  ['TOKEN=$(docker-compose exec -T balancer cat /app/run/admin-token)   # the admin token, made at start', { kind: 'run' }],
  ['curl -s -H "Authorization: Bearer $TOKEN" localhost:8081/status    # the balancer\'s upstreams and workers',
    { kind: 'run', expect: (out) => (Array.isArray((json(out) as { upstreams?: unknown })?.upstreams) && /"name":"web"/.test(out) ? undefined : `no upstream "web" in ${out.slice(0, 300)}`) }],
  ['BALANCER_MODE=reload docker-compose up -d balancer    # flip the update mechanism, scale again',
    { kind: 'run', timeoutMs: 300_000, then: (s) => traffic(s, 'after the flip to reload mode') }],
  ['docker-compose down -v --rmi local', { kind: 'run', timeoutMs: 300_000 }],
  // compose/README.md
  ['docker-compose up -d --build            # builds ../Dockerfile (targets registrator, balancer) and web/', { kind: 'run', timeoutMs: 600_000 }],
  [LOOP, { kind: 'terminal', ready: (out) => webNames(out).size > 0, readyMs: 120_000 }],
  ['web instance 5a8e5054e042 answered GET /', { kind: 'output' }],
  ['docker-compose up -d --scale web=3      # or the older spelling: docker-compose scale web=3', { kind: 'run', timeoutMs: 300_000 }],
  ['docker-compose up -d --scale web=1', { kind: 'run', timeoutMs: 300_000 }],
  ['TOKEN=$(docker-compose exec -T balancer cat /app/run/admin-token)   # made at start: "The admin API" below', { kind: 'run' }],
  ['curl -s -H "Authorization: Bearer $TOKEN" localhost:8081/status    # balancer admin API',
    { kind: 'run', expect: (out) => (/"name":"web"/.test(out) ? undefined : `no upstream "web" in ${out.slice(0, 300)}`) }],
  ['curl -s localhost:8500/v1/health/service/web?passing | head -c 600   # Consul UI: http://localhost:8500/ui',
    { kind: 'run', expect: (out) => (/"Service":\{/.test(out) && out.includes('"web"') ? undefined : `no passing web instance in ${out.slice(0, 300)}`) }],
  ['BALANCER_MODE=reload docker-compose up -d balancer', { kind: 'run', timeoutMs: 300_000 }],
  ['docker-compose logs -f balancer         # reload mode: "reloaded: new generation serving, old one draining"',
    { kind: 'terminal', ready: (out) => out.includes('"reload mode') || out.includes('"msg":"reload') }],
  ['BALANCER_MODE=dynamic docker-compose up -d balancer', { kind: 'run', timeoutMs: 300_000, then: (s) => traffic(s, 'after the flip back to dynamic mode') }],
  ['docker-compose exec -T balancer cat /app/run/admin-token',
    { kind: 'run', expect: (out) => (/^[A-Za-z0-9_-]{43}\s*$/.test(out) ? undefined : `not a token: ${out.slice(0, 100)}`) }],
  ['docker build --target registrator -t consul-balancer/registrator ..', { kind: 'not-here', why: NOT_PULLED }],
  ['docker build --target balancer -t consul-balancer/balancer ..', { kind: 'not-here', why: NOT_PULLED }],
  ['npm run build && node --test dist/test/integration/compose-demo.test.js', { kind: 'not-here', why: 'another test of this suite' }],
  // Quick start without Docker (a Consul agent on 127.0.0.1:8500 with a service "web" is its premise)
  ['npx balancer --consul 127.0.0.1:8500 --listen 0.0.0.0:8080 --admin 127.0.0.1:8081',
    { kind: 'terminal', ready: (out) => out.includes('"msg":"balancer started"'), readyMs: 60_000 }],
  ['npx registrator -internal consul://127.0.0.1:8500', { kind: 'terminal', ready: (out) => out.includes('"msg":"starting"'), readyMs: 60_000 }],
  ["curl -H 'Host: web' localhost:8080/        # a Consul service named \"web\" is routed by Host",
    { kind: 'run', expect: (out) => (out.includes('quick-start web answered') ? undefined : `not the web service's answer: ${out.slice(0, 300)}`) }],
  ['npx balancer --no-consul --listen 127.0.0.1:8080', { kind: 'terminal', ready: (out) => out.includes('"msg":"balancer started"'), readyMs: 60_000 }],
  ["curl -X POST -d 'server 127.0.0.1:9001 weight=2; server 127.0.0.1:9002;' localhost:8081/upstream/web",
    // dyups answers: "success" once every worker serves it
    { kind: 'run', expect: (out) => (out.trim() === 'success' ? undefined : `the admin API did not take the upstream: ${out.slice(0, 300)}`) }],
]);

/** after a balancer restart, the loop of the second terminal is answered again */
async function traffic(s: Session, when: string): Promise<void> {
  const before = s.terminalOutput(LOOP).length;
  await waitFor(`the traffic loop is answered ${when}`, 120_000, () => webNames(s.terminalOutput(LOOP).slice(before)).size > 0);
}

/** The blocks in the order they run: each is one sitting (its second terminals end with it). */
function blocks(): { name: string; lines: string[] }[] {
  const fresh = codeLines(sectionLines(readme, 'Fresh machine'));
  const demo = codeLines(sectionLines(readme, 'The docker-compose demo'));
  const quick = sectionLines(readme, 'Quick start without Docker');
  const cut = quick.findIndex((l) => l.startsWith('Without Consul'));
  assert.ok(cut > 0, 'Quick start: the "Without Consul" part was not found');
  // compose/README.md's lines that README.md's demo lacks, before its clean-up
  const seen = new Set(demo);
  const extra = allCodeLines(composeReadme).filter((l) => !seen.has(l));
  const down = demo.findIndex((l) => l.startsWith('docker-compose down'));
  assert.ok(down > 0, 'the demo ends with docker-compose down');
  return [
    { name: 'Fresh machine + the docker-compose demo + compose/README.md', lines: [...fresh, ...demo.slice(0, down), ...extra, ...demo.slice(down)] },
    { name: 'Quick start without Docker', lines: codeLines(quick.slice(0, cut)) },
    { name: 'Quick start without Docker: without Consul', lines: codeLines(quick.slice(cut)) },
  ];
}

/** One shell, as a terminal: each line as typed, its own stdin empty (nothing read from the next lines). */
class Shell {
  readonly child: ChildProcess;
  #buffer = '';
  #errors = '';
  #n = 0;
  cwd: string;

  constructor(readonly env: NodeJS.ProcessEnv, cwd: string) {
    this.cwd = cwd;
    this.child = spawn('bash', ['--noprofile', '--norc'], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (c: Buffer) => (this.#buffer += c.toString()));
    this.child.stderr!.on('data', (c: Buffer) => (this.#errors += c.toString()));
  }

  /** `out` is what the line wrote to stdout, `err` to stderr */
  async type(line: string, timeoutMs: number): Promise<{ code: number; out: string; err: string }> {
    const marker = `__readme_line_${++this.#n}_${runId}__`;
    const start = this.#buffer.length;
    const errStart = this.#errors.length;
    this.child.stdin!.write(`{\n${line}\n} < /dev/null\nprintf '\\n${marker} %d %s\\n' "$?" "$PWD"\n`);
    const end = performance.now() + timeoutMs;
    const re = new RegExp(`\\n${marker} (\\d+) (.*)\\n`);
    for (;;) {
      const m = re.exec(this.#buffer.slice(start));
      if (m) {
        this.cwd = m[2];
        return { code: Number(m[1]), out: this.#buffer.slice(start, start + m.index), err: this.#errors.slice(errStart) };
      }
      if (this.child.exitCode !== null) throw new Error(`the shell exited while running: ${line}`);
      if (performance.now() > end) throw new Error(`still running after ${timeoutMs} ms: ${line}\n${this.#buffer.slice(start).slice(-2000)}\n${this.#errors.slice(errStart).slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  close(): void {
    this.child.stdin!.end();
    this.child.kill('SIGKILL');
  }
}

function openTerminal(line: string, env: NodeJS.ProcessEnv, cwd: string): Terminal {
  // its own process group, so closing the terminal ends everything it started
  const child = spawn('bash', ['--noprofile', '--norc', '-c', line], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const t: Terminal = { line, child, out: '' };
  child.stdout!.on('data', (c: Buffer) => (t.out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (t.out += c.toString()));
  return t;
}

async function closeTerminal(t: Terminal): Promise<void> {
  if (t.child.exitCode !== null || t.child.signalCode !== null) return;
  const gone = new Promise((r) => t.child.once('exit', r));
  try {
    process.kill(-t.child.pid!, 'SIGINT');
  } catch {
    return;
  }
  const timer = setTimeout(() => { try { process.kill(-t.child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 10_000);
  await gone;
  clearTimeout(timer);
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function whyUnavailable(): Promise<{ why?: string; cli?: ComposeCli }> {
  try {
    await runCommand('docker', ['info', '--format', '{{.ServerVersion}}'], { signal: suiteSignal, timeoutMs: 15_000 });
  } catch {
    return { why: 'no Docker engine answers (docker info failed)' };
  }
  const cli = await findComposeCli(suiteSignal);
  return cli ? { cli } : { why: 'neither docker-compose nor the docker compose plugin is installed' };
}

const { why: unavailable, cli } = await whyUnavailable();

describe('the README commands, as written', { timeout: 2_400_000 }, () => {
  // no Docker engine or compose: a failure that says why, as every Docker-using test (never a silent skip)
  before(() => {
    if (unavailable !== undefined) throw new Error(`the README commands need Docker: ${unavailable}`);
  });
  let home = '';
  let imageTags: readonly string[] = [];
  let env: NodeJS.ProcessEnv = {};

  it('every code line of the sections has a treatment here, and every treatment a line', () => {
    const lines = blocks().flatMap((b) => b.lines);
    const missing = lines.filter((l) => !TREATMENTS.has(l));
    assert.deepEqual(missing, [], 'README lines this test does not know how to run: add a row to TREATMENTS');
    const stale = [...TREATMENTS.keys()].filter((k) => !lines.includes(k));
    assert.deepEqual(stale, [], 'rows of TREATMENTS no README line has any more');
  });

  before(async () => {
    for (const port of FIXED_PORTS) assert.ok(await portFree(port), `port ${port} is taken: the README's commands use it as written`);
    home = await mkdtemp(path.join(os.tmpdir(), 'readme-commands-'));
    const images = await buildDemoImages({ repoRoot: root, prefix: imagePrefix, labels: { 'cbtest.run': runId }, signal: suiteSignal });
    imageTags = images.tags;
    // the one change to what the README says: compose commands get the CI override file
    const bin = path.join(home, 'bin');
    const real = cli!.file === 'docker' ? 'docker compose' : (await runCommand('sh', ['-c', 'command -v docker-compose'], { signal: suiteSignal, timeoutMs: 5_000 })).stdout.trim();
    const override = path.join(root, 'compose', 'docker-compose.ci.yml');
    await runCommand('mkdir', ['-p', bin], { signal: suiteSignal, timeoutMs: 5_000 });
    await writeFile(path.join(bin, 'docker-compose'), [
      '#!/bin/sh',
      '# readme-commands.test: the README\'s compose command plus compose/docker-compose.ci.yml, nothing else',
      `if [ "$1" = "-f" ] || [ "$1" = "--file" ]; then f=$2; shift 2; exec ${real} -f "$f" -f '${override}' "$@"; fi`,
      `exec ${real} -f docker-compose.yml -f '${override}' "$@"`,
      '',
    ].join('\n'));
    await chmod(path.join(bin, 'docker-compose'), 0o755);
    // empty but for what a shell has (PATH, HOME) and what the CI override needs
    env = {
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
      COMPOSE_PROJECT_NAME: project,
      CBTEST_RUN: runId, CBTEST_IMAGES: imagePrefix, CBTEST_WEB_SERVICE: 'web',
    };
  }, { timeout: 400_000 });

  after(async () => {
    const cleanup = AbortSignal.timeout(240_000);
    const p = composeProject({ cli: cli!, project, files: ['docker-compose.yml', 'docker-compose.ci.yml'], cwd: path.join(root, 'compose'), env: { CBTEST_RUN: runId, CBTEST_IMAGES: imagePrefix, CBTEST_WEB_SERVICE: 'web' }, signal: cleanup });
    const problem = await p.down();
    if (problem) process.stderr.write(`# readme-commands: ${problem}\n`);
    const left = await runCommand('docker', ['ps', '-aq', '--filter', `label=cbtest.run=${runId}`], { signal: cleanup, timeoutMs: 30_000, allowFailure: true });
    const ids = left.stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await runCommand('docker', ['rm', '-f', ...ids], { signal: cleanup, timeoutMs: 60_000, allowFailure: true });
    await removeImages(imageTags, cleanup);
    if (home) await rm(home, { recursive: true, force: true });
  }, { timeout: 300_000 });

  for (const block of blocks()) {
    it(block.name, { timeout: 1_500_000 }, async () => {
      let consul: ConsulDouble | undefined;
      let web: http.Server | undefined;
      if (block.name.startsWith('Quick start without Docker') && !block.name.includes('without Consul')) {
        // the premise: a Consul agent on 127.0.0.1:8500 that knows a service "web"
        web = http.createServer((req, res) => res.end(`quick-start web answered ${req.method} ${req.url}\n`));
        await new Promise<void>((r) => web!.listen(0, '127.0.0.1', r));
        consul = await startConsulDouble({ port: 8500 });
        const put = await fetch(`${consul.url}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ ID: 'web-1', Name: 'web', Address: '127.0.0.1', Port: (web.address() as AddressInfo).port }) });
        assert.equal(put.status, 200);
      }
      const shell = new Shell(env, root);
      const terminals: Terminal[] = [];
      const session: Session = { terminalOutput: (line) => terminals.find((t) => t.line.startsWith(line))?.out ?? '' };
      try {
        for (const line of block.lines) {
          const t = TREATMENTS.get(line)!;
          if (t.kind === 'not-here' || t.kind === 'output') continue;
          if (t.kind === 'terminal') {
            const term = openTerminal(line, env, shell.cwd);
            terminals.push(term);
            await waitFor(`"${line}" shows it works`, t.readyMs ?? 60_000, () => {
              if (term.child.exitCode !== null) assert.fail(`"${line}" exited ${term.child.exitCode}:\n${term.out.slice(-2000)}`);
              return t.ready(term.out);
            });
            continue;
          }
          if (line.startsWith('docker-compose down')) for (const term of terminals) await closeTerminal(term);
          const r = await shell.type(line, t.timeoutMs ?? 300_000);
          assert.equal(r.code, 0, `"${line}" exited ${r.code}:\n${r.out.slice(-2000)}\n${r.err.slice(-2000)}`);
          const wrong = t.expect?.(r.out);
          assert.equal(wrong, undefined, `"${line}": ${wrong}\n${r.err.slice(-1000)}`);
          await t.then?.(session);
        }
      } catch (err) {
        for (const term of terminals) process.stderr.write(`# readme-commands: second terminal "${term.line}":\n${term.out.slice(-1500)}\n`);
        throw err;
      } finally {
        for (const term of terminals) await closeTerminal(term);
        shell.close();
        // a block that failed half way leaves no demo holding the ports of the next one
        if (block.lines.some((l) => l.startsWith('docker-compose'))) {
          const problem = await composeProject({ cli: cli!, project, files: ['docker-compose.yml', 'docker-compose.ci.yml'], cwd: path.join(root, 'compose'), env: { CBTEST_RUN: runId, CBTEST_IMAGES: imagePrefix, CBTEST_WEB_SERVICE: 'web' }, signal: AbortSignal.timeout(120_000) }).down();
          if (problem) process.stderr.write(`# readme-commands: ${problem}\n`);
        }
        await consul?.close();
        if (web) await new Promise<void>((r) => web!.close(() => r()));
      }
    });
  }
});
