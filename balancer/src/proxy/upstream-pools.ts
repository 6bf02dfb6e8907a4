// One undici Pool per upstream server id. Pools are created on first use, survive table swaps
// while their server id stays in the table (keep-alive sockets are reused), and are closed
// gracefully (in-flight requests finish first) when the server leaves the table.
import { Pool } from 'undici';
import type pino from 'pino';
import type { RouteTable, ServerSpec } from '../routing/types.js';
import type { ServerPoolStats } from '../worker/runtime.js';

export interface UpstreamPoolOptions {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  readonly maxConnectionsPerServer: number;
  /** how long an idle upstream keep-alive socket is kept */
  readonly keepAliveMs?: number;
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  /** pools of removed servers that are still finishing in-flight requests */
  readonly #closing = new Map<Pool, Promise<void>>();
  readonly #opts: UpstreamPoolOptions;
  readonly #log: pino.Logger;

  constructor(opts: UpstreamPoolOptions, log: pino.Logger) {
    this.#opts = opts;
    this.#log = log;
  }

  /** The pool for a server of the current table, created on first use. */
  get(server: ServerSpec): Pool {
    let pool = this.#pools.get(server.id);
    if (pool === undefined) {
      pool = new Pool(`http://${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`, {
        connections: this.#opts.maxConnectionsPerServer,
        pipelining: 1,
        headersTimeout: this.#opts.headersMs,
        bodyTimeout: this.#opts.idleMs,
        connectTimeout: this.#opts.connectMs,
        keepAliveTimeout: this.#opts.keepAliveMs ?? 4_000,
        keepAliveMaxTimeout: 600_000,
      });
      this.#pools.set(server.id, pool);
    }
    return pool;
  }

  /** Close, after their in-flight requests, the pools of servers the new table no longer has. */
  retain(table: RouteTable): void {
    const keep = new Set<string>();
    for (const name in table.upstreams) for (const s of table.upstreams[name].servers) keep.add(s.id);
    for (const [id, pool] of this.#pools) {
      if (keep.has(id)) continue;
      this.#pools.delete(id);
      const closing: Promise<void> = pool.close().then(
        () => { this.#log.debug({ server: id }, 'upstream pool closed after drain'); },
        (err: unknown) => { this.#log.warn({ server: id, err }, 'upstream pool close failed'); },
      ).finally(() => { this.#closing.delete(pool); });
      this.#closing.set(pool, closing);
    }
  }

  stats(id: string): ServerPoolStats {
    const s = this.#pools.get(id)?.stats;
    return s === undefined ? { connected: 0, pending: 0, running: 0 } : { connected: s.connected, pending: s.pending, running: s.running };
  }

  /** Wait for in-flight requests on every pool, then close them all. */
  async closeGracefully(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled([...pools.map((p) => p.close()), ...this.#closing.values()]);
  }

  /** Abort everything now. */
  async destroy(): Promise<void> {
    const pools = [...this.#pools.values(), ...this.#closing.keys()];
    this.#pools.clear();
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }
}
