// Active health checks (nginx_upstream_check_module style): per upstream that declares `check`,
// per server, an HTTP GET (expected statuses), a TCP connect or a gRPC Health/Check (on one HTTP/2
// session per server, kept across probes) every interval, bounded by a timeout. Results go to PeerHealth.onActiveResult, which owns rise/fall. Timers are unref'd and
// restarted on a table swap only for servers whose upstream check spec or server entry changed.
import http from 'node:http';
import net from 'node:net';
import type pino from 'pino';
import type { ActiveCheckSpec, RouteTable, ServerSpec, UpstreamSpec } from '../routing/types.js';
import { upstreamOf } from '../routing/table-upstreams.js';
import { GrpcHealthProbe } from './grpc-health-probe.js';

export interface ActiveResultSink {
  onActiveResult(id: string, ok: boolean, now: number, error?: string): void;
}

export interface ActiveCheckerOptions {
  readonly sink: ActiveResultSink;
  readonly logger: pino.Logger;
  readonly now?: () => number;
  /** spread of the first probe over the interval, so N servers are not probed at the same instant */
  readonly random?: () => number;
  /** --upstream-ca's PEM: check=grpc over TLS verifies the server's certificate against it (else the system store) */
  readonly upstreamCa?: string;
}

/** a zero or tiny interval from a bad tag must not turn the loop into a busy loop */
const MIN_INTERVAL_MS = 10;

interface ProbeResult { readonly ok: boolean; readonly error?: string }

/**
 * One probe, bounded by spec.timeoutMs and by `signal` (checker stop). Never rejects: anything the
 * request machinery throws (a path node refuses, such as `/health check`, a bad host) is a failed
 * probe, never an exception out of the checker.
 */
export async function probeServer(server: ServerSpec, spec: ActiveCheckSpec, signal: AbortSignal, upstreamCa?: string): Promise<ProbeResult> {
  try {
    if (spec.type === 'grpc') return await probeGrpcOnce(server, spec, signal, upstreamCa);
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

/** A lone gRPC probe on a session of its own (the checker's loops keep theirs across probes). */
async function probeGrpcOnce(server: ServerSpec, spec: ActiveCheckSpec, signal: AbortSignal, upstreamCa: string | undefined): Promise<ProbeResult> {
  const probe = new GrpcHealthProbe(server, spec, upstreamCa);
  try {
    return await probe.check(signal);
  } finally {
    probe.close();
  }
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
  /** type grpc: the server's probe session, reused by every probe of this loop */
  readonly #grpc: GrpcHealthProbe | undefined;

  constructor(
    readonly upstream: string, readonly server: ServerSpec, readonly spec: ActiveCheckSpec,
    readonly opts: Required<Pick<ActiveCheckerOptions, 'now' | 'random'>> & ActiveCheckerOptions,
  ) {
    this.#grpc = spec.type === 'grpc' ? new GrpcHealthProbe(server, spec, opts.upstreamCa) : undefined;
  }

  start(): void {
    this.#schedule(Math.floor(this.opts.random() * this.spec.intervalMs));
  }

  stop(): void {
    this.#abort.abort();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#grpc?.close();
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
      result = this.#grpc !== undefined ? await this.#grpc.check(this.#abort.signal) : await probeServer(this.server, this.spec, this.#abort.signal);
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

/** What changed since the table last applied: only these upstreams are looked at (TableChange fits). */
export interface AppliedChange {
  readonly previous: RouteTable;
  readonly upserted: readonly string[];
  readonly removed: readonly string[];
}

/** The upstreams to look at: the named ones when `change` follows the table applied last, else all of both tables. */
export function namesToApply(last: RouteTable | undefined, table: RouteTable, change: AppliedChange | undefined): Iterable<string> {
  if (change !== undefined && last !== undefined && change.previous === last) return [...change.upserted, ...change.removed];
  return new Set([...(last ? Object.keys(last.upstreams) : []), ...Object.keys(table.upstreams)]);
}

const loopKeys = new WeakMap<UpstreamSpec, readonly string[]>();

/** The probe loops an upstream wants, one per server and check (cached per frozen spec). */
function loopKeysOf(up: UpstreamSpec | undefined): readonly string[] {
  if (up?.check === undefined) return [];
  let keys = loopKeys.get(up);
  if (keys === undefined) {
    const checkKey = JSON.stringify(up.check);
    keys = up.servers.map((server) => `${server.id}\n${server.host}\n${server.port}\n${checkKey}`);
    if (Object.isFrozen(up)) loopKeys.set(up, keys);
  }
  return keys;
}

export class ActiveChecker {
  readonly #loops = new Map<string, ServerProbeLoop>();
  /** loop key -> the upstreams that list it (a loop runs while one does) */
  readonly #owners = new Map<string, Set<string>>();
  /** the spec of each upstream as last applied */
  readonly #applied = new Map<string, UpstreamSpec>();
  #last: RouteTable | undefined;
  readonly #opts: Required<Pick<ActiveCheckerOptions, 'now' | 'random'>> & ActiveCheckerOptions;

  constructor(opts: ActiveCheckerOptions) {
    this.#opts = { ...opts, now: opts.now ?? Date.now, random: opts.random ?? Math.random };
  }

  /**
   * Follow a new table: loops whose (server, check) is unchanged keep running untouched. With
   * `change` (from the table applied last), only the upstreams it names are looked at, so a change
   * costs its own servers, not every server of the table.
   */
  apply(table: RouteTable, change?: AppliedChange): void {
    for (const name of namesToApply(this.#last, table, change)) {
      const next = upstreamOf(table, name);
      this.#update(name, next?.check === undefined ? undefined : next);
    }
    this.#last = table;
  }

  #update(name: string, next: UpstreamSpec | undefined): void {
    const prev = this.#applied.get(name);
    if (prev === next) return;
    const before = loopKeysOf(prev);
    const after = loopKeysOf(next);
    const kept = new Set(after);
    for (const key of before) {
      if (kept.has(key)) continue;
      const owners = this.#owners.get(key);
      owners?.delete(name);
      if (owners === undefined || owners.size === 0) {
        this.#owners.delete(key);
        this.#loops.get(key)?.stop();
        this.#loops.delete(key);
      }
    }
    if (next === undefined) this.#applied.delete(name);
    else this.#applied.set(name, next);
    if (next === undefined || next.check === undefined) return;
    for (let i = 0; i < after.length; i++) {
      const key = after[i];
      let owners = this.#owners.get(key);
      if (owners === undefined) this.#owners.set(key, (owners = new Set()));
      owners.add(name);
      // one probe per server and check, however many upstreams list the server
      if (this.#loops.has(key)) continue;
      const loop = new ServerProbeLoop(name, next.servers[i], next.check, this.#opts);
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
    this.#owners.clear();
    this.#applied.clear();
    this.#last = undefined;
  }
}
