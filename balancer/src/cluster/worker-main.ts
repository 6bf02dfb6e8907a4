// Entry of a worker process (node:cluster exec). Says hello, receives its init (options + table) from
// the primary, creates the proxy runtime, listens on the shared port and then follows the primary's
// messages: table swaps, status requests, drain. Exits when the primary goes away.
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { installProcessGuard } from '../../../common/process-guard.js';
import type { StatusAnswer, StatusQuery, WorkerRuntime, WorkerRuntimeOptions } from '../worker/runtime.js';
import { createWorkerMetrics, type WorkerMetrics } from '../metrics/worker-reporter.js';
import { applyDelta } from '../routing/table-delta.js';
import type { RouteTable } from '../routing/types.js';
import type { PrimaryToWorker, WorkerInitOptions, WorkerToPrimary } from './messages.js';
import { WorkerTls } from '../tls/worker-tls.js';
import { proxyProtocolGate } from '../proxy/proxy-protocol-accept.js';
import { ChallengeRelayClient } from '../tls/acme-challenge-relay.js';

type RuntimeFactory = (opts: WorkerRuntimeOptions) => WorkerRuntime;

let runtime: WorkerRuntime | undefined;
// `base` carries the worker's identity; each part adds its own `component` (pino would repeat a key
// given twice, so the runtime gets `base`, and this file's own lines use `logger`).
let base: pino.Logger = pino({ level: 'info' }).child({ role: 'worker' });
let logger: pino.Logger = base.child({ component: 'worker' });
// an unhandled error exits the worker; the supervisor restarts it with backoff
installProcessGuard({ logger: () => logger, role: 'balancer worker', exitOnRejection: true });
let exiting = false;
let currentVersion = '';
/** the table being served: deltas apply to it */
let currentTable: RouteTable | undefined;
// TLS state exists before the runtime: certificates sent right after init apply at once, so the
// TLS listener starts with them (it waits for the first set)
let workerTls: WorkerTls | undefined;
let metrics: WorkerMetrics | undefined;
let challengeRelay: ChallengeRelayClient | undefined;

import { RATE_SHARE_WINDOW_MS } from '../policy/rate-shares.js';

function send(msg: WorkerToPrimary): void {
  if (process.connected) process.send?.(msg);
}

async function importFactory(runtimeModule: string | undefined): Promise<RuntimeFactory> {
  if (runtimeModule) {
    const mod = (await import(runtimeModule)) as { createWorkerRuntime: RuntimeFactory };
    return mod.createWorkerRuntime;
  }
  const mod = await import('../proxy/proxy-runtime.js');
  return mod.createWorkerRuntime;
}

// The runtime's modules load before the hello (the supervisor names the module at fork), so a
// standby worker (reload mode) has nothing left to load when its init comes.
const preloadedModule = process.env.BALANCER_WORKER_RUNTIME || undefined;
const preloaded = importFactory(preloadedModule);
preloaded.catch(() => undefined); // a module that fails to load fails again, reported, at init

function loadFactory(options: WorkerInitOptions): Promise<RuntimeFactory> {
  return options.runtimeModule === preloadedModule ? preloaded : importFactory(options.runtimeModule);
}

async function onInit(msg: Extract<PrimaryToWorker, { type: 'init' }>): Promise<void> {
  const o = msg.options;
  base = pino({ level: o.logLevel }).child({ role: 'worker', generation: msg.generation });
  logger = base.child({ component: 'worker' });
  if (o.tls) workerTls ??= new WorkerTls(o.tls, base.child({ component: 'tls' }));
  const factory = await loadFactory(o);
  metrics = createWorkerMetrics(o.metrics, msg.generation, Number(process.env.BALANCER_WORKER_SLOT ?? 0), send);
  runtime = factory({
    observer: metrics?.observer,
    logger: base,
    localNode: o.localNode,
    localZone: o.localZone,
    timeouts: o.timeouts,
    maxConnectionsPerServer: o.maxConnectionsPerServer,
    engine: o.engine,
    maxHeadBytes: o.maxHeadBytes,
    http2: o.http2,
    accessLog: o.accessLog,
    trustForwarded: o.trustForwarded,
    underscoresInHeaders: o.underscoresInHeaders,
    clientHalfClose: o.clientHalfClose,
    l4: o.l4,
    tlsPorts: o.tls?.listen.map((l) => l.port),
    rateShare: o.rateShare,
    acmeChallenge: o.acmeChallenges ? (challengeRelay = new ChallengeRelayClient(o.acmeChallenges, send)).lookup : undefined,
    httpsPort: o.tls?.listen[0]?.port,
    stickySecret: o.stickySecret,
    maxQueuePerServer: o.maxQueuePerServer,
    upgradeProtocols: o.upgradeProtocols,
    sharedActiveChecks: o.sharedActiveChecks,
    onPassiveEjection: o.sharedActiveChecks ? (id, forMs) => send({ type: 'ejected', id, forMs }) : undefined,
  });
  runtime.applyTable(msg.table);
  currentVersion = msg.table.version;
  currentTable = msg.table;
  const rt = runtime;
  metrics?.start(() => rt.status(), () => rt.scriptStats?.(), rt.serverGauges === undefined ? undefined : (full) => rt.serverGauges!(full));
  const addr = await runtime.listen(o.listenHost, o.listenPort);
  const gate = proxyProtocolGate(o.l4?.proxyProtocolFrom ?? [], o.tls?.handshakeTimeoutMs ?? 10_000, base.child({ component: 'tls' }));
  const tlsAddrs = workerTls ? await workerTls.listen((socket) => rt.handleSocket(socket), undefined, gate, rt.tlsPassthrough) : undefined;
  logger.info({ address: addr.address, port: addr.port, tls: tlsAddrs?.map((a) => a.port), version: msg.table.version }, 'worker listening');
  send({ type: 'ready', address: { address: addr.address, port: addr.port, family: addr.family }, version: msg.table.version, tls: tlsAddrs });
}

/** A runtime double without statusQuery: the whole status, filtered here. */
function statusAnswer(query: StatusQuery): StatusAnswer {
  if (!runtime) return {};
  if (runtime.statusQuery) return runtime.statusQuery(query);
  const wanted = query.upstreams === undefined ? undefined : new Set(query.upstreams);
  return {
    ...(wanted !== undefined ? { upstreams: runtime.status().filter((u) => wanted.has(u.name)) } : {}),
    ...(query.scripts === true ? { scripts: runtime.scriptStats?.() } : {}),
  };
}

async function exitAfter(work: () => Promise<void>, code: number): Promise<void> {
  if (exiting) return;
  exiting = true;
  try {
    await work();
  } catch (err) {
    logger.error({ err }, 'worker shutdown step failed');
  }
  process.exit(code);
}

// Messages are handled in arrival order: the init's synchronous part (runtime creation, first table)
// completes before the next message is looked at, so a table sent right after init is never lost.
let queue: Promise<void> = Promise.resolve();
let pendingInit: Promise<void> | undefined;

// rate limits: this worker's demand each window, only when there was some (policy/rate-shares.ts)
setInterval(() => {
  const counts = runtime?.takeRateDemand?.();
  if (counts !== undefined) send({ type: 'rate-demand', counts });
}, RATE_SHARE_WINDOW_MS).unref();

process.on('message', (raw: unknown) => {
  const msg = raw as PrimaryToWorker;
  switch (msg?.type) {
    case 'init':
      pendingInit = onInit(msg).catch((err: Error & { code?: string }) => {
        logger.fatal({ err }, 'worker start failed');
        send({ type: 'fatal', message: err.message, code: err.code });
        void exitAfter(async () => { await runtime?.close(); }, 1);
      });
      queue = pendingInit;
      return;
    case 'table':
      queue = queue.then(() => {
        if (!runtime) return;
        const t0 = performance.now();
        const { changed } = runtime.applyTable(msg.table);
        currentVersion = msg.table.version;
        currentTable = msg.table;
        send({ type: 'ack', seq: msg.seq, changed, version: msg.table.version, applyMs: performance.now() - t0 });
      }).catch((err) => logger.error({ err }, 'table apply failed'));
      return;
    case 'health':
      queue = queue.then(() => {
        runtime?.applyHealth?.(msg.update);
      }).catch((err) => logger.error({ err }, 'health update failed'));
      return;
    case 'table-delta':
      queue = queue.then(() => {
        if (!runtime || !currentTable) {
          send({ type: 'gap', seq: msg.seq, have: currentVersion });
          return;
        }
        const t0 = performance.now();
        const r = applyDelta(currentTable, msg.delta);
        if (!r.ok) {
          logger.info({ have: r.have, from: msg.delta.from }, 'table delta does not apply (gap), asking for the full table');
          send({ type: 'gap', seq: msg.seq, have: r.have });
          return;
        }
        // routes and scripts are table-wide: a delta that carries them is applied whole
        const names = msg.delta.routes === undefined && msg.delta.scripts === undefined
          ? new Set([...msg.delta.upserted.map((u) => u.name), ...msg.delta.removed])
          : undefined;
        const { changed } = runtime.applyTable(r.table, names);
        currentVersion = r.table.version;
        currentTable = r.table;
        send({ type: 'ack', seq: msg.seq, changed, version: r.table.version, applyMs: performance.now() - t0 });
      }).catch((err) => {
        logger.error({ err }, 'table delta apply failed');
        send({ type: 'gap', seq: msg.seq, have: currentVersion });
      });
      return;
    case 'status':
      queue.then(() => {
        send({ type: 'status', seq: msg.seq, upstreams: runtime ? runtime.status() : [], version: currentVersion, scripts: runtime?.scriptStats?.() });
      }).catch((err) => logger.error({ err }, 'status failed'));
      return;
    case 'status-query':
      queue.then(() => {
        send({ type: 'status-answer', seq: msg.seq, version: currentVersion, answer: statusAnswer(msg.query) });
      }).catch((err) => logger.error({ err }, 'status query failed'));
      return;
    case 'drain':
      void exitAfter(async () => {
        await pendingInit?.catch(() => undefined);
        workerTls?.close();
        challengeRelay?.close();
        if (runtime) {
          await runtime.stopAccepting();
          await runtime.close();
        }
        metrics?.finish();
        send({ type: 'drained', seq: msg.seq });
        // give the IPC channel a moment to flush the reply before the process goes
        await new Promise((r) => setTimeout(r, 20));
      }, 0);
      return;
    case 'tls-certs': {
      // not queued behind init (whose synchronous part created workerTls): the TLS listener waits for the first set
      if (!workerTls) return;
      const ok = workerTls.apply(msg.delta);
      if (ok) logger.info({ version: msg.delta.version, upserted: msg.delta.upsert.length, removed: msg.delta.remove.length }, 'certificates swapped');
      send({ type: 'tls-certs-ack', seq: msg.seq, ok, version: workerTls.version() });
      return;
    }
    case 'metrics-full':
      metrics?.sendFullGauges();
      return;
    case 'tls-ticket-keys':
      workerTls?.setTicketKeys(Buffer.from(msg.keys, 'base64'));
      return;
    case 'rate-shares':
      runtime?.applyRateShares?.(msg.shares);
      return;
    case 'acme-challenge-answer':
      challengeRelay?.onAnswer(msg);
      return;
    default:
      logger.warn({ type: (msg as { type?: unknown })?.type }, 'unknown message from primary');
  }
});

// The primary coordinates shutdown; a worker only follows it. If the primary dies, stop too.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
process.on('disconnect', () => {
  void exitAfter(async () => { workerTls?.close(); await runtime?.close(); }, 0);
});

void preloaded.catch(() => undefined).finally(() => send({ type: 'hello' }));
