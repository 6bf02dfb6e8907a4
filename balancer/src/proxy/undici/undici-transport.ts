// The `undici` engine's upstream transport: one undici Pool per upstream server id. Pools are created
// on first use, survive table swaps while their server id stays in the table (keep-alive sockets are
// reused), and are closed gracefully (in-flight requests finish first) when the server leaves it.
// undici's own wait queue is unbounded and has no timeout, so this transport never lets it hold
// anything: at most maxConnectionsPerServer requests per server are handed to undici, the rest wait
// here in a bounded FIFO with a timeout (ERR.queueFull / ERR.queueTimeout).
import { Pool, type Dispatcher } from 'undici';
import type pino from 'pino';
import type { RouteTable, ServerSpec } from '../../routing/types.js';
import type { ServerPoolStats } from '../transport.js';
import { ERR, transportError, type UpstreamHandler, type UpstreamRequest, type UpstreamTransport } from '../transport.js';
import { bodyAsReadable, IncomingBody } from './node-http-client.js';
import { GatedBody } from '../request-body-gate.js';

export interface UpstreamPoolOptions {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  readonly maxConnectionsPerServer: number;
  /** how long an idle upstream keep-alive socket is kept */
  readonly keepAliveMs?: number;
  /** requests waiting for a busy server beyond its connections */
  readonly maxQueuePerServer: number;
  /** longest wait in that queue */
  readonly queueMs: number;
}

/** One server's admission: requests handed to undici now, and those waiting for one of them to end. */
class ServerSlots {
  running = 0;
  readonly waiting: QueuedDispatch[] = [];
  constructor(readonly pool: Pool) {}
}

/**
 * A dispatch that counts toward its server's running requests until it settles; it forwards
 * undici's callbacks to the exchange's handler (one small object per request).
 */
class CountedDispatch {
  constructor(readonly transport: UndiciTransport, readonly slots: ServerSlots, readonly handler: UpstreamHandler) {}
  onConnect(abort: (err?: Error) => void): void { this.handler.onConnect(abort); }
  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    // undici hands a 1xx (103 Early Hints) to onHeaders before the final answer: relayed, not taken for it
    if (status < 200) {
      if (status !== 100 && status !== 101) this.handler.onInformational?.(status, raw.map((b) => b.toString('latin1')), statusText);
      return true;
    }
    return this.handler.onHeaders(status, raw, resume, statusText);
  }
  onData(chunk: Buffer): boolean { return this.handler.onData(chunk); }
  onComplete(trailers: Buffer[] | null): void { this.transport.release(this.slots); this.handler.onComplete(trailers); }
  onError(err: Error): void { this.transport.release(this.slots); this.handler.onError(err); }
}

interface QueuedDispatch {
  readonly request: UpstreamRequest;
  readonly handler: UpstreamHandler;
  timer: NodeJS.Timeout | undefined;
}

export class UndiciTransport implements UpstreamTransport {
  readonly #pools = new Map<string, ServerSlots>();
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
    return this.#slots(server).pool;
  }

  #slots(server: ServerSpec): ServerSlots {
    let slots = this.#pools.get(server.id);
    if (slots === undefined) {
      const pool = new Pool(`http://${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`, {
        connections: this.#opts.maxConnectionsPerServer,
        pipelining: 1,
        headersTimeout: this.#opts.headersMs,
        bodyTimeout: this.#opts.idleMs,
        connectTimeout: this.#opts.connectMs,
        keepAliveTimeout: this.#opts.keepAliveMs ?? 4_000,
        keepAliveMaxTimeout: 600_000,
      });
      slots = new ServerSlots(pool);
      this.#pools.set(server.id, slots);
    }
    return slots;
  }

  dispatch(server: ServerSpec, request: UpstreamRequest, handler: UpstreamHandler): void {
    let slots: ServerSlots;
    try {
      slots = this.#slots(server);
    } catch (err) {
      // new Pool() throws on a host it cannot put in a URL: this try fails, the worker does not
      handler.onError(transportError(ERR.invalidArg, `no pool for ${server.id}: ${(err as Error).message}`));
      return;
    }
    if (slots.running < this.#opts.maxConnectionsPerServer) { this.#start(slots, request, handler); return; }
    if (slots.waiting.length >= this.#opts.maxQueuePerServer) {
      handler.onError(transportError(ERR.queueFull, `${server.id}: ${slots.running} requests running and ${slots.waiting.length} waiting`));
      return;
    }
    const queued: QueuedDispatch = { request, handler, timer: undefined };
    queued.timer = setTimeout(() => {
      const i = slots.waiting.indexOf(queued);
      if (i >= 0) slots.waiting.splice(i, 1);
      handler.onError(transportError(ERR.queueTimeout, `${server.id}: no connection free within ${this.#opts.queueMs} ms`));
    }, this.#opts.queueMs);
    slots.waiting.push(queued);
  }

  #start(slots: ServerSlots, request: UpstreamRequest, handler: UpstreamHandler): void {
    slots.running++;
    const body = request.body;
    slots.pool.dispatch({
      path: request.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: request.headers as string[],
      // a body that arrived whole in the gate goes as one Buffer (head and body in one write)
      body: body === null ? null
        : body instanceof GatedBody ? (body.wholeBody() ?? bodyAsReadable(body))
        : body instanceof IncomingBody ? body.stream : bodyAsReadable(body),
    }, new CountedDispatch(this, slots, handler) as unknown as Dispatcher.DispatchHandler);
  }

  /** A request of this server settled: the oldest waiting one takes its place. */
  release(slots: ServerSlots): void {
    slots.running--;
    const next = slots.waiting.shift();
    if (next === undefined) return;
    clearTimeout(next.timer);
    this.#start(slots, next.request, next.handler);
  }

  /** Close, after their in-flight requests, the pools of servers the new table no longer has. */
  retain(table: RouteTable): void {
    const keep = new Set<string>();
    for (const name in table.upstreams) for (const s of table.upstreams[name].servers) keep.add(s.id);
    const gone: string[] = [];
    for (const id of this.#pools.keys()) if (!keep.has(id)) gone.push(id);
    this.drop(gone);
  }

  drop(serverIds: Iterable<string>): void {
    for (const id of serverIds) {
      const slots = this.#pools.get(id);
      if (slots === undefined) continue;
      this.#pools.delete(id);
      const pool = slots.pool;
      // what waits goes to undici now: close() lets queued requests finish first
      for (const q of slots.waiting.splice(0)) { clearTimeout(q.timer); this.#start(slots, q.request, q.handler); }
      const closing: Promise<void> = pool.close().then(
        () => { this.#log.debug({ server: id }, 'upstream pool closed after drain'); },
        (err: unknown) => { this.#log.warn({ server: id, err }, 'upstream pool close failed'); },
      ).finally(() => { this.#closing.delete(pool); });
      this.#closing.set(pool, closing);
    }
  }

  stats(id: string): ServerPoolStats {
    const slots = this.#pools.get(id);
    if (slots === undefined) return { connected: 0, pending: 0, running: 0 };
    const s = slots.pool.stats;
    return { connected: s.connected, pending: s.pending + slots.waiting.length, running: s.running };
  }

  /** Wait for in-flight requests on every pool, then close them all. */
  async closeGracefully(): Promise<void> {
    const all = [...this.#pools.values()];
    for (const slots of all) for (const q of slots.waiting.splice(0)) { clearTimeout(q.timer); this.#start(slots, q.request, q.handler); }
    const pools = all.map((s) => s.pool);
    this.#pools.clear();
    await Promise.allSettled([...pools.map((p) => p.close()), ...this.#closing.values()]);
  }

  /** Abort everything now. */
  async destroy(): Promise<void> {
    for (const slots of this.#pools.values()) {
      for (const q of slots.waiting.splice(0)) { clearTimeout(q.timer); q.handler.onError(transportError(ERR.aborted, 'transport destroyed')); }
    }
    const pools = [...[...this.#pools.values()].map((s) => s.pool), ...this.#closing.keys()];
    this.#pools.clear();
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }
}
