// Per-worker request figures: the exchange layer calls requestEnd() once per client request (proxied,
// 404 unknown host, 502 no upstream, client gone). Counts accumulate in plain numbers and typed arrays
// keyed by numbers, so the hot path allocates nothing once a (service, code, method, protocol) series
// exists. takeDelta() hands everything since the last call to the primary (which owns the cumulative
// totals, so a worker restart never makes a counter go backwards) and zeroes the counts in place.
import { OTHER, UNKNOWN_SERVICE } from './label-values.js';
import { FINE_BUCKET_COUNT, fineBucketIndex } from './fine-histogram.js';
import type { MetricsDelta, ServerDelta, SeriesDelta, ServiceDelta } from './delta.js';
import { EdgeFigures, type RefusalKind } from './edge-metrics.js';

/** What the exchange layer calls; keep the signature positional: no object per request. */
export interface RequestObserver {
  /**
   * One call at the end of every client request.
   * @param service upstream name; undefined = no route (unknown host, folded into one label value)
   * @param serverId "host:port" of the server that answered last; undefined = none tried
   * @param status status sent to the client (499 when the client went away first)
   * @param method request method as received
   * @param protocol 'http' | 'websocket' | 'sse' | 'grpc' (Traefik's label values)
   * @param durationMs request arrival to response end
   * @param tries upstream attempts (retries = tries - 1)
   * @param requestBytes request body bytes (declared Content-Length when the body was not counted)
   * @param responseBytes response body bytes relayed to the client
   * @param grpcStatus protocol 'grpc': the status the call ended with (http2/grpc-status.ts grpcOutcome)
   */
  requestEnd(service: string | undefined, serverId: string | undefined, status: number, method: string, protocol: string,
    durationMs: number, tries: number, requestBytes: number, responseBytes: number, grpcStatus?: number): void;
  /** an upgrade tunnel (WebSocket and the like) opened after the server's 101 */
  tunnelOpened(service: string): void;
  /** that tunnel closed (either side) */
  tunnelClosed(service: string): void;
  /** a request (HTTP) or connection (TCP) refused by the access rules or the rate limit */
  refused?(service: string, protocol: 'http' | 'tcp', kind: RefusalKind): void;
  /** a TCP service connection began relaying */
  tcpOpened?(service: string): void;
  /** a TCP service connection ended; `wasOpen`: it had begun relaying (tcpOpened) */
  tcpEnded?(service: string, result: string, bytesIn: number, bytesOut: number, durationMs: number, connectErrors: number, wasOpen: boolean): void;
}

export { OTHER, UNKNOWN_SERVICE } from './label-values.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'] as const;
const OTHER_METHOD = METHODS.length; // any other method is counted as "OTHER"
const PROTOCOLS = ['http', 'websocket', 'sse', 'grpc', 'http2'] as const;

export interface RequestMetricsOptions {
  /** request duration histogram upper bounds in seconds (ascending; +Inf implied) */
  readonly bucketsSeconds: readonly number[];
  /** distinct server labels kept per service; more are folded into "_other" */
  readonly maxServersPerService: number;
  /** distinct services kept; more are folded into "_other" */
  readonly maxServices?: number;
}

class Series {
  count = 0;
  requestBytes = 0;
  responseBytes = 0;
  durationSum = 0;
  readonly buckets: Float64Array;
  constructor(readonly code: number, readonly method: string, readonly protocol: string, bucketCount: number) {
    this.buckets = new Float64Array(bucketCount + 1);
  }
}

class ServerFigures {
  count = 0;
  errors = 0;
  durationSumMs = 0;
  readonly fine = new Float64Array(FINE_BUCKET_COUNT);
}

/** gRPC status codes are 0-16; anything else a server sends is counted as UNKNOWN (2), bounding the label */
const MAX_GRPC_STATUS = 16;

class ServiceFigures {
  readonly series = new Map<number, Series>();
  /** gRPC calls ended since the last delta, by grpc-status (index) */
  grpc: Float64Array | undefined;
  readonly servers = new Map<string, ServerFigures>();
  retries = 0;
  dirty = false;
}

export class RequestMetrics implements RequestObserver {
  readonly #bounds: Float64Array;
  readonly #maxServers: number;
  readonly #maxServices: number;
  readonly #services = new Map<string, ServiceFigures>();
  readonly #scripts = new Map<string, { calls: number; errors: number }>();
  /** per service: tunnels opened and closed since the last delta, and open now */
  readonly #tunnels = new Map<string, { opened: number; closed: number; open: number }>();
  /** TCP services and refusals (edge-metrics.ts) */
  readonly edge: EdgeFigures;
  /** the script host's cumulative counts seen at the last delta, by script name and version */
  #scriptTotalsSeen = new Map<string, { calls: number; errors: number }>();

  constructor(opts: RequestMetricsOptions) {
    this.#bounds = Float64Array.from(opts.bucketsSeconds);
    this.#maxServers = Math.max(1, opts.maxServersPerService);
    this.#maxServices = Math.max(1, opts.maxServices ?? 2000);
    this.edge = new EdgeFigures(this.#maxServices);
  }

  refused(service: string, protocol: 'http' | 'tcp', kind: RefusalKind): void { this.edge.refused(service, protocol, kind); }
  tcpOpened(service: string): void { this.edge.tcpOpened(service); }
  tcpEnded(service: string, result: string, bytesIn: number, bytesOut: number, durationMs: number, connectErrors: number, wasOpen: boolean): void {
    this.edge.tcpEnded(service, result, bytesIn, bytesOut, durationMs, connectErrors, wasOpen);
  }

  requestEnd(service: string | undefined, serverId: string | undefined, status: number, method: string, protocol: string,
    durationMs: number, tries: number, requestBytes: number, responseBytes: number, grpcStatus?: number): void {
    const svc = this.#service(service ?? UNKNOWN_SERVICE);
    svc.dirty = true;
    if (grpcStatus !== undefined) {
      const g = Number.isInteger(grpcStatus) && grpcStatus >= 0 && grpcStatus <= MAX_GRPC_STATUS ? grpcStatus : 2;
      (svc.grpc ??= new Float64Array(MAX_GRPC_STATUS + 1))[g]++;
    }
    if (tries > 1) svc.retries += tries - 1;
    let m = METHODS.indexOf(method as (typeof METHODS)[number]);
    if (m < 0) m = OTHER_METHOD;
    let p = PROTOCOLS.indexOf(protocol as (typeof PROTOCOLS)[number]);
    if (p < 0) p = 0;
    const code = status > 0 && status < 1000 ? status : 0;
    const key = (code * 16 + m) * 8 + p;
    let s = svc.series.get(key);
    if (s === undefined) {
      s = new Series(code, m === OTHER_METHOD ? 'OTHER' : METHODS[m], PROTOCOLS[p], this.#bounds.length);
      svc.series.set(key, s);
    }
    const seconds = durationMs / 1000;
    s.count++;
    s.requestBytes += requestBytes > 0 ? requestBytes : 0;
    s.responseBytes += responseBytes > 0 ? responseBytes : 0;
    s.durationSum += seconds;
    const bounds = this.#bounds;
    let b = 0;
    while (b < bounds.length && seconds > bounds[b]) b++;
    s.buckets[b]++;
    if (serverId === undefined) return;
    let srv = svc.servers.get(serverId);
    if (srv === undefined) {
      srv = svc.servers.size < this.#maxServers ? new ServerFigures() : (svc.servers.get(OTHER) ?? new ServerFigures());
      svc.servers.set(svc.servers.size < this.#maxServers ? serverId : OTHER, srv);
    }
    srv.count++;
    if (status >= 500) srv.errors++;
    srv.durationSumMs += durationMs;
    srv.fine[fineBucketIndex(durationMs)]++;
  }

  /** Scripts (policy helper): one call per script run; error = it threw or timed out. */
  scriptCalled(script: string, error: boolean): void {
    const s = this.#script(script);
    s.calls++;
    if (error) s.errors++;
  }

  #script(script: string): { calls: number; errors: number } {
    let s = this.#scripts.get(script);
    if (s === undefined) {
      if (this.#scripts.size >= 200) script = OTHER;
      s = this.#scripts.get(script) ?? { calls: 0, errors: 0 };
      this.#scripts.set(script, s);
    }
    return s;
  }

  #tunnel(service: string): { opened: number; closed: number; open: number } {
    let t = this.#tunnels.get(service);
    if (t === undefined) {
      if (this.#tunnels.size >= this.#maxServices) service = OTHER;
      t = this.#tunnels.get(service) ?? { opened: 0, closed: 0, open: 0 };
      this.#tunnels.set(service, t);
    }
    return t;
  }

  tunnelOpened(service: string): void {
    const t = this.#tunnel(service);
    t.opened++;
    t.open++;
  }

  tunnelClosed(service: string): void {
    const t = this.#tunnel(service);
    t.closed++;
    if (t.open > 0) t.open--;
  }

  /** [service, tunnels open now] (a gauge: the primary drops it with the worker's other gauges) */
  openTunnels(): [string, number][] {
    const out: [string, number][] = [];
    for (const [name, t] of this.#tunnels) if (t.open > 0 || t.opened > 0 || t.closed > 0) out.push([name, t.open]);
    return out;
  }

  /**
   * The script host keeps cumulative calls/errors per loaded script (a new version starts at 0);
   * counting the difference since the last flush keeps the request path free of a metrics call.
   * Counts of a script version that is replaced between two flushes are lost (at most one interval).
   */
  scriptTotals(stats: readonly { readonly name: string; readonly version: string; readonly calls: number; readonly errors: number }[]): void {
    const seen = new Map<string, { calls: number; errors: number }>();
    for (const s of stats) {
      const key = `${s.name}\u0000${s.version}`;
      const prev = this.#scriptTotalsSeen.get(key);
      // fewer than before: the script was loaded afresh under the same version
      const calls = prev !== undefined && s.calls >= prev.calls ? s.calls - prev.calls : s.calls;
      const errors = prev !== undefined && s.errors >= prev.errors ? s.errors - prev.errors : s.errors;
      seen.set(key, { calls: s.calls, errors: s.errors });
      if (calls === 0 && errors === 0) continue;
      const c = this.#script(s.name);
      c.calls += calls;
      c.errors += errors;
    }
    this.#scriptTotalsSeen = seen;
  }

  /** Everything counted since the previous call (undefined when nothing was), counts zeroed in place. */
  takeDelta(): MetricsDelta | undefined {
    const services: ServiceDelta[] = [];
    for (const [name, svc] of this.#services) {
      if (!svc.dirty) continue;
      svc.dirty = false;
      const series: SeriesDelta[] = [];
      for (const s of svc.series.values()) {
        if (s.count === 0) continue;
        series.push([s.code, s.method, s.protocol, s.count, s.requestBytes, s.responseBytes, s.durationSum, Array.from(s.buckets)]);
        s.count = 0; s.requestBytes = 0; s.responseBytes = 0; s.durationSum = 0; s.buckets.fill(0);
      }
      const servers: ServerDelta[] = [];
      for (const [id, f] of svc.servers) {
        if (f.count === 0) continue;
        const sparse: number[] = [];
        for (let i = 0; i < f.fine.length; i++) if (f.fine[i] !== 0) sparse.push(i, f.fine[i]);
        servers.push([id, f.count, f.errors, f.durationSumMs, sparse]);
        f.count = 0; f.errors = 0; f.durationSumMs = 0; f.fine.fill(0);
      }
      const grpc: [number, number][] = [];
      if (svc.grpc !== undefined) {
        for (let g = 0; g < svc.grpc.length; g++) if (svc.grpc[g] !== 0) grpc.push([g, svc.grpc[g]]);
        svc.grpc.fill(0);
      }
      services.push({ name, retries: svc.retries, series, servers, ...(grpc.length > 0 ? { grpc } : {}) });
      svc.retries = 0;
    }
    const scripts: [string, number, number][] = [];
    for (const [name, s] of this.#scripts) {
      if (s.calls === 0) continue;
      scripts.push([name, s.calls, s.errors]);
      s.calls = 0; s.errors = 0;
    }
    const tunnels: [string, number, number][] = [];
    for (const [name, t] of this.#tunnels) {
      if (t.opened === 0 && t.closed === 0) continue;
      tunnels.push([name, t.opened, t.closed]);
      t.opened = 0; t.closed = 0;
    }
    const edge = this.edge.takeDelta();
    if (services.length === 0 && scripts.length === 0 && tunnels.length === 0 && edge.tcp === undefined && edge.refused === undefined) return undefined;
    return { bucketsSeconds: Array.from(this.#bounds), services, scripts, ...(tunnels.length > 0 ? { tunnels } : {}), ...edge };
  }

  /**
   * Keep figures only for the services and servers of the table being served. Called right after
   * takeDelta, when everything counted has been handed over, so nothing is lost. Without it a server
   * that left kept its label slot for good: once maxServersPerService servers had come and gone,
   * every new one was counted as "_other", and each removed service kept its series.
   */
  retain(live: { get(service: string): { has(id: string): boolean } | undefined; has(service: string): boolean }): void {
    for (const [name, svc] of this.#services) {
      if (name === UNKNOWN_SERVICE || name === OTHER || svc.dirty) continue;
      const servers = live.get(name);
      if (servers === undefined) {
        this.#services.delete(name);
        continue;
      }
      for (const [id, f] of svc.servers) if (id !== OTHER && f.count === 0 && !servers.has(id)) svc.servers.delete(id);
    }
    for (const [name, t] of this.#tunnels) {
      if (name !== OTHER && !live.has(name) && t.open === 0 && t.opened === 0 && t.closed === 0) this.#tunnels.delete(name);
    }
  }

  /** Services and servers holding figures (how much retain() keeps). */
  sizes(): { services: number; servers: number; tunnels: number } {
    let servers = 0;
    for (const svc of this.#services.values()) servers += svc.servers.size;
    return { services: this.#services.size, servers, tunnels: this.#tunnels.size };
  }

  #service(name: string): ServiceFigures {
    let svc = this.#services.get(name);
    if (svc === undefined) {
      if (this.#services.size >= this.#maxServices) name = OTHER;
      svc = this.#services.get(name) ?? new ServiceFigures();
      this.#services.set(name, svc);
    }
    return svc;
  }
}
