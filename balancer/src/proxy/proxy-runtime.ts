// The worker runtime: one mutable reference to the compiled table, the health figures and active
// checks beside it, and an engine underneath (its client front and its upstream transport).
import type { AddressInfo, Socket } from 'node:net';
import { PeerHealth, type PeerServerStatus } from '../health/peer-health.js';
import { ActiveChecker } from '../health/active-checker.js';
import type { PickerEnv } from '../balancing/types.js';
import type { RouteTable } from '../routing/types.js';
import { DEFAULT_CLIENT_BODY_MS, DEFAULT_CLIENT_HEADER_MS, DEFAULT_MAX_QUEUE_PER_SERVER, DEFAULT_QUEUE_MS, DEFAULT_REQUEST_MS, DEFAULT_TUNNEL_IDLE_MS, type HealthUpdate, type ServerStatus, type StatusAnswer, type StatusQuery, type UpstreamStatus, type WorkerRuntime, type WorkerRuntimeOptions } from '../worker/runtime.js';
import { DEFAULT_CLIENT_HALF_CLOSE } from './client-half-close.js';
import { changedUpstreams, compileTable, type ScriptEvents } from './compiled-table.js';
import type { ClientFront } from './engine.js';
import type { ProxyContext } from './proxy-context.js';
import type { UpstreamTransport } from './transport.js';
import { createUndiciFront } from './undici/undici-front.js';
import type { ScriptStats } from '../scripts/script-host.js';
import { UndiciTransport } from './undici/undici-transport.js';
import { CidrMatcher, parseCidrList } from './cidr.js';
import { DEFAULT_ENGINE } from '../config.js';
import { DEFAULT_LIMITS } from '../http1/limits.js';
import { createNativeFront } from './native/native-front.js';
import { NativeTransport } from './native/native-transport.js';
import { ScriptThread } from '../scripts/script-thread.js';
import { ServerGaugeTracker, tableGaugeView, type ServerGaugeChanges } from '../metrics/server-gauges.js';
import { handleProxyRequest } from './proxy-exchange.js';
import { createHttp2Front } from './http2/client-front.js';
import { frontWithHttp2 } from './http2/front-with-http2.js';
import { DEFAULT_HTTP2_LIMITS } from './http2/limits.js';
import { Http2Transport } from './http2/upstream-transport.js';
import { TransportByProtocol } from './transport-by-protocol.js';
import { createTcpSide } from '../l4/tcp-side.js';
import { frontWithProxyProtocol } from './proxy-protocol-front.js';
import { ProxyProtocolTransport } from './proxy-protocol-upstream.js';
import { proxyProtocolGate } from './proxy-protocol-accept.js';
import { TrafficGuard } from '../policy/traffic-guard.js';
import { DeadlineSweep, tickFor } from './deadline-sweep.js';

/** idle upstream keep-alive sockets close after this (undici's keepAliveTimeout in the other engine) */
const UPSTREAM_KEEPALIVE_MS = 4_000;
/** nginx keepalive_requests */
const MAX_REQUESTS_PER_UPSTREAM_CONNECTION = 1_000;

/** an upstream HTTP/2 session with no stream closes after this */
const HTTP2_UPSTREAM_KEEPALIVE_MS = 60_000;
/** sessions to one server, opened only while the others are at the server's SETTINGS_MAX_CONCURRENT_STREAMS */
const HTTP2_SESSIONS_PER_SERVER = 4;

const EMPTY_TABLE: RouteTable = Object.freeze({ version: '', upstreams: Object.freeze({}), routes: Object.freeze([]) });
const DRAIN_POLL_MS = 50;

export function createWorkerRuntime(opts: WorkerRuntimeOptions): WorkerRuntime {
  const log = opts.logger.child({ component: 'proxy' });
  const now = opts.now ?? Date.now;
  const env: PickerEnv = {
    localNode: opts.localNode, localZone: opts.localZone, now, random: opts.random ?? Math.random,
    stickySecret: opts.stickySecret,
    onPanic: (e) => log[e.panicking ? 'warn' : 'info'](e, e.panicking ? 'panic mode: routing across all servers' : 'panic mode left'),
  };
  const scriptLog = opts.logger.child({ component: 'scripts' });
  // started with the first table carrying a script (ScriptThread starts its thread on first use)
  const scriptThread = new ScriptThread();
  const scriptEvents: ScriptEvents = {
    thread: scriptThread,
    onFailure: (f) => scriptLog.warn(f, 'request script failed'),
    onLoadError: (spec, err) => scriptLog.error({ script: spec.name, version: spec.version, err: err.message }, 'request script would not load: requests to its services are refused (503) until a retry loads it'),
  };
  const health = new PeerHealth({ sharedActive: opts.sharedActiveChecks, onEjected: opts.onPassiveEjection });
  const engine = opts.engine ?? DEFAULT_ENGINE;
  const nativePoolOptions = {
    connectMs: opts.timeouts.connectMs, headersMs: opts.timeouts.headersMs, idleMs: opts.timeouts.idleMs,
    keepAliveMs: UPSTREAM_KEEPALIVE_MS,
    maxConnections: opts.maxConnectionsPerServer,
    maxQueue: opts.maxQueuePerServer ?? DEFAULT_MAX_QUEUE_PER_SERVER,
    queueMs: opts.timeouts.queueMs ?? DEFAULT_QUEUE_MS,
    maxRequestsPerConnection: MAX_REQUESTS_PER_UPSTREAM_CONNECTION,
  };
  const http1Transport: UpstreamTransport = engine === 'native'
    ? new NativeTransport(nativePoolOptions, log)
    : new UndiciTransport({
    connectMs: opts.timeouts.connectMs, headersMs: opts.timeouts.headersMs, idleMs: opts.timeouts.idleMs,
    maxConnectionsPerServer: opts.maxConnectionsPerServer,
    maxQueuePerServer: opts.maxQueuePerServer ?? DEFAULT_MAX_QUEUE_PER_SERVER,
    queueMs: opts.timeouts.queueMs ?? DEFAULT_QUEUE_MS,
  }, log);
  // proto=h2|h2c|grpc upstreams go over HTTP/2 sessions (http2/upstream-transport.ts)
  const byProtocol: UpstreamTransport = new TransportByProtocol(http1Transport, new Http2Transport({
    connectMs: opts.timeouts.connectMs, headersMs: opts.timeouts.headersMs, idleMs: opts.timeouts.idleMs,
    keepAliveMs: HTTP2_UPSTREAM_KEEPALIVE_MS, maxSessionsPerServer: HTTP2_SESSIONS_PER_SERVER, ca: opts.http2?.upstreamCa,
  }, log));
  // proxy_protocol= services: connections bound to one client connection each (proxy-protocol-upstream.ts)
  const transport: UpstreamTransport = new ProxyProtocolTransport(byProtocol, nativePoolOptions, log);
  const checker = new ActiveChecker({ sink: health, logger: opts.logger.child({ component: 'active-check' }), now, random: env.random, upstreamCa: opts.http2?.upstreamCa });
  const clientBodyMs = opts.timeouts.clientBodyMs ?? DEFAULT_CLIENT_BODY_MS;
  const requestMs = opts.timeouts.requestMs ?? DEFAULT_REQUEST_MS;
  const ctx: ProxyContext = {
    current: compileTable(EMPTY_TABLE, undefined, health, env),
    transport, health, now, log,
    accessLog: opts.accessLog ? opts.logger.child({ component: 'access' }) : undefined,
    connectMs: opts.timeouts.connectMs,
    trustForwarded: new CidrMatcher(parseCidrList(opts.trustForwarded ?? [])),
    underscoresInHeaders: opts.underscoresInHeaders === true,
    clientHalfClose: opts.clientHalfClose ?? DEFAULT_CLIENT_HALF_CLOSE,
    clientBodyMs, requestMs,
    bodyClock: new DeadlineSweep(tickFor([clientBodyMs, requestMs]), now, (err) => log.error({ err }, 'request body timer failed')),
    draining: false,
    inflight: 0,
    acmeChallenge: opts.acmeChallenge,
    httpsPort: opts.httpsPort,
    observer: opts.observer,
    guard: new TrafficGuard(opts.rateShare ?? 1, now, opts.observer?.refused === undefined ? undefined : (service, protocol, kind) => opts.observer!.refused!(service, protocol, kind)),
  };
  const clientHeaderMs = opts.timeouts.clientHeaderMs ?? DEFAULT_CLIENT_HEADER_MS;
  const tunnelOpts = {
    protocols: opts.upgradeProtocols ?? ['websocket'], headersMs: opts.timeouts.headersMs,
    idleMs: opts.timeouts.tunnelIdleMs ?? DEFAULT_TUNNEL_IDLE_MS,
  };
  const http1Front: ClientFront = engine === 'native'
    ? createNativeFront(ctx, {
      limits: { ...DEFAULT_LIMITS, maxHeadBytes: opts.maxHeadBytes ?? DEFAULT_LIMITS.maxHeadBytes },
      keepAliveMs: opts.timeouts.clientKeepAliveMs,
      headMs: clientHeaderMs,
    }, tunnelOpts)
    : createUndiciFront(ctx, {
      clientKeepAliveMs: opts.timeouts.clientKeepAliveMs, clientHeaderMs, headersMs: opts.timeouts.headersMs, requestMs: ctx.requestMs,
      upgradeProtocols: tunnelOpts.protocols, tunnelIdleMs: tunnelOpts.idleMs,
    });
  // HTTP/2 streams (ALPN h2 on TLS, h2c prior knowledge on the plain listener) join the same exchanges
  const http2Front = createHttp2Front(ctx, { ...DEFAULT_HTTP2_LIMITS, ...opts.http2?.limits }, handleProxyRequest);
  // --proxy-protocol-from: the PROXY header comes before anything, the h2c preface included
  const front = frontWithProxyProtocol(frontWithHttp2(http1Front, http2Front, { h2c: opts.http2?.h2c === true, peekMs: clientHeaderMs }, log),
    proxyProtocolGate(opts.l4?.proxyProtocolFrom ?? [], clientHeaderMs, log), log);
  // TCP services (balancer/src/l4): only with --tcp-ports
  const tcp = createTcpSide(opts, ctx, health, now);
  // per-server gauges for the metrics report, as changes (metrics/server-gauges.ts)
  const gauges = new ServerGaugeTracker();
  const gaugeView = tableGaugeView(() => ctx.current.table, health, now);
  let stopping: Promise<void> | undefined;
  let drainPoll: NodeJS.Timeout | undefined;
  let drained: (() => void) | undefined;

  /** `delta`: the upstreams a delta upserted or removed; the work then follows them, not the table */
  function applyTable(table: RouteTable, delta?: ReadonlySet<string>): { changed: boolean } {
    const prev = ctx.current;
    if (table.version !== '' && table.version === prev.table.version) return { changed: false };
    const next = compileTable(table, prev, health, env, scriptEvents, delta);
    ctx.current = next; // the swap: every request from here on sees the new table
    gauges.tableChanged(delta);
    if (delta !== undefined) {
      transport.drop(health.retainChanged(prev.table, table, delta, now()));
    } else {
      health.retain(table, now());
      transport.retain(table);
    }
    // a delta: the checker looks only at its names (a removed one is simply absent from the table)
    if (!opts.sharedActiveChecks) checker.apply(table, delta === undefined ? undefined : { previous: prev.table, upserted: [...delta], removed: [] });
    tcp?.follow(table, delta);
    const changed = changedUpstreams(prev, next, delta);
    log.info({ version: table.version, previous: prev.table.version, changedUpstreams: [...changed] }, 'routing table swapped');
    return { changed: true };
  }

  /** The pool figures added to status objects PeerHealth just made for this answer (no copy of each). */
  function withPools(servers: readonly PeerServerStatus[]): ServerStatus[] {
    for (const s of servers) (s as { pool?: ServerStatus['pool'] }).pool = transport.stats(s.id);
    return servers as ServerStatus[];
  }

  function scriptStats(): ScriptStats[] {
    return ctx.current.scripts?.stats() ?? [];
  }

  function applyHealth(update: HealthUpdate): void {
    const t = now();
    for (const a of update.active ?? []) health.setSharedActive(a, t);
    for (const e of update.ejections ?? []) health.ejectShared(e.id, e.forMs, t);
  }

  function status(): UpstreamStatus[] {
    const pickers = ctx.current.pickers;
    return health.status(ctx.current.table, now()).map((up) => {
      const panic = pickers.get(up.name)?.panic;
      return {
        ...up,
        servers: withPools(up.servers),
        ...(panic === undefined ? {} : { panic: { ...panic } }),
      };
    });
  }

  function serverGauges(full: boolean): ServerGaugeChanges & { live: ReturnType<ServerGaugeTracker['live']> } {
    const changes = gauges.next(gaugeView, health.takeGaugeChanges(now()), full);
    return { ...changes, live: gauges.live() };
  }

  function statusQuery(query: StatusQuery): StatusAnswer {
    const t = now();
    const { table, pickers } = ctx.current;
    const panicOf = (name: string) => {
      const p = pickers.get(name)?.panic;
      return p === undefined ? {} : { panic: { ...p } };
    };
    const upstreams = query.upstreams === undefined ? undefined : health.statusOf(table, query.upstreams, t).map((up) => ({
      ...up,
      servers: withPools(up.servers),
      ...panicOf(up.name),
    }));
    const summaries = query.summary !== true ? undefined : Object.keys(table.upstreams).map((name) => {
      const u = table.upstreams[name];
      return { name, algorithm: u.algorithm, ...health.summarize(u, t), ...panicOf(name) };
    });
    let notable: UpstreamStatus[] | undefined;
    if (query.notable === true) {
      const byName = new Map(health.notable(table, t).map((up) => [up.name, up]));
      // upstreams with panic figures come too (the dashboard shows them), with no server at rest
      for (const [name, picker] of pickers) {
        if (picker.panic !== undefined && !byName.has(name) && Object.hasOwn(table.upstreams, name)) {
          byName.set(name, { name, algorithm: table.upstreams[name].algorithm, servers: [] });
        }
      }
      notable = [...byName.values()].map((up) => ({
        ...up,
        servers: withPools(up.servers),
        ...panicOf(up.name),
      }));
    }
    return {
      ...(upstreams !== undefined ? { upstreams } : {}),
      ...(notable !== undefined ? { notable } : {}),
      ...(summaries !== undefined ? { summaries } : {}),
      ...(query.scripts === true ? { scripts: scriptStats() } : {}),
    };
  }

  function stopAccepting(): Promise<void> {
    stopping ??= new Promise<void>((resolve) => {
      drained = resolve;
      ctx.draining = true;
      front.stopListening();
      tcp?.set.stopListening();
      front.closeIdle();
      // in-flight requests finish with `Connection: close`; keep-alive sockets that become idle
      // after that are closed by the poll below. Open Upgrade tunnels are waited for too (they end
      // by themselves, by their idle timeout, or by close() when the supervisor's drain timeout hits).
      drainPoll = setInterval(() => {
        front.closeIdle();
        if (ctx.inflight === 0 && front.openTunnels === 0 && (tcp?.set.openConnections ?? 0) === 0) {
          clearInterval(drainPoll);
          void transport.closeGracefully().then(() => resolve());
        }
      }, DRAIN_POLL_MS);
    });
    return stopping;
  }

  async function close(): Promise<void> {
    ctx.draining = true;
    if (drainPoll !== undefined) clearInterval(drainPoll);
    drained?.();
    checker.stop();
    ctx.bodyClock.stop();
    front.closeAll();
    tcp?.set.closeAll();
    await transport.destroy();
    await scriptThread.close();
  }

  return {
    applyTable,
    applyHealth,
    takeRateDemand: () => ctx.guard?.takeDemand(),
    applyRateShares: (shares) => ctx.guard?.applyShares(shares),
    listen: (host: string, port: number): Promise<AddressInfo> => front.listen(host, port),
    handleSocket: (socket: Socket): void => front.handleSocket(socket),
    ...(tcp ? { tlsPassthrough: tcp.passthrough } : {}),
    status, statusQuery, stopAccepting, close, scriptStats, serverGauges,
  };
}
