// The primary's metrics: the workers' request figures (MetricsStore) plus the balancer's own
// (table swaps and latencies, Consul, workers, reloads, dump, scripts, certificates, processes),
// rendered with Traefik's service metric names under a configurable prefix so Traefik boards work.
import type { MetricsDelta, ProcessGauges, WorkerMetricsMessage } from './delta.js';
import { histogramSamples, LocalHistogram, renderFamilies, wantsOpenMetrics, type Family, type Sample } from '../../../common/metrics/exposition.js';
import { MetricsStore, type TcpTotals } from './metrics-store.js';
import { TCP_DURATION_BUCKETS_SECONDS } from './edge-metrics.js';
import { ProcessSampler } from '../../../common/metrics/process-sampler.js';
import { OTHER } from './request-metrics.js';

/** The TCP service families (proto=tcp|tcp+sni): connections by result, open, bytes, connect errors, durations. */
function tcpFamilies(p: string, tcp: [string, TcpTotals][], open: [string, number][]): Family[] {
  const conns: Sample[] = [];
  const durations: Sample[] = [];
  for (const [service, t] of tcp) {
    for (const [result, n] of [...t.results].sort((a, b) => (a[0] < b[0] ? -1 : 1))) conns.push({ labels: { service, result }, value: n });
    durations.push(...histogramSamples(`${p}_tcp_connection_duration_seconds`, { service }, TCP_DURATION_BUCKETS_SECONDS, t.buckets, t.durationSum));
  }
  const per = (pick: (t: TcpTotals) => number): Sample[] => tcp.map(([service, t]) => ({ labels: { service }, value: pick(t) }));
  return [
    { name: `${p}_tcp_connections_total`, help: 'TCP service connections ended, partitioned by service and result (relayed, or why not: denied, limited, no-server, all-failed, bad-hello, no-route, client-gone).', type: 'counter', samples: conns },
    { name: `${p}_tcp_open_connections`, help: 'TCP service connections open now, partitioned by service.', type: 'gauge', samples: open.map(([service, n]) => ({ labels: { service }, value: n })) },
    { name: `${p}_tcp_received_bytes_total`, help: 'Bytes received from TCP clients, partitioned by service.', type: 'counter', samples: per((t) => t.bytesIn) },
    { name: `${p}_tcp_sent_bytes_total`, help: 'Bytes sent to TCP clients, partitioned by service.', type: 'counter', samples: per((t) => t.bytesOut) },
    { name: `${p}_tcp_connect_errors_total`, help: 'Failed connects to TCP service servers (each retried or final failure), partitioned by service.', type: 'counter', samples: per((t) => t.connectErrors) },
    { name: `${p}_tcp_connection_duration_seconds`, help: 'How long TCP service connections lasted, accept to close, partitioned by service.', type: 'histogram', samples: durations },
  ];
}

/** Traefik's default request duration buckets (seconds). */
export const DEFAULT_BUCKETS_SECONDS: readonly number[] = [0.1, 0.3, 1.2, 5];
export const DEFAULT_PREFIX = 'balancer';
export const DEFAULT_MAX_SERVERS_PER_SERVICE = 100;
const CHANGE_TO_SWAP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface MetricsSettings {
  readonly prefix: string;
  readonly bucketsSeconds: readonly number[];
  readonly maxServersPerService: number;
}

export interface WorkerFigures {
  readonly generation: number;
  readonly workersAlive: number;
  readonly workersReady: number;
  readonly restarts: number;
  readonly reloads: number;
  readonly lastReloadMs?: number;
}

export interface ConsulFigures {
  readonly reachable: boolean | undefined;
  readonly services?: number;
  readonly queries?: number;
  readonly errors?: number;
  /** answers 429 Too Many Requests */
  readonly throttled?: number;
  /** change signals the agent refused and discovery replaced (the filtered checks query answered 400) */
  readonly signalFallbacks?: number;
}

/** Where the balancer's own figures come from (plain functions: the metrics module imports none of those parts). */
export interface BalancerMetricSources {
  readonly mode: 'dynamic' | 'reload';
  table(): { readonly version: string; readonly swaps: number; readonly upstreams: number };
  workers(): WorkerFigures;
  consul?(): ConsulFigures | undefined;
  dump?(): { readonly writes: number; readonly failures: number } | undefined;
}

/** The part of a routing table the metrics look at (structurally a RouteTable). */
export interface LiveTable {
  readonly upstreams: Readonly<Record<string, { readonly servers: readonly { readonly id: string }[] }>>;
}

type LiveUpstream = LiveTable['upstreams'][string];
const serverIdSets = new WeakMap<LiveUpstream, ReadonlySet<string>>();

/** One upstream's server ids, made once per (frozen, shared between tables) upstream object. */
function serverIdsOf(up: LiveUpstream): ReadonlySet<string> {
  let ids = serverIdSets.get(up);
  if (ids === undefined) {
    ids = new Set(up.servers.map((s) => s.id));
    if (Object.isFrozen(up)) serverIdSets.set(up, ids);
  }
  return ids;
}

/**
 * The table's services and their server ids as the store reads them (get/has per service it holds
 * figures for): a view over the table, nothing is walked up front, so a table change costs nothing
 * here and the store's tick costs the services it keeps, not the table.
 */
export function liveServers(table: LiveTable, lookup?: UpstreamLookup): ReadonlyMap<string, ReadonlySet<string>> {
  return new LiveServersView(table, lookup);
}

/** One upstream of the table by name (the routing table's upstreamOf: no walk, no copy of the table). */
export type UpstreamLookup = (name: string) => LiveUpstream | undefined;

class LiveServersView implements ReadonlyMap<string, ReadonlySet<string>> {
  constructor(private readonly table: LiveTable, private readonly lookup?: UpstreamLookup) {}
  private get upstreams(): LiveTable['upstreams'] {
    return this.table.upstreams;
  }
  get(name: string): ReadonlySet<string> | undefined {
    const up = this.lookup ? this.lookup(name) : Object.hasOwn(this.upstreams, name) ? this.upstreams[name] : undefined;
    return up === undefined ? undefined : serverIdsOf(up);
  }
  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
  get size(): number {
    return Object.keys(this.upstreams).length;
  }
  *entries(): MapIterator<[string, ReadonlySet<string>]> {
    for (const name of Object.keys(this.upstreams)) yield [name, serverIdsOf(this.upstreams[name])];
  }
  keys(): MapIterator<string> {
    return Object.keys(this.upstreams)[Symbol.iterator]() as MapIterator<string>;
  }
  *values(): MapIterator<ReadonlySet<string>> {
    for (const name of Object.keys(this.upstreams)) yield serverIdsOf(this.upstreams[name]);
  }
  [Symbol.iterator](): MapIterator<[string, ReadonlySet<string>]> {
    return this.entries();
  }
  forEach(fn: (value: ReadonlySet<string>, key: string, map: ReadonlyMap<string, ReadonlySet<string>>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
}

/** A certificate the TLS part serves: name (SNI / CN) and its notAfter in ms since epoch. */
export interface CertificateExpiry {
  readonly name: string;
  readonly notAfterMs: number;
  /** where the serving certificate came from: dir, kv (ACME included), admin */
  readonly source?: string;
}

export class BalancerMetrics {
  readonly store: MetricsStore;
  readonly settings: MetricsSettings;
  readonly #sources: BalancerMetricSources;
  readonly #changeToSwap = new LocalHistogram(CHANGE_TO_SWAP_BUCKETS);
  readonly #changedAt = new Map<string, number>();
  #lastSwapSeconds = 0;
  #lastSwapAt = 0;
  #certificates: (() => readonly CertificateExpiry[]) | undefined;
  readonly #sampler = new ProcessSampler();
  #primaryGauges: ProcessGauges;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(settings: MetricsSettings, sources: BalancerMetricSources, now: () => number = Date.now) {
    this.settings = settings;
    this.#sources = sources;
    this.#now = now;
    this.store = new MetricsStore({ bucketsSeconds: settings.bucketsSeconds, now });
    this.#primaryGauges = this.#sampler.sample();
  }

  /** Starts the 1 s tick (window snapshots, primary process gauges). */
  start(): void {
    this.#timer ??= setInterval(() => {
      this.store.tick();
      this.#primaryGauges = this.#sampler.sample();
    }, 1_000);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sampler.stop();
  }

  /** A worker's 'metrics' IPC message. */
  /** wantFull: the worker's server gauges missed a report; ask it for a full set (`metrics-full`) */
  onWorkerReport(msg: WorkerMetricsMessage): { wantFull: boolean } {
    return this.store.addWorkerReport(msg);
  }

  /** Scripts run in the primary count here (workers' go through their RequestMetrics). */
  scriptCalled(script: string, error: boolean): void {
    const delta: MetricsDelta = { bucketsSeconds: [...this.settings.bucketsSeconds], services: [], scripts: [[script, 1, error ? 1 : 0]] };
    this.store.addDelta(delta);
  }

  /** The TLS part registers how to read its certificates' expiry (read at scrape time). */
  setCertificateSource(source: () => readonly CertificateExpiry[]): void {
    this.#certificates = source;
  }

  /** The holder built a new table (a change was seen); reload mode passes when Consul's answer arrived. */
  tableChanged(version: string, atMs: number = this.#now()): void {
    this.#changedAt.set(version, atMs);
    if (this.#changedAt.size > 64) this.#changedAt.delete(this.#changedAt.keys().next().value as string);
  }

  /** The table now served: figures of the services and servers it no longer has age out of the store. */
  retainLive(table: LiveTable, lookup?: UpstreamLookup): void {
    this.store.setLive(liveServers(table, lookup));
  }

  /** Every worker acknowledged a table (dynamic mode) or a generation serves it (reload mode). */
  tableServed(version: string, swapMs: number): void {
    this.#lastSwapSeconds = swapMs / 1000;
    this.#lastSwapAt = this.#now();
    const at = this.#changedAt.get(version);
    if (at !== undefined) {
      this.#changedAt.delete(version);
      this.#changeToSwap.observe(Math.max(0, this.#now() - at) / 1000);
    }
  }

  async render(accept: string | undefined): Promise<{ contentType: string; body: string }> {
    return renderFamilies(this.families(), wantsOpenMetrics(accept));
  }

  families(): Family[] {
    const p = this.settings.prefix;
    const f: Family[] = [];
    const requests: Sample[] = [];
    const durations: Sample[] = [];
    const reqBytes: Sample[] = [];
    const resBytes: Sample[] = [];
    const retries: Sample[] = [];
    const grpc: Sample[] = [];
    const bounds = this.store.bucketsSeconds;
    for (const name of [...this.store.services.keys()].sort()) {
      const svc = this.store.services.get(name)!;
      retries.push({ labels: { service: name }, value: svc.retries });
      for (const status of [...svc.grpc.keys()].sort((a, b) => a - b)) grpc.push({ labels: { service: name, grpc_status: String(status) }, value: svc.grpc.get(status)! });
      for (const s of svc.series.values()) {
        const labels = { service: name, code: String(s.code), method: s.method, protocol: s.protocol };
        requests.push({ labels, value: s.count });
        reqBytes.push({ labels, value: s.requestBytes });
        resBytes.push({ labels, value: s.responseBytes });
        durations.push(...histogramSamples(`${p}_service_request_duration_seconds`, labels, bounds, s.buckets, s.durationSum));
      }
    }
    f.push({ name: `${p}_service_requests_total`, help: 'How many HTTP requests processed, partitioned by service, status code, method and protocol.', type: 'counter', samples: requests });
    f.push({ name: `${p}_service_request_duration_seconds`, help: 'How long it took to process the request, partitioned by service, status code, method and protocol.', type: 'histogram', samples: durations });
    f.push({ name: `${p}_service_grpc_responses_total`, help: 'How many gRPC calls ended, partitioned by service and the grpc-status the client got (1 CANCELLED: the client left first; 2 UNKNOWN: no status).', type: 'counter', samples: grpc });
    f.push({ name: `${p}_service_retries_total`, help: 'How many request retries happened, partitioned by service.', type: 'counter', samples: retries });
    f.push({ name: `${p}_service_requests_bytes_total`, help: 'The total size of request bodies in bytes, partitioned by service, status code, method and protocol.', type: 'counter', samples: reqBytes });
    f.push({ name: `${p}_service_responses_bytes_total`, help: 'The total size of response bodies in bytes, partitioned by service, status code, method and protocol.', type: 'counter', samples: resBytes });

    const open: Sample[] = [];
    for (const [service, n] of [...this.store.inflight()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) open.push({ labels: { service }, value: n });
    f.push({ name: `${p}_service_open_connections`, help: 'How many open connections (requests in flight) exist, partitioned by service.', type: 'gauge', samples: open });

    const byName = <T>(m: Map<string, T>): [string, T][] => [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const tunnels = byName(this.store.tunnels);
    f.push({ name: `${p}_service_tunnels_opened_total`, help: 'Upgrade tunnels (WebSocket and the like) opened after the server\'s 101, partitioned by service.', type: 'counter', samples: tunnels.map(([service, t]) => ({ labels: { service }, value: t.opened })) });
    f.push({ name: `${p}_service_tunnels_closed_total`, help: 'Upgrade tunnels closed, partitioned by service.', type: 'counter', samples: tunnels.map(([service, t]) => ({ labels: { service }, value: t.closed })) });
    f.push({ name: `${p}_service_open_tunnels`, help: 'Upgrade tunnels open now, partitioned by service.', type: 'gauge', samples: byName(this.store.openTunnels()).map(([service, n]) => ({ labels: { service }, value: n })) });
    f.push(...tcpFamilies(p, byName(this.store.tcp), byName(this.store.openTcp())));
    const refused = [...this.store.refused.values()].sort((a, b) => (a.service === b.service ? (a.protocol < b.protocol ? -1 : 1) : a.service < b.service ? -1 : 1));
    f.push({ name: `${p}_access_denied_total`, help: 'Requests (HTTP, answered 403) and connections (TCP, closed) refused by the service\'s allow=/deny= rules, partitioned by service and protocol.', type: 'counter', samples: refused.map((r) => ({ labels: { service: r.service, protocol: r.protocol }, value: r.denied })) });
    f.push({ name: `${p}_rate_limited_total`, help: 'Requests (HTTP, answered 429) and new connections (TCP, closed) refused by the service\'s rate= limit, partitioned by service and protocol.', type: 'counter', samples: refused.map((r) => ({ labels: { service: r.service, protocol: r.protocol }, value: r.limited })) });

    const up: Sample[] = [];
    for (const [service, servers] of [...this.store.serverUp()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const ids = [...servers.keys()].sort();
      let other: number | undefined;
      ids.forEach((id, i) => {
        const v = servers.get(id)!;
        if (i < this.settings.maxServersPerService) up.push({ labels: { service, url: serverUrl(id) }, value: v });
        else other = Math.min(other ?? 1, v);
      });
      if (other !== undefined) up.push({ labels: { service, url: OTHER }, value: other });
    }
    f.push({ name: `${p}_service_server_up`, help: 'Current service\'s server status, 0 for a down or 1 for up.', type: 'gauge', samples: up });

    const table = this.#sources.table();
    f.push({ name: `${p}_table_info`, help: 'The routing table being served (version label), always 1.', type: 'gauge', samples: [{ labels: { version: table.version }, value: 1 }] });
    f.push({ name: `${p}_table_swaps_total`, help: 'Routing table swaps in the primary.', type: 'counter', samples: [{ labels: {}, value: table.swaps }] });
    f.push({ name: `${p}_table_upstreams`, help: 'Upstreams in the routing table.', type: 'gauge', samples: [{ labels: {}, value: table.upstreams }] });
    f.push({ name: `${p}_table_last_swap_duration_seconds`, help: 'Time the workers took to serve the last table (publish to last acknowledgement).', type: 'gauge', samples: [{ labels: {}, value: this.#lastSwapSeconds }] });
    f.push({ name: `${p}_table_last_swap_timestamp_seconds`, help: 'When every worker last acknowledged a table (0 = not yet).', type: 'gauge', samples: [{ labels: {}, value: this.#lastSwapAt / 1000 }] });
    f.push({ name: `${p}_table_change_to_swap_seconds`, help: 'From a change seen (dynamic: the table build; reload: the Consul answer behind the render) to every worker serving it (reload: the new generation listening).', type: 'histogram', samples: this.#changeToSwap.samples(`${p}_table_change_to_swap_seconds`) });

    const consul = this.#sources.consul?.();
    if (consul !== undefined) {
      // reload mode knows only the shared connection budget's figures: what is not known is left out, not shown as 0
      const one = (value: number | undefined): Sample[] => (value === undefined ? [] : [{ labels: {}, value }]);
      f.push({ name: `${p}_consul_reachable`, help: 'Consul answered the last query (1) or not (0).', type: 'gauge', samples: one(consul.reachable === undefined ? undefined : consul.reachable ? 1 : 0) });
      f.push({ name: `${p}_consul_queries_total`, help: 'Consul blocking queries sent.', type: 'counter', samples: one(consul.queries) });
      f.push({ name: `${p}_consul_errors_total`, help: 'Consul queries that failed.', type: 'counter', samples: one(consul.errors) });
      f.push({ name: `${p}_consul_throttled_total`, help: 'Consul refused a connection (429 Too Many Requests, or closed it unanswered).', type: 'counter', samples: [{ labels: {}, value: consul.throttled ?? 0 }] });
      f.push({ name: `${p}_consul_signal_fallbacks_total`, help: 'Change signals the agent refused (a 400 to the filtered checks query) and discovery replaced by unfiltered ones.', type: 'counter', samples: one(consul.signalFallbacks) });
      f.push({ name: `${p}_consul_watchers`, help: 'Consul watch loops running (one per watched service plus the catalog).', type: 'gauge', samples: one(consul.services) });
    }

    const w = this.#sources.workers();
    f.push({ name: `${p}_mode_info`, help: 'Update mechanism (mode label), always 1.', type: 'gauge', samples: [{ labels: { mode: this.#sources.mode }, value: 1 }] });
    f.push({ name: `${p}_worker_generation`, help: 'Current worker generation.', type: 'gauge', samples: [{ labels: {}, value: w.generation }] });
    f.push({ name: `${p}_workers`, help: 'Worker processes by state.', type: 'gauge', samples: [{ labels: { state: 'alive' }, value: w.workersAlive }, { labels: { state: 'ready' }, value: w.workersReady }] });
    f.push({ name: `${p}_worker_restarts_total`, help: 'Workers restarted after dying unexpectedly.', type: 'counter', samples: [{ labels: {}, value: w.restarts }] });
    f.push({ name: `${p}_reloads_total`, help: 'Reload mode: new worker generations started.', type: 'counter', samples: [{ labels: {}, value: w.reloads }] });
    f.push({ name: `${p}_reload_last_duration_seconds`, help: 'Reload mode: fork to every worker of the new generation listening, last reload.', type: 'gauge', samples: [{ labels: {}, value: (w.lastReloadMs ?? 0) / 1000 }] });

    const dump = this.#sources.dump?.();
    if (dump !== undefined) {
      f.push({ name: `${p}_dump_writes_total`, help: 'Dump file writes.', type: 'counter', samples: [{ labels: {}, value: dump.writes }] });
      f.push({ name: `${p}_dump_write_failures_total`, help: 'Dump file writes that failed.', type: 'counter', samples: [{ labels: {}, value: dump.failures }] });
    }

    const scripts = [...this.store.scripts].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    f.push({ name: `${p}_script_calls_total`, help: 'Script runs, partitioned by script.', type: 'counter', samples: scripts.map(([script, s]) => ({ labels: { script }, value: s.calls })) });
    f.push({ name: `${p}_script_errors_total`, help: 'Script runs that threw or timed out, and requests refused because the script was not loaded, partitioned by script.', type: 'counter', samples: scripts.map(([script, s]) => ({ labels: { script }, value: s.errors })) });

    const certs = this.#certificates?.() ?? [];
    f.push({ name: `${p}_tls_certs_not_after`, help: 'Certificate expiration timestamp (seconds since epoch), partitioned by name.', type: 'gauge', samples: certs.map((c) => ({ labels: c.source === undefined ? { name: c.name } : { name: c.name, source: c.source } as Record<string, string>, value: Math.floor(c.notAfterMs / 1000) })) });

    const procs = [{ process: 'primary', gauges: this.#primaryGauges }, ...this.store.processGauges()];
    f.push({ name: `${p}_process_resident_memory_bytes`, help: 'Resident memory size in bytes, per process.', type: 'gauge', samples: procs.map((x) => ({ labels: { process: x.process }, value: x.gauges.rssBytes })) });
    f.push({ name: `${p}_process_heap_used_bytes`, help: 'V8 heap used in bytes, per process.', type: 'gauge', samples: procs.map((x) => ({ labels: { process: x.process }, value: x.gauges.heapUsedBytes })) });
    f.push({ name: `${p}_process_heap_total_bytes`, help: 'V8 heap size in bytes, per process.', type: 'gauge', samples: procs.map((x) => ({ labels: { process: x.process }, value: x.gauges.heapTotalBytes })) });
    const lag: Sample[] = [];
    for (const x of procs) {
      lag.push({ labels: { process: x.process, stat: 'mean' }, value: x.gauges.eventLoopLagMeanSeconds });
      lag.push({ labels: { process: x.process, stat: 'p99' }, value: x.gauges.eventLoopLagP99Seconds });
      lag.push({ labels: { process: x.process, stat: 'max' }, value: x.gauges.eventLoopLagMaxSeconds });
    }
    f.push({ name: `${p}_process_event_loop_lag_seconds`, help: 'Event-loop delay over the last second, per process (mean, p99, max).', type: 'gauge', samples: lag });
    f.push({ name: `${p}_metrics_worker_reports_total`, help: 'Metrics reports received from workers.', type: 'counter', samples: [{ labels: {}, value: this.store.reports }] });
    return f;
  }
}

function serverUrl(id: string): string {
  return id === OTHER ? id : `http://${id}`;
}
