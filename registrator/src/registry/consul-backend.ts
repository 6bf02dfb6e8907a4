// Registry adapter for the Consul agent API, through the `consul` npm client (v2, promise API).
// The client has no AbortSignal support; it cancels a request when its `ctx` emitter emits 'cancel',
// and enforces a per-call `timeout`: both are wired to every call here.
import { EventEmitter } from 'node:events';
import Consul from 'consul';
import { META_CONTAINER_KEY, META_INSTANCE_KEY as MAPPER_INSTANCE_KEY } from '../mapping/service-mapper.js';
import type { ServiceRecord } from '../mapping/types.js';
import type { RegisteredService } from '../reconcile.js';
import { fingerprintOf } from '../reconcile.js';
import { isFinalRegisterRefusal } from './agent-refusal.js';
import { consulCheckId, consulCheckOptions } from './consul-checks.js';
import { encodeKeySegment } from './kv-key.js';
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
  /** presence heartbeat period (ms); a presence record older than 3 periods names no live registrator */
  readonly presenceIntervalMs?: number;
  readonly now?: () => number;
}

/**
 * KV prefix of the presence records: registrator/instances/<engine ID>/<instance marker>, each segment
 * written with encodeKeySegment (kv-key.ts: an old engine's ID has colons, a host name may have anything),
 * so every Consul version takes the key. Records of earlier versions, under the raw segments, are still read.
 */
export const PRESENCE_PREFIX = 'registrator/instances/';
export const DEFAULT_PRESENCE_INTERVAL_MS = 10_000;
/** a presence record is stale (its registrator is gone) after this many heartbeat periods */
const PRESENCE_STALE_PERIODS = 3;

interface PresenceRecord {
  readonly marker: string;
  readonly engine: string;
  readonly heartbeatAt: number;
  readonly intervalMs: number;
}

interface ConsulLike {
  agent: {
    service: {
      register(o: unknown): Promise<unknown>;
      deregister(o: unknown): Promise<unknown>;
      list(o: unknown): Promise<Record<string, { ID: string; Service: string; Meta?: Record<string, string> | null }>>;
      maintenance(o: unknown): Promise<unknown>;
    };
    check: { pass(o: unknown): Promise<unknown>; warn(o: unknown): Promise<unknown>; fail(o: unknown): Promise<unknown> };
  };
  kv: {
    get(o: unknown): Promise<unknown>;
    set(o: unknown): Promise<unknown>;
    del(o: unknown): Promise<unknown>;
  };
  status: { leader(o: unknown): Promise<unknown> };
  /** papi's request hook (the client has no option for the query parameter below) */
  _ext(event: 'onCreate', fn: (request: { opts: { name?: string; query?: Record<string, string> } }, next: () => void) => void): void;
  destroy(): void;
}

/**
 * Every registration replaces the service's checks (agent_endpoint.go AgentRegisterService: the
 * parameter given empty or "true"): without it the agent keeps checks the new definition no longer has,
 * so a re-registration that drops or renumbers a check (service:<id> -> service:<id>:1) would leave the
 * old one behind, and a leftover TTL check expires and holds the instance critical for good.
 */
function replaceExistingChecks(client: ConsulLike): void {
  client._ext('onCreate', (request, next) => {
    if (request.opts.name === 'agent.service.register') request.opts.query = { ...request.opts.query, 'replace-existing-checks': 'true' };
    next();
  });
}

export class ConsulRegistry implements Registry {
  private readonly client: ConsulLike;
  private readonly marker: string;
  private readonly engineId: string | undefined;
  private readonly adoptSameEngine: boolean;
  private readonly timeoutMs: number;
  private readonly presenceIntervalMs: number;
  private readonly now: () => number;

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
    replaceExistingChecks(this.client);
    this.marker = opts.instanceMarker;
    this.engineId = opts.engineId;
    this.adoptSameEngine = opts.adoptSameEngine ?? false;
    this.timeoutMs = opts.callTimeoutMs;
    this.presenceIntervalMs = opts.presenceIntervalMs ?? DEFAULT_PRESENCE_INTERVAL_MS;
    this.now = opts.now ?? Date.now;
  }

  private presenceKey(): string | undefined {
    return this.engineId ? `${this.presencePrefix()}${encodeKeySegment(this.marker)}` : undefined;
  }

  private presencePrefix(): string {
    return `${PRESENCE_PREFIX}${encodeKeySegment(this.engineId ?? '')}/`;
  }

  /** where a registrator before the key encoding wrote its record, when that differs */
  private legacyPresence(): { prefix: string; key: string } | undefined {
    if (!this.engineId) return undefined;
    const prefix = `${PRESENCE_PREFIX}${this.engineId}/`;
    const key = `${prefix}${this.marker}`;
    return key === this.presenceKey() ? undefined : { prefix, key };
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

  /**
   * Ours: our instance marker. With -cleanup, also records of the same Docker engine whose marker names no
   * live registrator (a host rename, or a registrator that is gone): they are adopted, so leftovers are
   * removed and live ones move to our IDs. A marker is live when its presence record (KV
   * registrator/instances/<engine>/<marker>, refreshed every heartbeat period by every registrator) is
   * younger than three periods. When presence cannot be read, nothing is adopted by engine ID: two live
   * registrators on one engine must never remove each other's services.
   */
  async listOurs(signal: AbortSignal): Promise<RegisteredService[]> {
    const all = await this.call('agent.services', signal, (o) => this.client.agent.service.list(o));
    const adoptable = this.adoptSameEngine && this.engineId !== undefined;
    const live = adoptable ? await this.liveMarkers(signal) : undefined;
    const ours: RegisteredService[] = [];
    for (const svc of Object.values(all ?? {})) {
      const meta = svc.Meta ?? {};
      const marker = meta[META_INSTANCE_KEY];
      const isOurs = marker === this.marker
        || (live !== undefined && meta[META_ENGINE_KEY] === this.engineId && !live.has(marker ?? ''));
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

  /** Markers of the registrators alive on our engine (undefined: presence unreadable, adopt nothing). */
  private async liveMarkers(signal: AbortSignal): Promise<Set<string> | undefined> {
    const read = (prefix: string) => this.call('kv.get', signal, (o) => this.client.kv.get({ key: prefix, recurse: true, ...o }));
    let entries: unknown[];
    try {
      const current = await read(this.presencePrefix());
      entries = Array.isArray(current) ? current : [];
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_ABORTED') throw err;
      return undefined;
    }
    const legacy = this.legacyPresence();
    if (legacy && legacy.prefix !== this.presencePrefix()) {
      try {
        const old = await read(legacy.prefix);
        if (Array.isArray(old)) entries.push(...old);
      } catch (err) {
        if (err instanceof RegistryError && err.code === 'ERR_REGISTRY_ABORTED') throw err;
        // an agent that refuses such keys (400) holds none; any other failure: presence unknown
        if (!(err instanceof RegistryError && err.code === 'ERR_REGISTRY_REJECTED')) return undefined;
      }
    }
    const live = new Set<string>([this.marker]);
    const now = this.now();
    for (const e of entries) {
      const p = parsePresence((e as { Value?: unknown }).Value);
      if (p && p.engine === this.engineId && now - p.heartbeatAt < PRESENCE_STALE_PERIODS * p.intervalMs) live.add(p.marker);
    }
    return live;
  }

  async heartbeat(signal: AbortSignal): Promise<void> {
    const key = this.presenceKey();
    if (!key) return;
    const value: PresenceRecord = { marker: this.marker, engine: this.engineId!, heartbeatAt: this.now(), intervalMs: this.presenceIntervalMs };
    await this.call('kv.set', signal, (o) => this.client.kv.set({ key, value: JSON.stringify(value), ...o }));
  }

  async withdraw(signal: AbortSignal): Promise<void> {
    const key = this.presenceKey();
    if (!key) return;
    await this.call('kv.del', signal, (o) => this.client.kv.del({ key, ...o }));
    // the record an earlier version of this registrator left under the raw key, if any (best effort)
    const legacy = this.legacyPresence();
    if (legacy) await this.call('kv.del', signal, (o) => this.client.kv.del({ key: legacy.key, ...o })).catch(() => undefined);
  }

  async setMaintenance(serviceId: string, enable: boolean, reason: string, signal: AbortSignal): Promise<void> {
    await this.call('agent.service.maintenance', signal, (o) => this.client.agent.service.maintenance({ id: serviceId, enable, reason, ...o }));
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
      // Consul's reason is the body; the client keeps it as the message only when short (< 80 bytes).
      const agentMessage = answerText((err as { response?: { body?: unknown } }).response?.body);
      const detail = agentMessage ?? (err as Error).message ?? String(err);
      // the client's own validation (no request sent) is as final as a 4xx: retrying cannot help
      if ((err as { isValidation?: boolean }).isValidation === true) {
        throw new RegistryError('ERR_REGISTRY_REJECTED', `${what}: ${detail}`, { cause: err });
      }
      if (status !== undefined) {
        // The agent answered. 429 (over its connection limit) and 403 (ACL, often a token not yet
        // replicated) pass; 5xx is that request's failure. None of them is an outage.
        if (what === 'agent.service.register' && agentMessage !== undefined && isFinalRegisterRefusal(status, agentMessage)) {
          throw new RegistryError('ERR_REGISTRY_REJECTED', `${what}: ${status} ${detail}`, { status, cause: err, agentMessage });
        }
        if (status === 429 || status === 403 || status >= 500) {
          throw new RegistryError('ERR_REGISTRY_RECORD_FAILED', `${what}: ${status} ${detail}`, { status, cause: err, overBudget: status === 429, agentMessage });
        }
        if (status >= 400) throw new RegistryError('ERR_REGISTRY_REJECTED', `${what}: ${status} ${detail}`, { status, cause: err, agentMessage });
      }
      // A connection closed with no answer is what an agent over its limit may do too.
      const code = (err as { code?: string }).code;
      const bareClose = code === 'ECONNRESET' || /socket hang up/i.test(detail);
      throw new RegistryError('ERR_REGISTRY_UNAVAILABLE', `${what}: ${detail}`, { status, cause: err, overBudget: bareClose });
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }
}

/** The agent's answer body as one line of text (bounded), undefined when there is none. */
function answerText(body: unknown): string | undefined {
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : typeof body === 'string' ? body : body !== undefined && body !== null ? JSON.stringify(body) : '';
  const line = text.replace(/\s+/g, ' ').trim();
  if (line === '') return undefined;
  return line.length > 500 ? `${line.slice(0, 497)}...` : line;
}

function parsePresence(value: unknown): PresenceRecord | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const p = JSON.parse(value) as Partial<PresenceRecord>;
    if (typeof p.marker !== 'string' || typeof p.engine !== 'string' || typeof p.heartbeatAt !== 'number' || typeof p.intervalMs !== 'number') return undefined;
    if (!Number.isFinite(p.heartbeatAt) || !(p.intervalMs > 0)) return undefined;
    return p as PresenceRecord;
  } catch {
    return undefined;
  }
}
