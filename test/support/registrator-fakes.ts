// In-memory stand-ins for the registrator's edges: a Docker engine (inspect/list) and a Registry with
// per-record fault injection, for bridge tests that need no engine or agent.
import type Docker from 'dockerode';
import { fingerprintOf, type RegisteredService } from '../../registrator/src/reconcile.js';
import type { ServiceRecord } from '../../registrator/src/mapping/types.js';
import { RegistryError, type Registry } from '../../registrator/src/registry/registry.js';
import { until as pollUntil } from './poll.js';

export interface FakeContainer {
  running: boolean;
  exitCode?: number;
  env: string[];
  stopSignal?: string;
  /** exposed (and published) ports; default ['80'] */
  ports?: string[];
}

export function fakeInspect(id: string, c: FakeContainer) {
  const ports = c.ports ?? ['80'];
  return {
    Id: id,
    Name: `/${id}`,
    Config: { Image: 'web', Env: c.env, Labels: {}, ExposedPorts: Object.fromEntries(ports.map((p) => [`${p}/tcp`, {}])), Hostname: id, ...(c.stopSignal ? { StopSignal: c.stopSignal } : {}) },
    NetworkSettings: { Ports: Object.fromEntries(ports.map((p, i) => [`${p}/tcp`, [{ HostIp: '127.0.0.1', HostPort: String(32000 + i) }]])), Networks: { bridge: { IPAddress: '172.17.0.2' } } },
    HostConfig: { NetworkMode: 'default' },
    State: { Running: c.running, Paused: false, ExitCode: c.exitCode ?? 0 },
  };
}

export class FakeDocker {
  readonly containers = new Map<string, FakeContainer>();
  inspects = 0;
  lists = 0;
  /** pause of every inspect (ms) */
  inspectDelayMs = 0;
  /** while set, every inspect waits for it (a busy engine, a sync caught mid-way) */
  inspectGate: Promise<void> | undefined;

  asDocker(): Docker {
    return {
      getContainer: (id: string) => ({
        inspect: async () => {
          this.inspects += 1;
          if (this.inspectDelayMs > 0) await new Promise((r) => setTimeout(r, this.inspectDelayMs));
          if (this.inspectGate) await this.inspectGate;
          const c = this.containers.get(id);
          if (!c) throw Object.assign(new Error('no such container'), { statusCode: 404 });
          return fakeInspect(id, c);
        },
      }),
      listContainers: async () => {
        this.lists += 1;
        return [...this.containers.entries()].filter(([, c]) => c.running).map(([Id]) => ({ Id }));
      },
    } as unknown as Docker;
  }
}

/** A failure the fake registry answers for one service ID: an HTTP status the agent sent. */
export type InjectedFailure = { status: number };

export class FakeRegistry implements Registry {
  readonly services = new Map<string, ServiceRecord>();
  readonly maintenance = new Map<string, string>();
  readonly calls: string[] = [];
  /** service ID -> failure answered to its register/deregister */
  readonly failures = new Map<string, InjectedFailure>();
  down = false;
  inFlight = 0;
  maxInFlight = 0;
  /** pause of every call (ms) */
  delayMs = 0;

  private async guard(what: string, serviceId?: string): Promise<void> {
    this.calls.push(what);
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    } finally {
      this.inFlight -= 1;
    }
    if (this.down) throw new RegistryError('ERR_REGISTRY_UNAVAILABLE', `${what}: ECONNREFUSED`);
    const f = serviceId ? this.failures.get(serviceId) : undefined;
    if (f) {
      const transient = f.status === 429 || f.status === 403 || f.status >= 500;
      throw new RegistryError(transient ? 'ERR_REGISTRY_RECORD_FAILED' : 'ERR_REGISTRY_REJECTED', `${what}: ${f.status}`, { status: f.status, overBudget: f.status === 429 });
    }
  }

  async ping() { await this.guard('ping'); }
  async register(r: ServiceRecord) { await this.guard(`register ${r.id}`, r.id); this.services.set(r.id, r); }
  async deregister(id: string) { await this.guard(`deregister ${id}`, id); this.services.delete(id); this.maintenance.delete(id); }
  async listOurs(): Promise<RegisteredService[]> {
    await this.guard('list');
    return [...this.services.values()].map((r) => ({ id: r.id, name: r.name, containerId: r.containerId, fingerprint: fingerprintOf(r) }));
  }
  async updateTtlCheck() { await this.guard('ttl'); }
  async setMaintenance(id: string, enable: boolean, reason: string) {
    await this.guard(`maintenance ${id} ${enable}`);
    if (!this.services.has(id)) throw new RegistryError('ERR_REGISTRY_REJECTED', 'maintenance: 404', { status: 404 });
    if (enable) this.maintenance.set(id, reason);
    else this.maintenance.delete(id);
  }
  close() {}
}

/** Polls cond until true, every 5 ms, at most timeoutMs (poll.ts). */
export async function until(what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  await pollUntil(what, cond, timeoutMs, 5);
}
