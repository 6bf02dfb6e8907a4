// Keep-alive sockets of one upstream server: bounded connections, idle sockets reused most recent
// first, a bounded wait queue whose entries time out, a cap on requests per connection. A socket
// that closed (or misbehaved) while idle is dropped from the idle stack and never handed out.
import { ERR, transportError, type UpstreamHandler, type UpstreamRequest } from '../transport.js';
import type { ServerPoolStats } from '../transport.js';
import { UpstreamConnection, type UpstreamConnectionOwner, type UpstreamTimeouts } from './upstream-connection.js';
import type { DeadlineSweep } from '../deadline-sweep.js';

export interface ServerPoolOptions extends UpstreamTimeouts {
  readonly maxConnections: number;
  readonly maxQueue: number;
  readonly queueMs: number;
  readonly maxRequestsPerConnection: number;
}

interface Waiter {
  readonly request: UpstreamRequest;
  readonly handler: UpstreamHandler;
  readonly since: number;
}

export class ServerPool implements UpstreamConnectionOwner {
  readonly #all = new Set<UpstreamConnection>();
  /** idle connections, most recently used last */
  readonly #idle: UpstreamConnection[] = [];
  readonly #queue: Waiter[] = [];
  #queueTimer: NodeJS.Timeout | undefined;
  #closing = false;
  #onEmpty: (() => void) | undefined;

  /** `sweep`: the transport's clock, shared by the connections of every pool */
  /** `preamble`: what each new connection sends first (a PROXY protocol header, proxy-protocol-upstream.ts) */
  constructor(readonly host: string, readonly port: number, readonly opts: ServerPoolOptions, readonly sweep: DeadlineSweep, readonly preamble?: Buffer) {}

  dispatch(request: UpstreamRequest, handler: UpstreamHandler): void {
    if (this.#closing) {
      handler.onError(transportError(ERR.socket, 'server left the table'));
      return;
    }
    const idle = this.#popIdle();
    if (idle !== undefined) { idle.run(request, handler); return; }
    if (this.#all.size < this.opts.maxConnections) { this.#connect().run(request, handler); return; }
    if (this.#queue.length >= this.opts.maxQueue) {
      handler.onError(transportError(ERR.queueFull, `all ${this.opts.maxConnections} connections busy and ${this.opts.maxQueue} requests waiting`));
      return;
    }
    this.#queue.push({ request, handler, since: Date.now() });
    this.#armQueueTimer();
  }

  #popIdle(): UpstreamConnection | undefined {
    while (this.#idle.length > 0) {
      const conn = this.#idle.pop() as UpstreamConnection;
      if (!conn.dead && !conn.socket.destroyed && conn.socket.writable) return conn;
      this.#forget(conn);
      conn.destroy();
    }
    return undefined;
  }

  #connect(): UpstreamConnection {
    const conn = new UpstreamConnection(this, this.host, this.port, this.opts, this.preamble);
    this.#all.add(conn);
    return conn;
  }

  release(conn: UpstreamConnection, reusable: boolean): void {
    if (!reusable || this.#closing || conn.requests >= this.opts.maxRequestsPerConnection) {
      this.#forget(conn);
      conn.destroy();
      this.#serveQueue();
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined) {
      // hand over on the next tick: the finishing exchange completes first
      queueMicrotask(() => {
        if (conn.dead) { this.#forget(conn); this.dispatch(next.request, next.handler); } else conn.run(next.request, next.handler);
      });
      return;
    }
    this.#idle.push(conn);
  }

  closed(conn: UpstreamConnection): void {
    this.#forget(conn);
    this.#serveQueue();
  }

  #forget(conn: UpstreamConnection): void {
    if (!this.#all.delete(conn)) return;
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    if (this.#all.size === 0) this.#onEmpty?.();
  }

  /** A connection slot freed up: start a new connection for the oldest waiter. */
  #serveQueue(): void {
    if (this.#closing) return;
    while (this.#queue.length > 0 && this.#all.size < this.opts.maxConnections) {
      const w = this.#queue.shift() as Waiter;
      this.#connect().run(w.request, w.handler);
    }
  }

  #armQueueTimer(): void {
    if (this.#queueTimer !== undefined || this.#queue.length === 0 || this.opts.queueMs <= 0) return;
    const wait = Math.max(1, this.#queue[0].since + this.opts.queueMs - Date.now());
    this.#queueTimer = setTimeout(() => {
      this.#queueTimer = undefined;
      const now = Date.now();
      while (this.#queue.length > 0 && now - this.#queue[0].since >= this.opts.queueMs) {
        const w = this.#queue.shift() as Waiter;
        w.handler.onError(transportError(ERR.queueTimeout, `waited ${this.opts.queueMs} ms for a connection`));
      }
      this.#armQueueTimer();
    }, wait);
    this.#queueTimer.unref();
  }

  stats(): ServerPoolStats {
    let running = 0;
    for (const c of this.#all) if (c.busy) running++;
    return { connected: this.#all.size, pending: this.#queue.length, running };
  }

  /** No new requests; idle sockets close now, busy ones when their request ends. Resolves when none is left. */
  close(): Promise<void> {
    this.#closing = true;
    for (const w of this.#queue.splice(0)) w.handler.onError(transportError(ERR.socket, 'pool closed'));
    for (const c of this.#idle.splice(0)) { this.#all.delete(c); c.destroy(); }
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => { this.#onEmpty = resolve; });
  }

  destroy(): void {
    this.#closing = true;
    if (this.#queueTimer !== undefined) clearTimeout(this.#queueTimer);
    for (const w of this.#queue.splice(0)) w.handler.onError(transportError(ERR.aborted, 'pool destroyed'));
    this.#idle.length = 0;
    for (const c of [...this.#all]) { this.#all.delete(c); c.destroy(); }
    this.#onEmpty?.();
  }
}
