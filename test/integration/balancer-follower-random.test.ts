// The proof that the routing table follows the catalog: a seeded sequence of real-Consul writes
// (test/support/consul-ops-generator.ts) applied through the HTTP API while a real balancer process
// with 2 workers follows it. At every quiet point (no write from the test; the follower gets up to
// QUIET_DEADLINE_MS to settle, well under --consul-resync, set to 1 h so the safety net cannot hide a
// miss) every worker's table must equal the catalog's routable set exactly, computed from the
// catalog's own answers (health/service?passing), not from the generator's model.
// FOLLOWER_OPS (default 5000; 2000 per-service, below) sets the number of writes, FOLLOWER_SEED replays a run. A failure
// prints the seed and the sequence shrunk (ddmin) to what still fails.
// Runs unchanged against a real agent with CONSUL_HTTP_ADDR (catalog register/deregister with Node).
// Both watch designs run, one test each, the same seed: the index design (the default, plain HTTP) and
// `--consul-watch per-service` over HTTP/2 to the double's HTTPS listener (a double of the test's own:
// the test CA is made here; writes still over HTTP). FOLLOWER_WATCH=index or per-service runs one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnBalancer, type BalancerProcess } from '../support/balancer-process.js';
import { consulForTest, testScope, type ConsulTarget, type TestScope } from '../support/consul.js';
import { describeOp, generateOps, shrinkOps, type ConsulOp } from '../support/consul-ops-generator.js';
import { agentNodeName, applyOp, catalogRouting, diffRouting, workerRoutings } from '../support/follower-harness.js';
import { makeTestCa } from '../support/tls-certs.js';

/** writes per design; unset: 5,000 for the index design, 2,000 per-service (the file stays ~3 min on a loaded CI machine) */
const opsFor = (watch: string): number => Number(process.env.FOLLOWER_OPS ?? (watch === 'per-service' ? 2000 : 5000));
const SEED = process.env.FOLLOWER_SEED !== undefined ? Number(process.env.FOLLOWER_SEED) : Math.floor(Math.random() * 2 ** 31);
const WORKERS = 2;
/** after the last write of a stretch, how long the tables may take to equal the catalog */
const QUIET_DEADLINE_MS = 10_000;
const SHRINK_DEADLINE_MS = 3_000;

interface World {
  consul: ConsulTarget;
  balancer: BalancerProcess;
  adminPort: number;
  agentNode: string;
  close(): Promise<void>;
}

type WatchDesign = 'index' | 'per-service';
const WATCHES: WatchDesign[] = process.env.FOLLOWER_WATCH === undefined ? ['index', 'per-service'] : [process.env.FOLLOWER_WATCH as WatchDesign];
for (const w of WATCHES) if (w !== 'index' && w !== 'per-service') throw new Error(`FOLLOWER_WATCH: expected index or per-service, got "${w}"`);

async function startWorld(watch: WatchDesign): Promise<World> {
  const ca = watch === 'per-service' ? await makeTestCa('follower-random') : undefined;
  const pem = await ca?.issue(['localhost'], { extraIps: ['127.0.0.1'] });
  const consul = await consulForTest(pem ? { ownDouble: true, tls: { cert: pem.cert, key: pem.key } } : {});
  const agentNode = await agentNodeName(consul);
  const follow = ca ? ['--consul', consul.double!.httpsUrl!, '--consul-watch', 'per-service'] : ['--consul', consul.addr];
  const balancer = spawnBalancer([...follow, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', String(WORKERS),
    '--consul-wait', '10s', '--consul-resync', '1h', '--log-level', 'info'], ca ? { NODE_EXTRA_CA_CERTS: ca.certPath } : {});
  try {
    // a loaded machine starts two workers slowly
    const started = await balancer.waitForLog((l) => l.msg === 'balancer started', 90_000, 'balancer started');
    return {
      consul, balancer, adminPort: Number(started.adminPort), agentNode,
      async close() {
        await balancer.stop(10_000);
        await consul.close();
        await ca?.close();
      },
    };
  } catch (err) {
    await balancer.stop(1000);
    await consul.close();
    await ca?.close();
    throw err;
  }
}

/** Polls until every worker equals the catalog; the differences of the last try when it never does. */
async function settle(world: World, prefix: string, deadlineMs: number): Promise<string[]> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const expected = await catalogRouting(world.consul, prefix);
    const workers = await workerRoutings(world.adminPort, prefix);
    const diffs = workers.length < WORKERS ? [`${workers.length} worker(s) answered, not ${WORKERS}`] : workers.flatMap((w, i) => diffRouting(expected, w).map((d) => `worker ${i + 1}: ${d}`));
    if (diffs.length === 0) return [];
    if (Date.now() > deadline) return diffs;
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface RunResult {
  /** index of the quiet point that failed, with what differed */
  failure?: { at: number; diffs: string[] };
  quiets: number;
  writes: number;
}

/** Applies ops to the world, checking at every quiet point; stops at the first divergence. */
async function run(world: World, ops: readonly ConsulOp[], prefix: string, deadlineMs: number): Promise<RunResult> {
  let quiets = 0;
  let writes = 0;
  const first = await settle(world, prefix, deadlineMs);
  if (first.length > 0) return { failure: { at: -1, diffs: first }, quiets, writes };
  for (const [i, op] of ops.entries()) {
    if (op.kind === 'quiet') {
      quiets++;
      const diffs = await settle(world, prefix, deadlineMs);
      if (diffs.length > 0) return { failure: { at: i, diffs }, quiets, writes };
      continue;
    }
    await applyOp(world.consul, world.agentNode, op);
    writes += op.kind === 'burst' ? op.ops.length : 1;
  }
  return { quiets, writes };
}

/** The same ops under another prefix: a shrink try runs in the same world beside the earlier ones. */
function withPrefix(ops: readonly ConsulOp[], from: string, to: string): ConsulOp[] {
  return JSON.parse(JSON.stringify(ops).split(from).join(to)) as ConsulOp[];
}

/** Removes what a run left: its catalog nodes leave, its agent services and KV go. */
async function cleanRun(world: World, ops: readonly ConsulOp[], scope: TestScope): Promise<void> {
  for (const node of nodesOf(ops)) await applyOp(world.consul, world.agentNode, { kind: 'node-leave', node }).catch(() => undefined);
  await scope.clean(world.consul);
}

/** The catalog-only nodes a sequence names (never the agent's own). */
function nodesOf(ops: readonly ConsulOp[]): string[] {
  const nodes = new Set<string>();
  const visit = (o: ConsulOp) => {
    if (o.kind === 'burst') o.ops.forEach(visit);
    else if (o.kind === 'node-join' || o.kind === 'node-fail' || o.kind === 'node-recover' || o.kind === 'node-readdress') nodes.add(o.node);
  };
  ops.forEach(visit);
  return [...nodes];
}

/** Ops per kind, for the diagnostic line. */
function tally(ops: readonly ConsulOp[]): string {
  const counts = new Map<string, number>();
  const add = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
  const visit = (o: ConsulOp) => {
    if (o.kind === 'burst') {
      add('burst');
      o.ops.forEach(visit);
    } else add(o.kind === 'register' ? `register:${o.why}` : o.kind === 'deregister' ? `deregister:${o.why}` : o.kind);
  };
  ops.forEach(visit);
  return [...counts].sort().map(([k, v]) => `${k} ${v}`).join(', ');
}

for (const watch of WATCHES) test(`${watch}: every worker's table equals the catalog's routable set after every quiet point (${opsFor(watch)} writes, seed ${SEED})`, { timeout: Math.max(900_000, opsFor(watch) * 150) }, async (t) => {
  const OPS = opsFor(watch);
  const world = await startWorld(watch);
  const scopes: TestScope[] = [];
  const runs: ConsulOp[][] = [];
  try {
    const scope = testScope();
    scopes.push(scope);
    const ops = generateOps(SEED, { prefix: scope.tag, agentNode: world.agentNode, ops: OPS });
    runs.push(ops);
    t.diagnostic(`${watch}, seed ${SEED}: ${tally(ops)}`);
    const t0 = Date.now();
    const result = await run(world, ops, scope.tag, QUIET_DEADLINE_MS);
    t.diagnostic(`${watch}: ${result.writes} writes, ${result.quiets} quiet points, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (result.failure === undefined) return;

    // shrink the stretch that failed, each try under a fresh prefix in the same world (a miss stays
    // missed, so a shorter deadline will do)
    const failing = ops.slice(0, result.failure.at + 1);
    let tries = 0;
    const shrunk = process.env.FOLLOWER_SHRINK === '0' ? failing : await shrinkOps(failing, async (candidate) => {
      tries++;
      const s = testScope();
      scopes.push(s);
      const retagged = withPrefix([...candidate, { kind: 'quiet' }], scope.tag, s.tag);
      runs.push(retagged);
      const r = await run(world, retagged, s.tag, SHRINK_DEADLINE_MS);
      return r.failure !== undefined;
    }, Number(process.env.FOLLOWER_SHRINK_TRIES ?? 60));
    assert.fail([
      `divergence at quiet point ${result.quiets} (op ${result.failure.at}) with FOLLOWER_WATCH=${watch} FOLLOWER_SEED=${SEED} FOLLOWER_OPS=${OPS}:`,
      ...result.failure.diffs.map((d) => `  ${d}`),
      `shrunk to ${shrunk.length} op(s) in ${tries} tries (replay: FOLLOWER_WATCH=${watch} FOLLOWER_SEED=${SEED} FOLLOWER_OPS=${OPS}):`,
      ...shrunk.map((o) => `  ${describeOp(o)}`),
    ].join('\n'));
  } finally {
    for (const [i, s] of scopes.entries()) await cleanRun(world, runs[i], s);
    await world.close();
  }
});
