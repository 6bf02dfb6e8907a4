// The `native` engine's upstream transport: one ServerPool per server id, kept across table swaps
// while the id stays in the table, closed after its in-flight requests when the server leaves.
import type pino from 'pino';
import type { RouteTable, ServerSpec } from '../../routing/types.js';
import type { ServerPoolStats } from '../transport.js';
import type { UpstreamHandler, UpstreamRequest, UpstreamTransport } from '../transport.js';
import { ServerPool, type ServerPoolOptions } from './server-pool.js';
import { DeadlineSweep, tickFor } from '../deadline-sweep.js';
import type { UpstreamConnection } from './upstream-connection.js';

export class NativeTransport implements UpstreamTransport {
  readonly #pools = new Map<string, ServerPool>();
  readonly #closing = new Set<Promise<void>>();
  readonly #retired = new Set<ServerPool>();
  /** connect, response-head, body-idle and keep-alive deadlines of every upstream connection */
  readonly #sweep: DeadlineSweep;

  constructor(readonly opts: ServerPoolOptions, readonly log: pino.Logger) {
    this.#sweep = new DeadlineSweep(tickFor([opts.connectMs, opts.headersMs, opts.idleMs, opts.keepAliveMs]), Date.now, (err, conn) => {
      log.error({ err }, 'upstream connection timer failed');
      (conn as UpstreamConnection).destroy();
    });
  }

  dispatch(server: ServerSpec, request: UpstreamRequest, handler: UpstreamHandler): void {
    let pool = this.#pools.get(server.id);
    if (pool === undefined) {
      pool = new ServerPool(server.host, server.port, this.opts, this.#sweep);
      this.#pools.set(server.id, pool);
    }
    pool.dispatch(request, handler);
  }

  retain(table: RouteTable): void {
    const keep = new Set<string>();
    for (const name in table.upstreams) for (const s of table.upstreams[name].servers) keep.add(s.id);
    const gone: string[] = [];
    for (const id of this.#pools.keys()) if (!keep.has(id)) gone.push(id);
    this.drop(gone);
  }

  drop(serverIds: Iterable<string>): void {
    for (const id of serverIds) {
      const pool = this.#pools.get(id);
      if (pool === undefined) continue;
      this.#pools.delete(id);
      this.#retired.add(pool);
      const closing = pool.close().then(() => { this.log.debug({ server: id }, 'upstream pool closed after drain'); });
      this.#closing.add(closing);
      void closing.finally(() => { this.#closing.delete(closing); this.#retired.delete(pool); });
    }
  }

  stats(serverId: string): ServerPoolStats {
    return this.#pools.get(serverId)?.stats() ?? { connected: 0, pending: 0, running: 0 };
  }

  async closeGracefully(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled([...pools.map((p) => p.close()), ...this.#closing]);
  }

  async destroy(): Promise<void> {
    for (const p of this.#pools.values()) p.destroy();
    for (const p of this.#retired) p.destroy();
    this.#pools.clear();
    this.#retired.clear();
    this.#sweep.stop();
  }
}
