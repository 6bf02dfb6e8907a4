// The `undici` engine's upstream transport: one undici Pool per upstream server id. Pools are created
// on first use, survive table swaps while their server id stays in the table (keep-alive sockets are
// reused), and are closed gracefully (in-flight requests finish first) when the server leaves it.
import { Pool, type Dispatcher } from 'undici';
import type pino from 'pino';
import type { RouteTable, ServerSpec } from '../../routing/types.js';
import type { ServerPoolStats } from '../../worker/runtime.js';
import { ERR, transportError, type UpstreamHandler, type UpstreamRequest, type UpstreamTransport } from '../transport.js';
import { bodyAsReadable, IncomingBody } from './node-http-client.js';

export interface UpstreamPoolOptions {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  readonly maxConnectionsPerServer: number;
  /** how long an idle upstream keep-alive socket is kept */
  readonly keepAliveMs?: number;
}

export class UndiciTransport implements UpstreamTransport {
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

  dispatch(server: ServerSpec, request: UpstreamRequest, handler: UpstreamHandler): void {
    let pool: Pool;
    try {
      pool = this.get(server);
    } catch (err) {
      // new Pool() throws on a host it cannot put in a URL: this try fails, the worker does not
      handler.onError(transportError(ERR.invalidArg, `no pool for ${server.id}: ${(err as Error).message}`));
      return;
    }
    const body = request.body;
    // UpstreamHandler has DispatchHandler's shape: undici calls the exchange's attempt directly
    pool.dispatch({
      path: request.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: request.headers as string[],
      body: body === null ? null : body instanceof IncomingBody ? body.stream : bodyAsReadable(body),
    }, handler as unknown as Dispatcher.DispatchHandler);
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
