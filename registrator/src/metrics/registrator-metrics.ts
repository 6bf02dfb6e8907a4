// The registrator's Prometheus figures (-metrics host:port, off by default): registrations,
// deregistrations, Consul errors by code (counted by a decorator around the Registry the bridge
// uses), resyncs and the last resync's duration (read from the bridge at scrape time), Docker event
// stream reconnects, and this process's memory and event-loop lag. Rendered with the balancer's
// exposition helpers (text 0.0.4, OpenMetrics when asked).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderFamilies, wantsOpenMetrics, type Family } from '../../../common/metrics/exposition.js';
import { ProcessSampler } from '../../../common/metrics/process-sampler.js';
import type { ServiceRecord } from '../mapping/types.js';
import type { RegisteredService } from '../reconcile.js';
import type { CheckStatus, Registry } from '../registry/registry.js';

/** What the bridge reports (Bridge.stats and Bridge.lastResyncStats). */
export interface BridgeFigures {
  readonly resyncs: number;
  readonly lastResyncMs?: number;
  readonly failingContainers?: number;
  /** registrations the agent refused for good (each counted once: a refused record is not retried) */
  readonly refusals?: number;
  readonly refusedServices?: number;
}

export class RegistratorMetrics {
  registrations = 0;
  deregistrations = 0;
  eventStreamConnects = 0;
  readonly consulErrors = new Map<string, number>();
  readonly #sampler = new ProcessSampler();
  #bridge: (() => BridgeFigures) | undefined;

  /** The bridge's figures, read at scrape time. */
  setBridgeSource(source: () => BridgeFigures): void {
    this.#bridge = source;
  }

  /** The Docker event stream connected (n = 1 at start; every later one is a reconnect). */
  eventStreamConnected(): void {
    this.eventStreamConnects++;
  }

  consulError(err: unknown): void {
    const code = (err as { code?: unknown } | null)?.code;
    const key = typeof code === 'string' ? code : 'UNKNOWN';
    if (key === 'ERR_REGISTRY_ABORTED') return; // our own shutdown, not Consul's fault
    this.consulErrors.set(key, (this.consulErrors.get(key) ?? 0) + 1);
  }

  /** The registry the bridge should use: the same calls, counted. */
  wrap(inner: Registry): Registry {
    return new CountingRegistry(inner, this);
  }

  families(): Family[] {
    const b = this.#bridge?.();
    const p = this.#sampler.sample();
    const one = (name: string, help: string, type: Family['type'], value: number): Family => ({ name, help, type, samples: [{ labels: {}, value }] });
    return [
      one('registrator_registrations_total', 'Services registered (or re-registered) in Consul.', 'counter', this.registrations),
      one('registrator_deregistrations_total', 'Services deregistered from Consul.', 'counter', this.deregistrations),
      one('registrator_resyncs_total', 'Full resyncs with Docker and Consul.', 'counter', b?.resyncs ?? 0),
      one('registrator_last_resync_duration_seconds', 'Duration of the last completed resync.', 'gauge', (b?.lastResyncMs ?? 0) / 1000),
      one('registrator_docker_event_stream_reconnects_total', 'Docker event stream reconnections (after the first connection).', 'counter', Math.max(0, this.eventStreamConnects - 1)),
      {
        name: 'registrator_consul_errors_total', help: 'Consul calls that failed, partitioned by error code.', type: 'counter',
        samples: [...this.consulErrors].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([code, value]) => ({ labels: { code }, value })),
      },
      one('registrator_failing_containers', 'Containers whose record Consul currently fails.', 'gauge', b?.failingContainers ?? 0),
      one('registrator_registrations_refused_total', 'Registrations the agent refused for good (script checks disabled, a validation 400); not retried until the record changes.', 'counter', b?.refusals ?? 0),
      one('registrator_refused_services', 'Services not registered because the agent refused their registration.', 'gauge', b?.refusedServices ?? 0),
      one('registrator_process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge', p.rssBytes),
      one('registrator_process_heap_used_bytes', 'V8 heap used in bytes.', 'gauge', p.heapUsedBytes),
      {
        name: 'registrator_process_event_loop_lag_seconds', help: 'Event-loop delay since the previous scrape (mean, p99, max).', type: 'gauge',
        samples: [{ labels: { stat: 'mean' }, value: p.eventLoopLagMeanSeconds }, { labels: { stat: 'p99' }, value: p.eventLoopLagP99Seconds }, { labels: { stat: 'max' }, value: p.eventLoopLagMaxSeconds }],
      },
    ];
  }

  render(accept: string | undefined): Promise<{ contentType: string; body: string }> {
    return renderFamilies(this.families(), wantsOpenMetrics(accept));
  }

  stop(): void {
    this.#sampler.stop();
  }
}

class CountingRegistry implements Registry {
  constructor(private readonly inner: Registry, private readonly m: RegistratorMetrics) {}

  async #counted<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      this.m.consulError(err);
      throw err;
    }
  }

  ping(signal: AbortSignal): Promise<void> {
    return this.#counted(() => this.inner.ping(signal));
  }

  async register(record: ServiceRecord, signal: AbortSignal): Promise<void> {
    await this.#counted(() => this.inner.register(record, signal));
    this.m.registrations++;
  }

  async deregister(serviceId: string, signal: AbortSignal): Promise<void> {
    await this.#counted(() => this.inner.deregister(serviceId, signal));
    this.m.deregistrations++;
  }

  listOurs(signal: AbortSignal): Promise<RegisteredService[]> {
    return this.#counted(() => this.inner.listOurs(signal));
  }

  updateTtlCheck(record: ServiceRecord, checkIndex: number, status: CheckStatus, output: string, signal: AbortSignal): Promise<void> {
    return this.#counted(() => this.inner.updateTtlCheck(record, checkIndex, status, output, signal));
  }

  setMaintenance(serviceId: string, enable: boolean, reason: string, signal: AbortSignal): Promise<void> {
    return this.#counted(() => this.inner.setMaintenance(serviceId, enable, reason, signal));
  }

  async heartbeat(signal: AbortSignal): Promise<void> {
    if (this.inner.heartbeat) await this.#counted(() => this.inner.heartbeat!(signal));
  }

  async withdraw(signal: AbortSignal): Promise<void> {
    if (this.inner.withdraw) await this.#counted(() => this.inner.withdraw!(signal));
  }

  close(): void {
    this.inner.close();
  }
}

/** GET /metrics on its own small listener; anything else is 404. */
export async function startMetricsServer(metrics: RegistratorMetrics, host: string, port: number): Promise<{ address: AddressInfo; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    metrics.render(req.headers.accept).then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
    );
  });
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
