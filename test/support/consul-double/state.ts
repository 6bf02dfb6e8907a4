// The double's single-node state store: one raft-like index, per-table tombstone indexes, and a
// change signal that wakes blocking queries. Synchronous and free of I/O; timers live in check-runner.ts.
import { EventEmitter } from 'node:events';
import type { CheckDef, CheckStatus, Registration, ServiceDef } from './registration.js';

export interface ServiceEntry {
  readonly def: ServiceDef;
  readonly createIndex: number;
  modifyIndex: number;
}

export interface CheckEntry {
  readonly def: CheckDef;
  /** node-level checks (serfHealth) have no service */
  serviceName: string;
  serviceTags: readonly string[];
  status: CheckStatus;
  output: string;
  readonly createIndex: number;
  modifyIndex: number;
  /** wall-clock ms since the check has been critical (for DeregisterCriticalServiceAfter), else undefined */
  criticalSince?: number;
}

export interface KvEntry {
  readonly key: string;
  value: Buffer | null;
  flags: number;
  readonly createIndex: number;
  modifyIndex: number;
}

export interface NodeInfo {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly datacenter: string;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

/** Check IDs of the node itself, present in every health answer like a real agent's serfHealth. */
export const SERF_CHECK_ID = 'serfHealth';

export class ConsulState {
  /** last raft index handed out; starts above 0 because Consul never answers index 0 */
  private raftIndex = 1;
  readonly node: NodeInfo;
  readonly services = new Map<string, ServiceEntry>();
  /** read-only for others: writes go through putCheck/deleteCheck, which keep checkIdsByService in step */
  readonly checks = new Map<string, CheckEntry>();
  private readonly checkIdsByService = new Map<string, Set<string>>();
  /** service name -> IDs of its instances, so per-service reads cost that service, not the catalog */
  private readonly idsByName = new Map<string, Set<string>>();
  /** table-wide indexes, recomputed at most once per raft index */
  private memoAt = -1;
  private memo = new Map<string, number>();
  readonly kv = new Map<string, KvEntry>();
  /** per service name: last index at which an instance was deregistered (Consul's tombstone) */
  private readonly serviceTombstones = new Map<string, number>();
  private servicesTableTombstone = 1;
  /** per service name: last index at which one of its checks was deleted without the service going */
  private readonly serviceCheckTombstones = new Map<string, number>();
  private checksTableTombstone = 1;
  private readonly kvTombstones = new Map<string, number>();
  private kvTableIndex = 1;
  /** 'change' is emitted after every write; blocking queries re-evaluate their index on it */
  readonly changes = new EventEmitter();

  constructor(opts: { nodeName: string; nodeAddress: string; datacenter: string; nodeId: string }, private readonly now: () => number = Date.now) {
    this.changes.setMaxListeners(0);
    this.node = { id: opts.nodeId, name: opts.nodeName, address: opts.nodeAddress, datacenter: opts.datacenter, createIndex: 1, modifyIndex: 1 };
    // The consul server registers itself in the catalog, and the node carries its serf check.
    const consulIdx = this.nextIndex();
    this.idsByName.set('consul', new Set(['consul']));
    this.services.set('consul', {
      def: { id: 'consul', name: 'consul', tags: [], address: '', port: 8300, meta: { raft_version: '3', serf_protocol_current: '2', serf_protocol_max: '5', serf_protocol_min: '1', version: '1.17.0' }, weights: { Passing: 1, Warning: 1 }, enableTagOverride: false, taggedAddresses: {} },
      createIndex: consulIdx,
      modifyIndex: consulIdx,
    });
    this.putCheck({
      def: { checkId: SERF_CHECK_ID, name: 'Serf Health Status', notes: '', serviceId: '', type: '', initialStatus: 'passing', tlsSkipVerify: false, raw: {} },
      serviceName: '', serviceTags: [], status: 'passing', output: 'Agent alive and reachable', createIndex: consulIdx, modifyIndex: consulIdx,
    });
  }

  private nextIndex(): number {
    this.raftIndex += 1;
    return this.raftIndex;
  }

  private changed(): void {
    this.changes.emit('change');
  }

  private unindexName(name: string, id: string): void {
    const ids = this.idsByName.get(name);
    ids?.delete(id);
    if (ids && ids.size === 0) this.idsByName.delete(name);
  }

  /** Instances of one service name, by ID. */
  instancesNamed(name: string): ServiceEntry[] {
    const ids = this.idsByName.get(name);
    if (!ids) return [];
    return [...ids].sort().map((id) => this.services.get(id)!).filter(Boolean);
  }

  private memoized(key: string, compute: () => number): number {
    if (this.memoAt !== this.raftIndex) {
      this.memoAt = this.raftIndex;
      this.memo = new Map();
    }
    let v = this.memo.get(key);
    if (v === undefined) {
      v = compute();
      this.memo.set(key, v);
    }
    return v;
  }

  /** Services registered through the agent API (the built-in "consul" service is catalog-only). */
  agentServices(): ServiceEntry[] {
    return [...this.services.values()].filter((s) => s.def.id !== 'consul');
  }

  checksOfService(serviceId: string): CheckEntry[] {
    const ids = this.checkIdsByService.get(serviceId);
    if (!ids) return [];
    return [...ids].sort().map((id) => this.checks.get(id)!).filter(Boolean);
  }

  private putCheck(entry: CheckEntry): void {
    const previous = this.checks.get(entry.def.checkId);
    if (previous) this.checkIdsByService.get(previous.def.serviceId)?.delete(entry.def.checkId);
    this.checks.set(entry.def.checkId, entry);
    const ids = this.checkIdsByService.get(entry.def.serviceId) ?? new Set<string>();
    ids.add(entry.def.checkId);
    this.checkIdsByService.set(entry.def.serviceId, ids);
  }

  private deleteCheck(checkId: string): void {
    const previous = this.checks.get(checkId);
    if (!previous) return;
    this.checks.delete(checkId);
    const ids = this.checkIdsByService.get(previous.def.serviceId);
    ids?.delete(checkId);
    if (ids && ids.size === 0) this.checkIdsByService.delete(previous.def.serviceId);
  }

  nodeChecks(): CheckEntry[] {
    return this.checksOfService('');
  }

  /**
   * Register or replace a service and its checks. Like Consul's state store, an identical service or
   * check is not rewritten, so a periodic re-registration (registrator's resync) moves no index.
   * A re-registered check keeps its current status unless the definition gives one.
   */
  register(reg: Registration, replaceExistingChecks: boolean): void {
    let idx: number | undefined;
    const write = () => (idx ??= this.nextIndex());
    const previous = this.services.get(reg.service.id);
    const serviceChanged = !previous || !sameJson(previous.def, reg.service);
    if (serviceChanged) {
      const at = write();
      if (previous && previous.def.name !== reg.service.name) this.serviceTombstones.set(previous.def.name, at);
      if (previous) this.unindexName(previous.def.name, previous.def.id);
      this.services.set(reg.service.id, { def: reg.service, createIndex: previous?.createIndex ?? at, modifyIndex: at });
      const ids = this.idsByName.get(reg.service.name) ?? new Set<string>();
      ids.add(reg.service.id);
      this.idsByName.set(reg.service.name, ids);
    }
    // ?replace-existing-checks drops checks missing from the new definition; otherwise they stay.
    if (replaceExistingChecks) {
      const keep = new Set(reg.checks.map((c) => c.checkId));
      for (const old of this.checksOfService(reg.service.id)) {
        if (keep.has(old.def.checkId)) continue;
        this.deleteCheck(old.def.checkId);
        this.checksTableTombstone = write();
        this.serviceCheckTombstones.set(reg.service.name, this.checksTableTombstone);
      }
    }
    for (const def of reg.checks) {
      const old = this.checks.get(def.checkId);
      if (old && !serviceChanged && sameJson(old.def, def)) continue;
      const at = write();
      const status: CheckStatus = old && !hasStatus(def.raw) ? old.status : def.initialStatus;
      this.putCheck({
        def,
        serviceName: reg.service.name,
        serviceTags: reg.service.tags,
        status,
        output: old && status === old.status ? old.output : '',
        createIndex: old?.createIndex ?? at,
        modifyIndex: at,
        criticalSince: status === 'critical' ? (old?.status === 'critical' ? old.criticalSince : this.now()) : undefined,
      });
    }
    // Checks kept from an earlier definition follow the service's new name and tags.
    if (serviceChanged) {
      for (const c of this.checksOfService(reg.service.id)) {
        if (c.serviceName === reg.service.name && sameJson(c.serviceTags, reg.service.tags)) continue;
        c.serviceName = reg.service.name;
        c.serviceTags = reg.service.tags;
        c.modifyIndex = write();
      }
    }
    if (idx !== undefined) this.changed();
  }

  deregister(serviceId: string): boolean {
    const svc = this.services.get(serviceId);
    if (!svc || serviceId === 'consul') return false;
    const idx = this.nextIndex();
    this.services.delete(serviceId);
    this.unindexName(svc.def.name, serviceId);
    for (const c of this.checksOfService(serviceId)) this.deleteCheck(c.def.checkId);
    this.serviceTombstones.set(svc.def.name, idx);
    this.servicesTableTombstone = idx;
    this.checksTableTombstone = idx;
    this.changed();
    return true;
  }

  /** Write a check result; a write (and an index move) happens only when status or output changed. */
  updateCheck(checkId: string, status: CheckStatus, output: string): boolean {
    const c = this.checks.get(checkId);
    if (!c) return false;
    if (c.status === status && c.output === output) return true;
    if (status === 'critical' && c.status !== 'critical') c.criticalSince = this.now();
    if (status !== 'critical') c.criticalSince = undefined;
    c.status = status;
    c.output = output;
    c.modifyIndex = this.nextIndex();
    this.changed();
    return true;
  }

  /**
   * Maintenance mode as Consul's agent does it: a critical check `_service_maintenance:<id>` (service)
   * or `_node_maintenance` (node), removed when disabled. False when the service is unknown.
   */
  setMaintenance(serviceId: string | undefined, enable: boolean, reason: string): boolean {
    const svc = serviceId === undefined ? undefined : this.services.get(serviceId);
    if (serviceId !== undefined && (!svc || serviceId === 'consul')) return false;
    const checkId = serviceId === undefined ? '_node_maintenance' : `_service_maintenance:${serviceId}`;
    const existing = this.checks.get(checkId);
    if (!enable) {
      if (!existing) return true;
      const idx = this.nextIndex();
      this.deleteCheck(checkId);
      this.checksTableTombstone = idx;
      if (svc) this.serviceCheckTombstones.set(svc.def.name, idx);
      this.changed();
      return true;
    }
    if (existing) return true;
    const idx = this.nextIndex();
    this.putCheck({
      def: {
        checkId, name: serviceId === undefined ? 'Node Maintenance Mode' : 'Service Maintenance Mode',
        notes: reason || `Maintenance mode is enabled for this ${serviceId === undefined ? 'node' : 'service'}, but no reason was provided. This is a default message.`,
        serviceId: serviceId ?? '', type: 'maintenance', initialStatus: 'critical', tlsSkipVerify: false, raw: {},
      },
      serviceName: svc?.def.name ?? '', serviceTags: svc?.def.tags ?? [], status: 'critical', output: '',
      createIndex: idx, modifyIndex: idx, criticalSince: this.now(),
    });
    this.changed();
    return true;
  }

  // ---- KV ----

  kvPut(key: string, value: Buffer, flags: number, cas: number | undefined): boolean {
    const existing = this.kv.get(key);
    if (cas !== undefined) {
      if (cas === 0 && existing) return false;
      if (cas !== 0 && (!existing || existing.modifyIndex !== cas)) return false;
    }
    const idx = this.nextIndex();
    this.kv.set(key, { key, value, flags, createIndex: existing?.createIndex ?? idx, modifyIndex: idx });
    this.kvTableIndex = idx;
    this.changed();
    return true;
  }

  kvDelete(key: string, recurse: boolean, cas: number | undefined): boolean {
    if (cas !== undefined && !recurse) {
      const existing = this.kv.get(key);
      if (!existing) return cas === 0 ? true : false;
      if (existing.modifyIndex !== cas) return false;
    }
    const doomed = recurse ? [...this.kv.keys()].filter((k) => k.startsWith(key)) : this.kv.has(key) ? [key] : [];
    if (doomed.length === 0) return true;
    const idx = this.nextIndex();
    for (const k of doomed) {
      this.kv.delete(k);
      this.kvTombstones.set(k, idx);
    }
    this.kvTableIndex = idx;
    this.changed();
    return true;
  }

  kvList(prefix: string): KvEntry[] {
    return [...this.kv.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  // ---- indexes each endpoint answers with (never below 1) ----

  indexForServiceName(name: string, includeChecks: boolean): number {
    let max = this.serviceTombstones.get(name) ?? 0;
    for (const s of this.instancesNamed(name)) {
      max = Math.max(max, s.modifyIndex);
      if (includeChecks) for (const c of this.checksOfService(s.def.id)) max = Math.max(max, c.modifyIndex);
    }
    if (includeChecks) {
      for (const c of this.nodeChecks()) max = Math.max(max, c.modifyIndex);
      // a deleted check of this service (maintenance off) leaves only the table tombstone behind
      if (this.idsByName.has(name)) max = Math.max(max, this.serviceCheckTombstones.get(name) ?? 0);
    }
    // Consul falls back to the table index for a name it has never seen
    return max > 0 ? max : this.indexForCatalogServices();
  }

  indexForCatalogServices(): number {
    return this.memoized('services', () => {
      let max = this.servicesTableTombstone;
      for (const s of this.services.values()) max = Math.max(max, s.modifyIndex);
      return max;
    });
  }

  indexForChecks(): number {
    return this.memoized('checks', () => {
      let max = this.checksTableTombstone;
      for (const c of this.checks.values()) max = Math.max(max, c.modifyIndex);
      return max;
    });
  }

  indexForNodes(): number {
    return Math.max(1, this.node.modifyIndex);
  }

  indexForKvKey(key: string): number {
    const e = this.kv.get(key);
    return e ? e.modifyIndex : Math.max(1, this.kvTableIndex);
  }

  indexForKvPrefix(prefix: string): number {
    let max = 0;
    for (const e of this.kv.values()) if (e.key.startsWith(prefix)) max = Math.max(max, e.modifyIndex);
    for (const [k, i] of this.kvTombstones) if (k.startsWith(prefix)) max = Math.max(max, i);
    return max > 0 ? max : Math.max(1, this.kvTableIndex);
  }
}

function hasStatus(raw: Readonly<Record<string, unknown>>): boolean {
  return Object.keys(raw).some((k) => k.toLowerCase() === 'status' && raw[k] !== '' && raw[k] != null);
}

/** Structural equality of plain JSON-like data, independent of key order. */
function sameJson(a: unknown, b: unknown): boolean {
  return stableStringify(a) === stableStringify(b);
}

function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'undefined';
}
