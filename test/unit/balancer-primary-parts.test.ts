// The parts startPrimary is assembled from (balancer/src/cluster/primary/*), each alone: the stop
// list, the start dump, the initial state and the holder's start, the worker init, the dump's
// following of the table, publishing, and the relay of passive ejections between workers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { followTable } from '../../balancer/src/cluster/primary/dump-persistence.js';
import { holderStart, waitForInitialState, type InitialState } from '../../balancer/src/cluster/primary/initial-state.js';
import { startPublishing } from '../../balancer/src/cluster/primary/publish.js';
import { loadStartDump } from '../../balancer/src/cluster/primary/start-dump.js';
import { StopList } from '../../balancer/src/cluster/primary/stop-list.js';
import { CHALLENGE_RELAY_MARGIN_MS, workerInitFrom } from '../../balancer/src/cluster/primary/worker-init.js';
import { relayEjections, type WorkerHub } from '../../balancer/src/cluster/primary/worker-wiring.js';
import type { PrimaryToWorker, WorkerToPrimary } from '../../balancer/src/cluster/messages.js';
import type { WorkerChannel } from '../../balancer/src/cluster/supervisor.js';
import { StartupError } from '../../balancer/src/cluster/startup-error.js';
import { DUMP_FORMAT, type DumpContents } from '../../balancer/src/persistence/dump-file.js';
import { tableFromUpstreams } from '../../balancer/src/routing/build-table.js';
import { adminUpstream } from '../../balancer/src/routing/server-list.js';
import { TableHolder } from '../../balancer/src/routing/table-holder.js';
import { DEFAULT_TABLE_DEFAULTS } from '../../balancer/src/routing/tag-options.js';
import type { CatalogSnapshot, RouteTable } from '../../balancer/src/routing/types.js';
import { balancerConfig } from '../support/balancer-config.js';

const logger = pino({ level: 'silent' });
const tableWith = (port: number) => tableFromUpstreams({ api: adminUpstream('api', [{ host: '127.0.0.1', port }], DEFAULT_TABLE_DEFAULTS) }, []);
const SNAPSHOT: CatalogSnapshot = { services: { web: [] } };
const dumpOf = (table: RouteTable, extra: Partial<DumpContents> = {}): DumpContents => ({ format: DUMP_FORMAT, savedAt: '2026-01-01T00:00:00.000Z', table, adminUpstreams: {}, ...extra });
const never = new Promise<never>(() => undefined);

/** a pino logger that keeps its lines */
function recordingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) };
  return { logger: pino({ level: 'debug' }, stream), lines };
}

describe('StopList', () => {
  it('aborts its signal first, then runs the steps newest first, once however often stop is called', async () => {
    const stops = new StopList(logger);
    const ran: string[] = [];
    for (const name of ['budget', 'discovery', 'workers', 'admin']) stops.add(name, () => ran.push(`${name}${stops.signal.aborted ? '' : ' (not aborted)'}`));
    assert.deepEqual(stops.order(), ['admin', 'workers', 'discovery', 'budget']);
    assert.equal(stops.stop(), stops.stop());
    await stops.stop();
    assert.deepEqual(ran, ['admin', 'workers', 'discovery', 'budget']);
  });

  it('waits for each step before the next, and a step that fails is logged while the others still run', async () => {
    const { logger: log, lines } = recordingLogger();
    const stops = new StopList(log);
    const ran: string[] = [];
    stops.add('first', () => ran.push('first'));
    stops.add('broken', () => Promise.reject(new Error('cannot stop')));
    stops.add('slow', () => new Promise<void>((r) => setImmediate(() => { ran.push('slow'); r(); })));
    await stops.stop();
    assert.deepEqual(ran, ['slow', 'first']);
    const warn = lines.find((l) => l.step === 'broken');
    assert.equal(warn?.msg, 'stopping broken failed');
    assert.equal((warn?.err as { message?: string })?.message, 'cannot stop');
  });

  it('refuses a step added while stopping (it would never run)', async () => {
    const stops = new StopList(logger);
    await stops.stop();
    assert.throws(() => stops.add('late', () => undefined), /added while stopping/);
  });
});

describe('loadStartDump', () => {
  it('is undefined without a file or when the file does not exist', async () => {
    assert.equal(await loadStartDump(undefined, logger), undefined);
    assert.equal(await loadStartDump(path.join(os.tmpdir(), 'no-such-dir-primary-parts', 'dump.json'), logger), undefined);
  });

  it('moves an unusable file aside and starts without it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'primary-parts-dump-'));
    try {
      const file = path.join(dir, 'dump.json');
      await writeFile(file, '{ not json');
      const { logger: log, lines } = recordingLogger();
      assert.equal(await loadStartDump(file, log), undefined);
      const names = await readdir(dir);
      assert.equal(names.length, 1);
      assert.match(names[0], /^dump\.json\.corrupt-/);
      assert.ok(lines.some((l) => l.level === 50 && l.keptAs === path.join(dir, names[0])), 'the error names where the file went');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('waitForInitialState', () => {
  const weak = { strongDependency: false, startTimeoutMs: 60_000, consul: undefined };
  const dump = dumpOf(tableWith(1));
  const cases: { name: string; discovery?: 'ready' | 'failed'; dump?: DumpContents; want: InitialState['source'] }[] = [
    { name: 'no discovery, no dump: empty', want: 'empty' },
    { name: 'no discovery, a dump: the dump', dump, want: 'dump' },
    { name: 'Consul answers: its snapshot, whatever the dump', discovery: 'ready', dump, want: 'consul' },
    { name: 'Consul fails first: the dump', discovery: 'failed', dump, want: 'dump' },
    { name: 'Consul fails first, no dump: empty', discovery: 'failed', want: 'empty' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const discovery = c.discovery === undefined ? undefined : c.discovery === 'ready'
        ? { watcher: { ready: Promise.resolve(SNAPSHOT) }, failed: never }
        : { watcher: { ready: never }, failed: Promise.resolve(new Error('connection refused')) };
      const got = await waitForInitialState(weak, discovery, c.dump, logger);
      assert.equal(got.source, c.want);
      if (got.source === 'consul') assert.equal(got.snapshot, SNAPSHOT);
      if (got.source === 'dump') assert.equal(got.dump, c.dump);
    });
  }

  it('with --strong-dependency a failure is retried past, and no snapshot by the start timeout refuses to start', async () => {
    const strong = { strongDependency: true, startTimeoutMs: 30, consul: { baseUrl: 'http://127.0.0.1:1', waitMs: 1, minQueryIntervalMs: 1, debounceMs: 1 } };
    const failedAtOnce = { watcher: { ready: never }, failed: Promise.resolve(new Error('connection refused')) };
    await assert.rejects(waitForInitialState(strong, failedAtOnce, dump, logger),
      (e: unknown) => e instanceof StartupError && e.code === 'ERR_CONSUL_UNREACHABLE' && /no answer within 30 ms/.test(e.message));
    const late = { watcher: { ready: new Promise<CatalogSnapshot>((r) => setImmediate(() => r(SNAPSHOT))) }, failed: Promise.resolve(new Error('refused')) };
    assert.equal((await waitForInitialState({ ...strong, startTimeoutMs: 60_000 }, late, dump, logger)).source, 'consul');
  });
});

describe('holderStart', () => {
  const hook = 'export function onRequest(req) { return { headers: { "x-kv": "1" } }; }';
  const kvScript = { name: 'kv-one', source: hook, services: ['*'], loadedAt: '2026-01-01T00:00:00.000Z', origin: 'kv' };
  const adminScript = { name: 'admin-one', source: hook, services: ['*'], loadedAt: '2026-01-01T00:00:00.000Z' };
  const dumpTable = { ...tableWith(7), scripts: [kvScript, adminScript] } as unknown as RouteTable;
  const dump = dumpOf(dumpTable, { snapshot: { services: { old: [] } } });

  it('from Consul: its snapshot, no table given (the holder builds one)', () => {
    const o = holderStart({ source: 'consul', snapshot: SNAPSHOT }, dump, { scriptsKvPrefix: undefined }, DEFAULT_TABLE_DEFAULTS, logger);
    assert.equal(o.initialSnapshot, SNAPSHOT);
    assert.equal(o.initialTable, undefined);
  });

  it('from the dump: its snapshot and exactly its table as served', () => {
    const o = holderStart({ source: 'dump', dump }, dump, { scriptsKvPrefix: undefined }, DEFAULT_TABLE_DEFAULTS, logger);
    assert.equal(o.initialSnapshot, dump.snapshot);
    assert.deepEqual(Object.keys(o.initialTable?.upstreams ?? {}), ['api']);
    assert.equal(o.initialTable?.upstreams.api.servers[0].port, 7);
  });

  it('KV scripts of the dump are kept only while --scripts-kv is set; the others always', () => {
    const names = (s: readonly { name: string }[] | undefined) => s?.map((x) => x.name);
    const without = holderStart({ source: 'empty' }, dump, { scriptsKvPrefix: undefined }, DEFAULT_TABLE_DEFAULTS, logger);
    const withKv = holderStart({ source: 'empty' }, dump, { scriptsKvPrefix: 'balancer/scripts/' }, DEFAULT_TABLE_DEFAULTS, logger);
    assert.deepEqual(names(without.initialScripts), ['admin-one']);
    assert.equal(without.initialKvScripts, undefined);
    assert.deepEqual(names(withKv.initialKvScripts), ['kv-one']);
  });
});

describe('workerInitFrom', () => {
  it('carries the listener, engine and limits; one sticky secret drawn when none is configured', () => {
    const config = balancerConfig(['--no-consul', '--listen', '127.0.0.1:8080', '--engine', 'undici']);
    const init = workerInitFrom(config, undefined, () => 'drawn');
    assert.equal(init.listenHost, '127.0.0.1');
    assert.equal(init.listenPort, 8080);
    assert.equal(init.engine, 'undici');
    assert.equal(init.stickySecret, 'drawn');
    assert.equal(init.sharedActiveChecks, true, 'dynamic mode: active checks run once, in the primary');
    assert.equal(init.tls, undefined);
    assert.equal(init.acmeChallenges, undefined);
  });

  it('a configured sticky secret wins; a worker waits for a relayed challenge longer than the primary reads', () => {
    const config = { ...balancerConfig(['--no-consul']), stickySecret: 'configured' };
    const init = workerInitFrom(config, { consulUrl: 'http://127.0.0.1:8500', kvPrefix: 'acme/', timeoutMs: 3000 }, () => 'drawn');
    assert.equal(init.stickySecret, 'configured');
    assert.deepEqual(init.acmeChallenges, { timeoutMs: 3000 + CHALLENGE_RELAY_MARGIN_MS });
  });
});

describe('followTable', () => {
  const holderFrom = (table: RouteTable) => new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialTable: table });

  it('saves the start state unless it is the dump loaded, then every change', () => {
    const table = tableWith(1);
    const saved: string[] = [];
    const writer = { save: (c: { table: RouteTable }) => void saved.push(c.table.version) };
    followTable(writer, holderFrom(table), dumpOf(table));
    assert.deepEqual(saved, [], 'the dump loaded is what is served: nothing to write');
    const holder = holderFrom(table);
    followTable(writer, holder, undefined);
    assert.deepEqual(saved, [table.version]);
    holder.setSnapshot(SNAPSHOT);
    assert.equal(saved.length, 2);
    assert.equal(saved[1], holder.current().version);
  });
});

describe('startPublishing', () => {
  it('starts the workers with the current table, then publishes each change, and one made while they started', async () => {
    const holder = new TableHolder({ defaults: DEFAULT_TABLE_DEFAULTS, logger, initialTable: tableWith(1) });
    const first = holder.current().version;
    const published: string[] = [];
    let started = '';
    const supervisor = {
      start: async (t: RouteTable) => {
        started = t.version;
        holder.setSnapshot(SNAPSHOT); // a change while the workers come up
        return { address: '127.0.0.1', port: 1 };
      },
      publish: async (t: RouteTable) => {
        published.push(t.version);
        return { version: t.version, acked: 1, notAcked: [] } as never;
      },
    };
    await startPublishing(supervisor, holder, logger);
    assert.equal(started, first);
    assert.deepEqual(published, [holder.current().version]);
    holder.setSnapshot({ services: { web: [], api: [] } });
    assert.equal(published.length, 2);
  });
});

describe('relayEjections', () => {
  it("sends one worker's passive ejection to every other worker, not back to it", () => {
    const sent = new Map<number, PrimaryToWorker[]>();
    const channel = (workerId: number): WorkerChannel => ({
      workerId,
      send: (m: PrimaryToWorker) => (sent.get(workerId) ?? sent.set(workerId, []).get(workerId)!).push(m) > 0,
    });
    const channels = [channel(1), channel(2), channel(3)];
    let onMessage: ((ch: WorkerChannel, msg: WorkerToPrimary) => void) | undefined;
    const hub: WorkerHub = { channels: () => channels, onWorkerInit: () => () => undefined, onWorkerMessage: (l) => { onMessage = l; return () => undefined; } };
    relayEjections(hub);
    onMessage?.(channels[0], { type: 'ejected', id: '10.0.0.1:80', forMs: 5000 });
    onMessage?.(channels[1], { type: 'hello' });
    const ejection = { type: 'health', update: { ejections: [{ id: '10.0.0.1:80', forMs: 5000 }] } };
    assert.equal(sent.get(1), undefined);
    assert.deepEqual(sent.get(2), [ejection]);
    assert.deepEqual(sent.get(3), [ejection]);
  });
});
