// The worker runtime: a node:http server whose request/upgrade handlers read one mutable
// reference to the compiled table, plus the pools, health figures and active checks beside it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PeerHealth } from '../health/peer-health.js';
import { ActiveChecker } from '../health/active-checker.js';
import type { PickerEnv } from '../balancing/picker.js';
import type { RouteTable } from '../routing/types.js';
import type { UpstreamStatus, WorkerRuntime, WorkerRuntimeOptions } from '../worker/runtime.js';
import { changedUpstreams, compileTable, type CompiledTable } from './compiled-table.js';
import { handleProxyRequest } from './proxy-exchange.js';
import type { ProxyContext } from './proxy-context.js';
import { UpgradeTunnels } from './upgrade-tunnel.js';
import { UpstreamPools } from './upstream-pools.js';

const EMPTY_TABLE: RouteTable = Object.freeze({ version: '', upstreams: Object.freeze({}), routes: Object.freeze([]) });
const DRAIN_POLL_MS = 50;

export function createWorkerRuntime(opts: WorkerRuntimeOptions): WorkerRuntime {
  const log = opts.logger.child({ component: 'proxy' });
  const now = opts.now ?? Date.now;
  const env: PickerEnv = {
    localNode: opts.localNode, localZone: opts.localZone, now, random: opts.random ?? Math.random,
  };
  const health = new PeerHealth();
  const pools = new UpstreamPools({
    connectMs: opts.timeouts.connectMs, headersMs: opts.timeouts.headersMs, idleMs: opts.timeouts.idleMs,
    maxConnectionsPerServer: opts.maxConnectionsPerServer,
  }, log);
  const checker = new ActiveChecker({ sink: health, logger: opts.logger.child({ component: 'active-check' }), now, random: env.random });
  const ctx: ProxyContext = {
    current: compileTable(EMPTY_TABLE, undefined, health, env),
    pools, health, now, log,
    accessLog: opts.accessLog ? opts.logger.child({ component: 'access' }) : undefined,
    connectMs: opts.timeouts.connectMs,
    draining: false,
    inflight: 0,
  };
  const tunnels = new UpgradeTunnels();
  const server = http.createServer({ keepAliveTimeout: opts.timeouts.clientKeepAliveMs, requestTimeout: 0 }, (req, res) => {
    try {
      handleProxyRequest(ctx, req, res);
    } catch (err) {
      // a bug must cost one request, not the worker
      log.error({ err, url: req.url }, 'proxy handler failed');
      if (!res.headersSent) { res.writeHead(500, { 'content-type': 'application/json', connection: 'close' }); res.end('{"error":"internal_error"}'); }
      else res.destroy();
    }
  });
  server.keepAliveTimeout = opts.timeouts.clientKeepAliveMs;
  server.headersTimeout = Math.max(opts.timeouts.headersMs, 10_000);
  server.on('upgrade', (req, socket, head) => tunnels.handle(ctx, req, socket, head));
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET') socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  let listening = false;
  let stopping: Promise<void> | undefined;
  let drainPoll: NodeJS.Timeout | undefined;
  let drained: (() => void) | undefined;

  function applyTable(table: RouteTable): { changed: boolean } {
    const prev = ctx.current;
    if (table.version !== '' && table.version === prev.table.version) return { changed: false };
    const next = compileTable(table, prev, health, env);
    ctx.current = next; // the swap: every request from here on sees the new table
    health.retain(table, now());
    pools.retain(table);
    checker.apply(table);
    const changed = changedUpstreams(prev, next);
    log.info({ version: table.version, previous: prev.table.version, changedUpstreams: [...changed] }, 'routing table swapped');
    return { changed: true };
  }

  function listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        listening = true;
        server.on('error', (err) => log.error({ err }, 'proxy listener error'));
        resolve(server.address() as AddressInfo);
      });
    });
  }

  function status(): UpstreamStatus[] {
    return health.status(ctx.current.table, now()).map((up) => ({
      ...up,
      servers: up.servers.map((s) => ({ ...s, pool: pools.stats(s.id) })),
    }));
  }

  function stopAccepting(): Promise<void> {
    stopping ??= new Promise<void>((resolve) => {
      drained = resolve;
      ctx.draining = true;
      if (listening) server.close();
      server.closeIdleConnections();
      // in-flight requests finish with `Connection: close`; keep-alive sockets that become idle
      // after that are closed by the poll below. WebSocket tunnels are left to close().
      drainPoll = setInterval(() => {
        server.closeIdleConnections();
        if (ctx.inflight === 0) {
          clearInterval(drainPoll);
          void pools.closeGracefully().then(() => resolve());
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
    if (listening) server.close();
    server.closeAllConnections();
    tunnels.destroyAll();
    await pools.destroy();
  }

  return { applyTable, listen, status, stopAccepting, close };
}
