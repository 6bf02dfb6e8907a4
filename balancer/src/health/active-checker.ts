// Active health checks (nginx_upstream_check_module style): per upstream that declares `check`,
// per server, an HTTP GET (expected statuses) or a TCP connect every interval, bounded by a
// timeout. Results go to PeerHealth.onActiveResult, which owns rise/fall. Timers are unref'd and
// restarted on a table swap only for servers whose upstream check spec or server entry changed.
import http from 'node:http';
import net from 'node:net';
import type pino from 'pino';
import type { ActiveCheckSpec, RouteTable, ServerSpec } from '../routing/types.js';

export interface ActiveResultSink {
  onActiveResult(id: string, ok: boolean, now: number, error?: string): void;
}

export interface ActiveCheckerOptions {
  readonly sink: ActiveResultSink;
  readonly logger: pino.Logger;
  readonly now?: () => number;
  /** spread of the first probe over the interval, so N servers are not probed at the same instant */
  readonly random?: () => number;
}

/** a zero or tiny interval from a bad tag must not turn the loop into a busy loop */
const MIN_INTERVAL_MS = 10;

interface ProbeResult { readonly ok: boolean; readonly error?: string }

/**
 * One probe, bounded by spec.timeoutMs and by `signal` (checker stop). Never rejects: anything the
 * request machinery throws (a path node refuses, such as `/health check`, a bad host) is a failed
 * probe, never an exception out of the checker.
 */
export async function probeServer(server: ServerSpec, spec: ActiveCheckSpec, signal: AbortSignal): Promise<ProbeResult> {
  try {
    return await (spec.type === 'tcp' ? probeTcp(server, spec, signal) : probeHttp(server, spec, signal));
  } catch (err) {
    const e = err as Error & { code?: string };
    return { ok: false, error: `${e?.code ?? 'ERROR'}: ${e?.message ?? String(err)}` };
  }
}

/** Host header of a probe: an IPv6 address is bracketed (`[::1]:8080`), as in a URL. */
export function probeHostHeader(host: string, port: number): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return bare.includes(':') ? `[${bare}]:${port}` : `${bare}:${port}`;
}

function probeTcp(server: ServerSpec, spec: ActiveCheckSpec, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: server.host, port: server.port });
    const timer = setTimeout(() => finish({ ok: false, error: `timeout after ${spec.timeoutMs} ms` }), spec.timeoutMs);
    const onAbort = (): void => finish({ ok: false, error: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
    function finish(result: ProbeResult): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    }
    socket.once('connect', () => finish({ ok: true }));
    socket.once('error', (err: Error & { code?: string }) => finish({ ok: false, error: `${err.code ?? 'ERROR'}: ${err.message}` }));
  });
}

function probeHttp(server: ServerSpec, spec: ActiveCheckSpec, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const req = http.request({
      host: server.host.replace(/^\[(.*)\]$/, '$1'), port: server.port, method: 'GET', path: spec.path || '/', agent: false, signal,
      headers: { host: probeHostHeader(server.host, server.port), 'user-agent': 'balancer-health-check', connection: 'close' },
    }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      res.once('error', () => undefined);
      const ok = spec.expectStatuses.length === 0 ? status >= 200 && status < 400 : spec.expectStatuses.includes(status);
      finish(ok ? { ok } : { ok, error: `status ${status}` });
      req.destroy();
    });
    const timer = setTimeout(() => {
      finish({ ok: false, error: `timeout after ${spec.timeoutMs} ms` });
      req.destroy();
    }, spec.timeoutMs);
    req.once('error', (err: Error & { code?: string }) => finish({ ok: false, error: `${err.code ?? 'ERROR'}: ${err.message}` }));
    req.end();
  });
}

/** Scheduling of one server's probes: one in flight at a time, next one `intervalMs` after it ends. */
class ServerProbeLoop {
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly upstream: string, readonly server: ServerSpec, readonly spec: ActiveCheckSpec,
    readonly opts: Required<Pick<ActiveCheckerOptions, 'now' | 'random'>> & ActiveCheckerOptions,
  ) {}

  start(): void {
    this.#schedule(Math.floor(this.opts.random() * this.spec.intervalMs));
  }

  stop(): void {
    this.#abort.abort();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  #schedule(delayMs: number): void {
    if (this.#abort.signal.aborted) return;
    this.#timer = setTimeout(() => {
      this.#run().catch((err: unknown) => this.opts.logger.error({ err, server: this.server.id }, 'active check loop failed'));
    }, delayMs);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    let result: ProbeResult;
    try {
      result = await probeServer(this.server, this.spec, this.#abort.signal);
    } catch (err) {
      result = { ok: false, error: (err as Error)?.message ?? String(err) };
    }
    if (this.#abort.signal.aborted) return;
    try {
      this.opts.sink.onActiveResult(this.server.id, result.ok, this.opts.now(), result.error);
    } catch (err) {
      this.opts.logger.error({ err, server: this.server.id }, 'active check result handler failed');
    }
    this.#schedule(Math.max(MIN_INTERVAL_MS, this.spec.intervalMs));
  }
}

export class ActiveChecker {
  readonly #loops = new Map<string, ServerProbeLoop>();
  readonly #opts: Required<Pick<ActiveCheckerOptions, 'now' | 'random'>> & ActiveCheckerOptions;

  constructor(opts: ActiveCheckerOptions) {
    this.#opts = { ...opts, now: opts.now ?? Date.now, random: opts.random ?? Math.random };
  }

  /** Follow a new table: loops whose (upstream, server, check) is unchanged keep running untouched. */
  apply(table: RouteTable): void {
    const wanted = new Map<string, { upstream: string; server: ServerSpec; spec: ActiveCheckSpec }>();
    for (const name of Object.keys(table.upstreams)) {
      const up = table.upstreams[name];
      if (up.check === undefined) continue;
      const checkKey = JSON.stringify(up.check);
      // one probe per server and check, however many upstreams list the server
      for (const server of up.servers) {
        const key = `${server.id}\n${server.host}\n${server.port}\n${checkKey}`;
        if (!wanted.has(key)) wanted.set(key, { upstream: name, server, spec: up.check });
      }
    }
    for (const [key, loop] of this.#loops) {
      if (!wanted.has(key)) { loop.stop(); this.#loops.delete(key); }
    }
    for (const [key, w] of wanted) {
      if (this.#loops.has(key)) continue;
      const loop = new ServerProbeLoop(w.upstream, w.server, w.spec, this.#opts);
      this.#loops.set(key, loop);
      loop.start();
    }
  }

  get size(): number {
    return this.#loops.size;
  }

  stop(): void {
    for (const loop of this.#loops.values()) loop.stop();
    this.#loops.clear();
  }
}
