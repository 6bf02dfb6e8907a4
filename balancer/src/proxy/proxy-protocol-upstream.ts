// proxy_protocol=v1|v2 on an HTTP service: each upstream connection opens with a PROXY protocol
// header naming the client. Such a connection speaks for one client, so it is bound to that client's
// connection, as HAProxy keeps `send-proxy` connections private to their session: a private pool per
// (client connection, server), closed when the client connection closes; never shared with another
// client. These connections are the native engine's HTTP/1.1 client whatever --engine says (only it
// can write a preamble); HTTP/2 upstreams (proto=h2|h2c|grpc) get no header.
import type pino from 'pino';
import type { RouteTable, ServerSpec, UpstreamSpec } from '../routing/types.js';
import type { BoundUpstream, ServerPoolStats, UpstreamHandler, UpstreamRequest, UpstreamTransport } from './transport.js';
import type { ClientOrigin, ConnectionHandle } from './client-origin.js';
import { ServerPool, type ServerPoolOptions } from './native/server-pool.js';
import { DeadlineSweep, tickFor } from './deadline-sweep.js';
import type { UpstreamConnection } from './native/upstream-connection.js';
import { encodeV1, encodeV2 } from '../l4/proxy-protocol.js';


/** The header for this client towards this service, or undefined when it sends none. */
export function boundUpstreamFor(upstream: UpstreamSpec, origin: ClientOrigin): BoundUpstream | undefined {
  const v = upstream.proxyProtocol;
  if (v === undefined || (upstream.protocol !== undefined && upstream.protocol !== 'http')) return undefined;
  const a = { source: origin.address, sourcePort: origin.port, destination: origin.localAddress, destinationPort: origin.localPort };
  return { bytes: v === 'v1' ? encodeV1(a) : encodeV2(a), client: origin.connection };
}

const ZERO: ServerPoolStats = { connected: 0, pending: 0, running: 0 };

export class ProxyProtocolTransport implements UpstreamTransport {
  readonly #bound = new Map<ConnectionHandle, Map<string, ServerPool>>();
  readonly #closing = new Set<Promise<void>>();
  readonly #sweep: DeadlineSweep;

  constructor(readonly inner: UpstreamTransport, readonly opts: ServerPoolOptions, log: pino.Logger) {
    this.#sweep = new DeadlineSweep(tickFor([opts.connectMs, opts.headersMs, opts.idleMs, opts.keepAliveMs]), Date.now, (err, conn) => {
      log.error({ err }, 'upstream connection timer failed');
      (conn as UpstreamConnection).destroy();
    });
  }

  dispatch(server: ServerSpec, request: UpstreamRequest, handler: UpstreamHandler): void {
    const bound = request.proxyHeader;
    if (bound === undefined) { this.inner.dispatch(server, request, handler); return; }
    let pools = this.#bound.get(bound.client);
    if (pools === undefined) {
      pools = new Map();
      this.#bound.set(bound.client, pools);
      bound.client.once('close', () => this.#release(bound.client));
    }
    let pool = pools.get(server.id);
    if (pool === undefined) {
      pool = new ServerPool(server.host, server.port, this.opts, this.#sweep, bound.bytes);
      pools.set(server.id, pool);
    }
    pool.dispatch(request, handler);
    // a client gone before its first dispatch: 'close' has fired already, release now
    if (bound.client.destroyed) this.#release(bound.client);
  }

  #release(client: ConnectionHandle): void {
    const pools = this.#bound.get(client);
    if (pools === undefined) return;
    this.#bound.delete(client);
    for (const pool of pools.values()) this.#close(pool);
  }

  #close(pool: ServerPool): void {
    const closing = pool.close();
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  retain(table: RouteTable): void {
    this.inner.retain(table);
    const keep = new Set<string>();
    for (const name in table.upstreams) for (const s of table.upstreams[name].servers) keep.add(s.id);
    this.#dropWhere((id) => !keep.has(id));
  }

  drop(serverIds: Iterable<string>): void {
    const ids = new Set(serverIds);
    this.inner.drop(ids);
    this.#dropWhere((id) => ids.has(id));
  }

  #dropWhere(gone: (serverId: string) => boolean): void {
    for (const pools of this.#bound.values()) {
      for (const [id, pool] of pools) if (gone(id)) { pools.delete(id); this.#close(pool); }
    }
  }

  stats(serverId: string): ServerPoolStats {
    const s = this.inner.stats(serverId);
    if (this.#bound.size === 0) return s;
    let { connected, pending, running } = s;
    for (const pools of this.#bound.values()) {
      const p = pools.get(serverId)?.stats() ?? ZERO;
      connected += p.connected; pending += p.pending; running += p.running;
    }
    return { connected, pending, running };
  }

  async closeGracefully(): Promise<void> {
    const all = [...this.#bound.values()].flatMap((m) => [...m.values()]);
    this.#bound.clear();
    await Promise.allSettled([this.inner.closeGracefully(), ...all.map((p) => p.close()), ...this.#closing]);
  }

  async destroy(): Promise<void> {
    for (const pools of this.#bound.values()) for (const p of pools.values()) p.destroy();
    this.#bound.clear();
    this.#sweep.stop();
    await this.inner.destroy();
  }
}
