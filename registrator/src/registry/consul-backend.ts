// Registry adapter for the Consul agent API, through the `consul` npm client (v2, promise API).
// The client has no AbortSignal support; it cancels a request when its `ctx` emitter emits 'cancel',
// and enforces a per-call `timeout`: both are wired to every call here.
import { EventEmitter } from 'node:events';
import Consul from 'consul';
import { META_CONTAINER_KEY, META_INSTANCE_KEY as MAPPER_INSTANCE_KEY } from '../mapping/service-mapper.js';
import type { ServiceRecord } from '../mapping/types.js';
import type { RegisteredService } from '../reconcile.js';
import { fingerprintOf } from '../reconcile.js';
import { consulCheckId, consulCheckOptions } from './consul-checks.js';
import { RegistryError, type CheckStatus, type Registry } from './registry.js';

/** Meta keys this adapter adds to every registration (beside the mapper's "registrator-instance"). */
export const META_FINGERPRINT_KEY = 'registrator-fingerprint';
/** the mapper's keys: Meta["container-id"] and Meta["registrator-instance"] */
export const META_CONTAINER_ID_KEY = META_CONTAINER_KEY;
export const META_INSTANCE_KEY = MAPPER_INSTANCE_KEY;
/** the Docker engine ID: stable across host renames, so -cleanup still finds our leftovers */
export const META_ENGINE_KEY = 'registrator-engine';

export interface ConsulBackendOptions {
  readonly host?: string;
  readonly port?: number;
  readonly socketPath?: string;
  readonly secure: boolean;
  readonly token?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly tlsSkipVerify?: boolean;
  /** Meta["registrator-instance"] value that marks our registrations */
  readonly instanceMarker: string;
  /** the watched Docker engine's ID (docker info .ID), when known */
  readonly engineId?: string;
  /**
   * -cleanup: also count registrations of the same Docker engine under another instance marker as ours
   * (a host rename), so their leftovers are removed and live ones move to the new service IDs.
   */
  readonly adoptSameEngine?: boolean;
  /** per-call timeout (ms) */
  readonly callTimeoutMs: number;
}

interface ConsulLike {
  agent: {
    service: {
      register(o: unknown): Promise<unknown>;
      deregister(o: unknown): Promise<unknown>;
      list(o: unknown): Promise<Record<string, { ID: string; Service: string; Meta?: Record<string, string> | null }>>;
    };
    check: { pass(o: unknown): Promise<unknown>; warn(o: unknown): Promise<unknown>; fail(o: unknown): Promise<unknown> };
  };
  status: { leader(o: unknown): Promise<unknown> };
  destroy(): void;
}

export class ConsulRegistry implements Registry {
  private readonly client: ConsulLike;
  private readonly marker: string;
  private readonly engineId: string | undefined;
  private readonly adoptSameEngine: boolean;
  private readonly timeoutMs: number;

  constructor(opts: ConsulBackendOptions) {
    const clientOpts: Record<string, unknown> = {
      secure: opts.secure,
      defaults: opts.token ? { token: opts.token } : undefined,
    };
    if (opts.socketPath) {
      clientOpts.socketPath = opts.socketPath;
      clientOpts.baseUrl = `${opts.secure ? 'https' : 'http'}://consul/v1`;
    } else {
      clientOpts.host = opts.host ?? '127.0.0.1';
      clientOpts.port = opts.port ?? 8500;
    }
    if (opts.ca) clientOpts.ca = opts.ca;
    if (opts.cert) clientOpts.cert = opts.cert;
    if (opts.key) clientOpts.key = opts.key;
    if (opts.tlsSkipVerify) clientOpts.rejectUnauthorized = false;
    if (!clientOpts.defaults) delete clientOpts.defaults;
    const ConsulClass = (Consul as unknown as { Consul?: new (o: unknown) => ConsulLike }).Consul ?? (Consul as unknown as new (o: unknown) => ConsulLike);
    this.client = new ConsulClass(clientOpts);
    this.marker = opts.instanceMarker;
    this.engineId = opts.engineId;
    this.adoptSameEngine = opts.adoptSameEngine ?? false;
    this.timeoutMs = opts.callTimeoutMs;
  }

  async ping(signal: AbortSignal): Promise<void> {
    await this.call('status.leader', signal, (o) => this.client.status.leader(o));
  }

  async register(record: ServiceRecord, signal: AbortSignal): Promise<void> {
    const checks = record.checks.map((c, i) => consulCheckOptions(record, c, i));
    const body: Record<string, unknown> = {
      id: record.id,
      name: record.name,
      address: record.address,
      port: record.port,
      tags: [...record.tags],
      meta: {
        ...record.meta,
        [META_INSTANCE_KEY]: record.meta[META_INSTANCE_KEY] ?? this.marker,
        [META_CONTAINER_ID_KEY]: record.containerId,
        [META_FINGERPRINT_KEY]: fingerprintOf(record),
        ...(this.engineId ? { [META_ENGINE_KEY]: this.engineId } : {}),
      },
    };
    if (checks.length > 0) body.checks = checks;
    await this.call('agent.service.register', signal, (o) => this.client.agent.service.register({ ...body, ...o }));
  }

  async deregister(serviceId: string, signal: AbortSignal): Promise<void> {
    await this.call('agent.service.deregister', signal, (o) => this.client.agent.service.deregister({ id: serviceId, ...o }));
  }

  async listOurs(signal: AbortSignal): Promise<RegisteredService[]> {
    const all = await this.call('agent.services', signal, (o) => this.client.agent.service.list(o));
    const ours: RegisteredService[] = [];
    for (const svc of Object.values(all ?? {})) {
      const meta = svc.Meta ?? {};
      // Ours: our marker, or (after a host rename) registered by a registrator watching the same engine.
      const isOurs = meta[META_INSTANCE_KEY] === this.marker
        || (this.adoptSameEngine && this.engineId !== undefined && meta[META_ENGINE_KEY] === this.engineId);
      if (!isOurs) continue;
      ours.push({
        id: svc.ID,
        name: svc.Service,
        containerId: meta[META_CONTAINER_ID_KEY] ?? '',
        fingerprint: meta[META_FINGERPRINT_KEY] ?? '',
      });
    }
    return ours;
  }

  async updateTtlCheck(record: ServiceRecord, checkIndex: number, status: CheckStatus, output: string, signal: AbortSignal): Promise<void> {
    const id = consulCheckId(record.id, checkIndex, record.checks.length);
    const check = this.client.agent.check;
    const op = status === 'passing' ? check.pass : status === 'warning' ? check.warn : check.fail;
    await this.call(`agent.check.${status}`, signal, (o) => op.call(check, { id, note: output, ...o }));
  }

  close(): void {
    this.client.destroy();
  }

  /** Runs one client call with our timeout and the caller's signal; maps failures to RegistryError codes. */
  private async call<T>(what: string, signal: AbortSignal, fn: (o: { timeout: number; ctx: EventEmitter }) => Promise<T>): Promise<T> {
    if (signal.aborted) throw new RegistryError('ERR_REGISTRY_ABORTED', `${what}: aborted`);
    const ctx = new EventEmitter();
    const cancel = () => ctx.emit('cancel');
    signal.addEventListener('abort', cancel, { once: true });
    try {
      return await fn({ timeout: this.timeoutMs, ctx });
    } catch (err) {
      if (signal.aborted) throw new RegistryError('ERR_REGISTRY_ABORTED', `${what}: aborted`, { cause: err });
      const status = (err as { response?: { statusCode?: number } }).response?.statusCode;
      const detail = (err as Error).message ?? String(err);
      // the client's own validation (no request sent) is as final as a 4xx: retrying cannot help
      if ((err as { isValidation?: boolean }).isValidation === true) {
        throw new RegistryError('ERR_REGISTRY_REJECTED', `${what}: ${detail}`, { cause: err });
      }
      if (status !== undefined && status >= 400 && status < 500) {
        throw new RegistryError('ERR_REGISTRY_REJECTED', `${what}: ${status} ${detail}`, { status, cause: err });
      }
      throw new RegistryError('ERR_REGISTRY_UNAVAILABLE', `${what}: ${detail}`, { status, cause: err });
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }
}
