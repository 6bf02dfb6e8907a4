// The double's state store: several nodes, one raft-like index, and Consul's index table (per-table
// indexes, `service.<name>` per service name, `service_last_extinction`), kept the way
// agent/consul/state/catalog.go keeps them, plus a change signal that wakes blocking queries.
// Synchronous and free of I/O; timers live in check-runner.ts and noise.ts.
import { EventEmitter } from 'node:events';
import type { CheckDef, CheckStatus, Registration, ServiceDef } from './registration.js';

export interface NodeInfo {
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly datacenter: string;
  readonly taggedAddresses: Readonly<Record<string, string>>;
  readonly meta: Readonly<Record<string, string>>;
  readonly createIndex: number;
  readonly modifyIndex: number;
}

export interface ServiceEntry {
  readonly node: string;
  readonly def: ServiceDef;
  readonly createIndex: number;
  modifyIndex: number;
}

export interface CheckEntry {
  readonly node: string;
  readonly def: CheckDef;
  /** node-level checks (serfHealth, _node_maintenance) have no service */
  serviceName: string;
  serviceTags: readonly string[];
  /** what the catalog holds */
  status: CheckStatus;
  output: string;
  /**
   * the agent's own copy of the output (GET /v1/agent/checks): an output-only update reaches the catalog
   * up to check_update_interval later (agent/local/state.go UpdateCheck defers it)
   */
  agentOutput: string;
  /**
   * the catalog's Definition: {} for agent-registered checks (agent.go addServiceInternal builds the
   * HealthCheck without one), the given one for catalog registrations
   */
  readonly definition: Readonly<Record<string, unknown>>;
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

/** A node as PUT /v1/catalog/register gives it. */
export interface CatalogNode {
  readonly name: string;
  readonly address: string;
  readonly id?: string;
  readonly taggedAddresses?: Readonly<Record<string, string>>;
  readonly meta?: Readonly<Record<string, string>>;
}

/** A check as PUT /v1/catalog/register gives it (structs.HealthCheck). */
export interface CatalogCheck {
  readonly checkId: string;
  readonly name: string;
  readonly status: CheckStatus;
  readonly output: string;
  readonly notes: string;
  readonly serviceId: string;
  readonly definition: Readonly<Record<string, unknown>>;
}

/** One Service op of a /v1/txn body (structs.TxnServiceOp). */
export interface TxnServiceOp {
  readonly verb: string;
  readonly node: string;
  readonly service: ServiceDef;
}

export class CatalogError extends Error {
  readonly code = 'ERR_CONSUL_DOUBLE_CATALOG';
}

/** The check every serf member carries, written by the leader (agent/consul/leader.go handleAliveMember). */
export const SERF_CHECK_ID = 'serfHealth';
export const SERF_CHECK_NAME = 'Serf Health Status';
export const SERF_ALIVE_OUTPUT = 'Agent alive and reachable';
export const SERF_FAILED_OUTPUT = 'Agent not live or unreachable';

const key = (node: string, id: string) => `${node}\u0000${id}`;

export class ConsulState {
  /** last raft index handed out; starts above 0 because Consul never answers index 0 */
  private raftIndex = 1;
  /** the agent's own node (agent endpoints act on it) */
  readonly agentNode: string;
  readonly datacenter: string;
  readonly nodes = new Map<string, NodeInfo>();
  /** key(node, serviceId) -> instance; read-only for others */
  readonly services = new Map<string, ServiceEntry>();
  /** key(node, checkId) -> check; read-only for others */
  readonly checks = new Map<string, CheckEntry>();
  private readonly serviceIdsByNode = new Map<string, Set<string>>();
  /** key(node, serviceId or '' for node checks) -> check IDs */
  private readonly checkIdsByService = new Map<string, Set<string>>();
  /** service name -> keys of its instances, so per-service reads cost that service, not the catalog */
  private readonly keysByName = new Map<string, Set<string>>();
  /** Consul's "index" table: nodes, services, checks, kvs, coordinates, service.<name>, service_last_extinction */
  private readonly indexTable = new Map<string, number>();
  readonly kv = new Map<string, KvEntry>();
  private readonly kvTombstones = new Map<string, number>();
  /** node -> coordinate as last written (the coordinates table) */
  readonly coordinates = new Map<string, unknown>();
  /** 'change' is emitted after every write; blocking queries re-evaluate their index on it */
  readonly changes = new EventEmitter();

  constructor(opts: { nodeName: string; nodeAddress: string; datacenter: string; nodeId: string }, private readonly now: () => number = Date.now) {
    this.changes.setMaxListeners(0);
    this.agentNode = opts.nodeName;
    this.datacenter = opts.datacenter;
    // The consul server registers itself in the catalog, and the node carries its serf check.
    const idx = this.nextIndex();
    this.ensureNode({ name: opts.nodeName, address: opts.nodeAddress, id: opts.nodeId }, idx);
    this.ensureService(opts.nodeName, {
      id: 'consul', name: 'consul', tags: [], address: '', port: 8300,
      meta: { raft_version: '3', serf_protocol_current: '2', serf_protocol_max: '5', serf_protocol_min: '1', version: '1.17.0' },
      weights: { Passing: 1, Warning: 1 }, enableTagOverride: false, taggedAddresses: {},
    }, idx);
    this.ensureSerfCheck(opts.nodeName, 'passing', idx);
  }

  /** The agent's own node record. */
  get node(): NodeInfo {
    return this.nodes.get(this.agentNode)!;
  }

  /** The last raft index handed out (any write, catalog or not). */
  lastIndex(): number {
    return this.raftIndex;
  }

  private nextIndex(): number {
    this.raftIndex += 1;
    return this.raftIndex;
  }

  private changed(): void {
    this.changes.emit('change');
  }

  private setIndex(name: string, idx: number): void {
    if ((this.indexTable.get(name) ?? 0) < idx) this.indexTable.set(name, idx);
  }

  private index(name: string): number {
    return this.indexTable.get(name) ?? 0;
  }

  // ---- reads ----

  /** Instances of one service name, ordered as Consul's memdb index returns them (node, then ID). */
  instancesNamed(name: string): ServiceEntry[] {
    const keys = this.keysByName.get(name);
    if (!keys) return [];
    return [...keys].sort().map((k) => this.services.get(k)!).filter(Boolean);
  }

  /** Every instance, ordered by node then ID. */
  allServices(): ServiceEntry[] {
    return [...this.services.keys()].sort().map((k) => this.services.get(k)!);
  }

  servicesOfNode(node: string): ServiceEntry[] {
    return [...(this.serviceIdsByNode.get(node) ?? [])].sort().map((id) => this.services.get(key(node, id))!).filter(Boolean);
  }

  /** Services registered through this agent's API (the built-in "consul" service is catalog-only). */
  agentServices(): ServiceEntry[] {
    return this.servicesOfNode(this.agentNode).filter((s) => s.def.id !== 'consul');
  }

  agentService(id: string): ServiceEntry | undefined {
    return id === 'consul' ? undefined : this.services.get(key(this.agentNode, id));
  }

  agentCheck(checkId: string): CheckEntry | undefined {
    return this.checks.get(key(this.agentNode, checkId));
  }

  /** The checks this agent owns (GET /v1/agent/checks): all of its node's but serfHealth, which the servers write. */
  agentChecks(): CheckEntry[] {
    return this.agentChecksUnordered().sort((a, b) => cmp(a.def.checkId, b.def.checkId));
  }

  /** agentChecks without the sort, for the timers' walks (one per burst of writes) */
  agentChecksUnordered(): CheckEntry[] {
    const out: CheckEntry[] = [];
    for (const c of this.checks.values()) if (c.node === this.agentNode && c.def.checkId !== SERF_CHECK_ID) out.push(c);
    return out;
  }

  checksOfService(serviceId: string, node: string = this.agentNode): CheckEntry[] {
    const ids = this.checkIdsByService.get(key(node, serviceId));
    if (!ids) return [];
    return [...ids].sort().map((id) => this.checks.get(key(node, id))!).filter(Boolean);
  }

  nodeChecks(node: string = this.agentNode): CheckEntry[] {
    return this.checksOfService('', node);
  }

  /** Node checks then service checks: what a health answer lists for one instance. */
  checksOfInstance(s: ServiceEntry): CheckEntry[] {
    return [...this.nodeChecks(s.node), ...this.checksOfService(s.def.id, s.node)];
  }

  // ---- the writes of catalog.go, each at a given index ----

  /** ensureNodeTxn: a changed node moves the nodes index and every service index of the node. */
  private ensureNode(n: CatalogNode, idx: number): boolean {
    const existing = this.nodes.get(n.name);
    const next: NodeInfo = {
      id: n.id ?? existing?.id ?? '',
      name: n.name,
      address: n.address,
      datacenter: this.datacenter,
      taggedAddresses: n.taggedAddresses ?? { lan: n.address, lan_ipv4: n.address, wan: n.address, wan_ipv4: n.address },
      meta: n.meta ?? existing?.meta ?? { 'consul-network-segment': '' },
      createIndex: existing?.createIndex ?? idx,
      modifyIndex: idx,
    };
    if (existing && sameJson({ ...existing, createIndex: 0, modifyIndex: 0 }, { ...next, createIndex: 0, modifyIndex: 0 })) return false;
    this.nodes.set(n.name, next);
    this.setIndex('nodes', idx);
    this.updateAllServiceIndexesOfNode(n.name, idx);
    return true;
  }

  private updateAllServiceIndexesOfNode(node: string, idx: number): void {
    for (const s of this.servicesOfNode(node)) this.setIndex(`service.${s.def.name}`, idx);
  }

  /** ensureServiceTxn: an identical service is not rewritten. */
  private ensureService(node: string, def: ServiceDef, idx: number): boolean {
    const k = key(node, def.id);
    const previous = this.services.get(k);
    if (previous && sameJson(previous.def, def)) return false;
    if (previous && previous.def.name !== def.name) {
      this.unindexName(previous.def.name, k);
      // the old name lost an instance: its index moves, or it went extinct
      if (this.keysByName.has(previous.def.name)) this.setIndex(`service.${previous.def.name}`, idx);
      else this.extinct(previous.def.name, idx);
    }
    this.services.set(k, { node, def, createIndex: previous?.createIndex ?? idx, modifyIndex: idx });
    const ids = this.serviceIdsByNode.get(node) ?? new Set<string>();
    ids.add(def.id);
    this.serviceIdsByNode.set(node, ids);
    const keys = this.keysByName.get(def.name) ?? new Set<string>();
    keys.add(k);
    this.keysByName.set(def.name, keys);
    this.setIndex('services', idx);
    this.setIndex(`service.${def.name}`, idx);
    // checks of the instance carry its name and tags (catalog.go ensureServiceTxn updates them)
    for (const c of this.checksOfService(def.id, node)) {
      if (c.serviceName === def.name && sameJson(c.serviceTags, def.tags)) continue;
      c.serviceName = def.name;
      c.serviceTags = def.tags;
      c.modifyIndex = idx;
      this.setIndex('checks', idx);
    }
    return true;
  }

  /** The last instance of a name is gone: its service.<name> index goes, service_last_extinction moves. */
  private extinct(name: string, idx: number): void {
    this.indexTable.delete(`service.${name}`);
    this.setIndex('service_last_extinction', idx);
  }

  private unindexName(name: string, k: string): void {
    const keys = this.keysByName.get(name);
    keys?.delete(k);
    if (keys && keys.size === 0) this.keysByName.delete(name);
  }

  /** ensureCheckTxn: an identical check is not rewritten; a changed one moves its service's index (or every one of its node). */
  private ensureCheck(entry: Omit<CheckEntry, 'createIndex' | 'modifyIndex' | 'serviceName' | 'serviceTags'>, idx: number): boolean {
    const k = key(entry.node, entry.def.checkId);
    const previous = this.checks.get(k);
    const svc = entry.def.serviceId ? this.services.get(key(entry.node, entry.def.serviceId)) : undefined;
    if (entry.def.serviceId && !svc) throw new CatalogError('Missing service registration');
    const next: CheckEntry = {
      ...entry,
      serviceName: svc?.def.name ?? '',
      serviceTags: svc?.def.tags ?? [],
      createIndex: previous?.createIndex ?? idx,
      modifyIndex: idx,
    };
    if (previous && sameCheck(previous, next)) {
      previous.agentOutput = next.agentOutput;
      return false;
    }
    if (previous) this.checkIdsByService.get(key(previous.node, previous.def.serviceId))?.delete(previous.def.checkId);
    this.checks.set(k, next);
    const sk = key(entry.node, entry.def.serviceId);
    const ids = this.checkIdsByService.get(sk) ?? new Set<string>();
    ids.add(entry.def.checkId);
    this.checkIdsByService.set(sk, ids);
    this.setIndex('checks', idx);
    if (svc) this.setIndex(`service.${svc.def.name}`, idx);
    else this.updateAllServiceIndexesOfNode(entry.node, idx);
    return true;
  }

  /** deleteCheckTxn */
  private deleteCheck(node: string, checkId: string, idx: number): boolean {
    const k = key(node, checkId);
    const previous = this.checks.get(k);
    if (!previous) return false;
    this.checks.delete(k);
    const sk = key(node, previous.def.serviceId);
    const ids = this.checkIdsByService.get(sk);
    ids?.delete(checkId);
    if (ids && ids.size === 0) this.checkIdsByService.delete(sk);
    this.setIndex('checks', idx);
    const svc = previous.def.serviceId ? this.services.get(key(node, previous.def.serviceId)) : undefined;
    if (svc) this.setIndex(`service.${svc.def.name}`, idx);
    else if (!previous.def.serviceId) this.updateAllServiceIndexesOfNode(node, idx);
    return true;
  }

  /** deleteServiceTxn: its checks go too; the name's index moves, or it goes extinct. */
  private deleteService(node: string, serviceId: string, idx: number): boolean {
    const k = key(node, serviceId);
    const svc = this.services.get(k);
    if (!svc) return false;
    for (const c of this.checksOfService(serviceId, node)) this.deleteCheck(node, c.def.checkId, idx);
    this.services.delete(k);
    this.serviceIdsByNode.get(node)?.delete(serviceId);
    this.unindexName(svc.def.name, k);
    this.setIndex('services', idx);
    if (this.keysByName.has(svc.def.name)) this.setIndex(`service.${svc.def.name}`, idx);
    else this.extinct(svc.def.name, idx);
    return true;
  }

  /**
   * deleteNodeTxn: every service and check of the node and the node itself, in ONE transaction, so
   * every affected service's index becomes this one index.
   */
  private deleteNode(node: string, idx: number): boolean {
    if (!this.nodes.has(node)) return false;
    this.updateAllServiceIndexesOfNode(node, idx);
    for (const s of this.servicesOfNode(node)) this.deleteService(node, s.def.id, idx);
    for (const c of this.nodeChecks(node)) this.deleteCheck(node, c.def.checkId, idx);
    this.nodes.delete(node);
    this.serviceIdsByNode.delete(node);
    this.setIndex('nodes', idx);
    if (this.coordinates.delete(node)) this.setIndex('coordinates', idx);
    return true;
  }

  private ensureSerfCheck(node: string, status: 'passing' | 'critical', idx: number): boolean {
    return this.ensureCheck({
      node,
      def: { checkId: SERF_CHECK_ID, name: SERF_CHECK_NAME, notes: '', serviceId: '', type: '', initialStatus: status, tlsSkipVerify: false, raw: {} },
      status,
      output: status === 'passing' ? SERF_ALIVE_OUTPUT : SERF_FAILED_OUTPUT,
      agentOutput: status === 'passing' ? SERF_ALIVE_OUTPUT : SERF_FAILED_OUTPUT,
      definition: {},
    }, idx);
  }

  /** Run writes at one fresh index; the index is spent (and blocking queries woken) only if one wrote. */
  private txn(body: (idx: number) => boolean): boolean {
    const idx = this.raftIndex + 1;
    const wrote = body(idx);
    if (wrote) {
      this.raftIndex = idx;
      this.changed();
    }
    return wrote;
  }

  // ---- agent API (the agent's node) ----

  /**
   * PUT /v1/agent/service/register, then the agent's anti-entropy sync (agent/local/state.go syncService
   * sends the service with its checks in one RegisterRequest: one index). As agent.go
   * addServiceInternal: a check registered again keeps its status and output (the snapshot), and
   * without ?replace-existing-checks the checks the new definition does not name stay.
   */
  register(reg: Registration, replaceExistingChecks: boolean): void {
    const node = this.agentNode;
    this.txn((idx) => {
      let wrote = this.ensureService(node, reg.service, idx);
      if (replaceExistingChecks) {
        const keep = new Set(reg.checks.map((c) => c.checkId));
        for (const old of this.checksOfService(reg.service.id, node)) {
          if (!keep.has(old.def.checkId)) wrote = this.deleteCheck(node, old.def.checkId, idx) || wrote;
        }
      }
      for (const def of reg.checks) {
        const old = this.checks.get(key(node, def.checkId));
        const status: CheckStatus = old ? old.status : def.initialStatus;
        const output = old ? old.output : '';
        wrote = this.ensureCheck({
          node, def, status, output, agentOutput: old ? old.agentOutput : output, definition: {},
          criticalSince: status === 'critical' ? (old?.status === 'critical' ? old.criticalSince : this.now()) : undefined,
        }, idx) || wrote;
      }
      return wrote;
    });
  }

  /** PUT /v1/agent/service/deregister/:id */
  deregister(serviceId: string): boolean {
    if (serviceId === 'consul' || !this.agentService(serviceId)) return false;
    return this.txn((idx) => this.deleteService(this.agentNode, serviceId, idx));
  }

  /**
   * An agent check's result. A status change reaches the catalog at once; an output-only change is
   * only the agent's until `flushOutput` (the check runner calls it up to check_update_interval later).
   * Returns false for an unknown check, 'deferred' when only the output changed.
   */
  updateCheck(checkId: string, status: CheckStatus, output: string, deferOutput = false): boolean | 'deferred' {
    const c = this.agentCheck(checkId);
    if (!c) return false;
    if (c.status === status && c.agentOutput === output && c.output === output) return true;
    if (deferOutput && c.status === status) {
      c.agentOutput = output;
      return c.output === output ? true : 'deferred';
    }
    this.txn((idx) => {
      if (status === 'critical' && c.status !== 'critical') c.criticalSince = this.now();
      if (status !== 'critical') c.criticalSince = undefined;
      c.status = status;
      c.output = output;
      c.agentOutput = output;
      c.modifyIndex = idx;
      this.setIndex('checks', idx);
      if (c.def.serviceId) this.setIndex(`service.${c.serviceName}`, idx);
      else this.updateAllServiceIndexesOfNode(c.node, idx);
      return true;
    });
    return true;
  }

  /** The deferred output of an agent check reaches the catalog (agent/local/state.go: the deferred sync fires). */
  flushOutput(checkId: string): void {
    const c = this.agentCheck(checkId);
    if (!c || c.output === c.agentOutput) return;
    this.updateCheck(checkId, c.status, c.agentOutput);
  }

  /**
   * Maintenance mode as Consul's agent does it: a critical check `_service_maintenance:<id>` (service)
   * or `_node_maintenance` (node), removed when disabled. False when the service is unknown.
   */
  setMaintenance(serviceId: string | undefined, enable: boolean, reason: string): boolean {
    const svc = serviceId === undefined ? undefined : this.agentService(serviceId);
    if (serviceId !== undefined && !svc) return false;
    const checkId = serviceId === undefined ? '_node_maintenance' : `_service_maintenance:${serviceId}`;
    const node = this.agentNode;
    const existing = this.checks.get(key(node, checkId));
    if (!enable) {
      if (existing) this.txn((idx) => this.deleteCheck(node, checkId, idx));
      return true;
    }
    if (existing) return true;
    this.txn((idx) => this.ensureCheck({
      node,
      def: {
        checkId, name: serviceId === undefined ? 'Node Maintenance Mode' : 'Service Maintenance Mode',
        notes: reason || `Maintenance mode is enabled for this ${serviceId === undefined ? 'node' : 'service'}, but no reason was provided. This is a default message.`,
        serviceId: serviceId ?? '', type: 'maintenance', initialStatus: 'critical', tlsSkipVerify: false, raw: {},
      },
      status: 'critical', output: '', agentOutput: '', definition: {}, criticalSince: this.now(),
    }, idx));
    return true;
  }

  // ---- catalog API (any node) ----

  /**
   * PUT /v1/catalog/register: ensureRegistrationTxn, node, service and checks at one index.
   * A check without Status is critical (ensureCheckTxn).
   */
  catalogRegister(req: { node: CatalogNode; skipNodeUpdate?: boolean; service?: ServiceDef; checks: readonly CatalogCheck[] }): void {
    // validated before any write: the transaction applies whole or not at all
    for (const c of req.checks) {
      if (c.serviceId && c.serviceId !== req.service?.id && !this.services.has(key(req.node.name, c.serviceId))) throw new CatalogError('Missing service registration');
    }
    this.txn((idx) => {
      let wrote = false;
      if (!req.skipNodeUpdate || !this.nodes.has(req.node.name)) wrote = this.ensureNode(req.node, idx) || wrote;
      if (req.service) wrote = this.ensureService(req.node.name, req.service, idx) || wrote;
      for (const c of req.checks) {
        const old = this.checks.get(key(req.node.name, c.checkId));
        wrote = this.ensureCheck({
          node: req.node.name,
          def: { checkId: c.checkId, name: c.name, notes: c.notes, serviceId: c.serviceId, type: old?.def.type ?? '', initialStatus: c.status, tlsSkipVerify: false, raw: {} },
          status: c.status, output: c.output, agentOutput: c.output, definition: c.definition,
          criticalSince: c.status === 'critical' ? (old?.status === 'critical' ? old.criticalSince : this.now()) : undefined,
        }, idx) || wrote;
      }
      return wrote;
    });
  }

  /**
   * PUT /v1/catalog/deregister: with CheckID one check, with ServiceID one instance and its checks,
   * with only Node the whole node (deleteNodeTxn: every instance of every service at one index).
   */
  catalogDeregister(req: { node: string; serviceId?: string; checkId?: string }): void {
    this.txn((idx) => {
      if (req.serviceId) return this.deleteService(req.node, req.serviceId, idx);
      if (req.checkId) return this.deleteCheck(req.node, req.checkId, idx);
      return this.deleteNode(req.node, idx);
    });
  }

  /**
   * PUT /v1/txn with Service ops (agent/consul/state/txn.go txnService, TxnRW): every op at ONE raft
   * index, all or none. set = ensureServiceTxn (the node must exist: "Missing node registration"),
   * delete = deleteServiceTxn (its checks too; a missing one is no error), get = the instance or an
   * error. Errors are per op (TxnError OpIndex/What) and roll the whole transaction back.
   */
  txnServices(ops: readonly TxnServiceOp[]): { results: ServiceEntry[]; errors: { OpIndex: number; What: string }[] } {
    const errors: { OpIndex: number; What: string }[] = [];
    for (const [i, op] of ops.entries()) {
      if (op.verb === 'set' && !this.nodes.has(op.node)) errors.push({ OpIndex: i, What: 'Missing node registration' });
      else if (op.verb === 'get' && !this.services.has(key(op.node, op.service.id))) errors.push({ OpIndex: i, What: `service ${JSON.stringify(op.service.id)} on node ${JSON.stringify(op.node)} doesn't exist` });
      else if (op.verb !== 'set' && op.verb !== 'delete' && op.verb !== 'get') errors.push({ OpIndex: i, What: `unknown Service verb ${JSON.stringify(op.verb)}` });
    }
    if (errors.length > 0) return { results: [], errors };
    const results: ServiceEntry[] = [];
    this.txn((idx) => {
      let wrote = false;
      for (const op of ops) {
        if (op.verb === 'set') wrote = this.ensureService(op.node, op.service, idx) || wrote;
        else if (op.verb === 'delete') wrote = this.deleteService(op.node, op.service.id, idx) || wrote;
        // set and get answer the instance as it is after the op (getNodeServiceTxn); delete answers nothing
        if (op.verb !== 'delete') results.push(this.services.get(key(op.node, op.service.id))!);
      }
      return wrote;
    });
    return { results, errors };
  }

  /** A serf member joins: the leader registers its node with a passing serfHealth (leader.go handleAliveMember). */
  nodeJoin(node: CatalogNode): void {
    this.txn((idx) => {
      const wroteNode = this.ensureNode(node, idx);
      return this.ensureSerfCheck(node.name, 'passing', idx) || wroteNode;
    });
  }

  /** A node stops answering serf probes: serfHealth critical (leader.go handleFailedMember); its instances stay. */
  nodeFail(node: string): boolean {
    if (!this.nodes.has(node)) return false;
    this.txn((idx) => this.ensureSerfCheck(node, 'critical', idx));
    return true;
  }

  /** A failed node answers again. */
  nodeRecover(node: string): boolean {
    if (!this.nodes.has(node)) return false;
    this.txn((idx) => this.ensureSerfCheck(node, 'passing', idx));
    return true;
  }

  /** `consul leave` (or a failed node reaped): leader.go handleLeftMember deregisters the node, deleteNodeTxn. */
  nodeLeave(node: string): boolean {
    if (node === this.agentNode) throw new CatalogError('the agent cannot leave its own double');
    return this.txn((idx) => this.deleteNode(node, idx));
  }

  // ---- coordinates (agent/consul/state/coordinate.go: the coordinates table, no catalog index) ----

  /** One batched coordinate write (the servers apply the updates they collected every coordinate_update_period). */
  coordinateBatch(updates: ReadonlyArray<{ node: string; coord: unknown }>): void {
    const known = updates.filter((u) => this.nodes.has(u.node));
    if (known.length === 0) return;
    this.txn((idx) => {
      for (const u of known) this.coordinates.set(u.node, u.coord);
      this.setIndex('coordinates', idx);
      return true;
    });
  }

  // ---- KV ----

  kvPut(key: string, value: Buffer, flags: number, cas: number | undefined): boolean {
    const existing = this.kv.get(key);
    if (cas !== undefined) {
      if (cas === 0 && existing) return false;
      if (cas !== 0 && (!existing || existing.modifyIndex !== cas)) return false;
    }
    return this.txn((idx) => {
      this.kv.set(key, { key, value, flags, createIndex: existing?.createIndex ?? idx, modifyIndex: idx });
      this.setIndex('kvs', idx);
      return true;
    });
  }

  kvDelete(key: string, recurse: boolean, cas: number | undefined): boolean {
    if (cas !== undefined && !recurse) {
      const existing = this.kv.get(key);
      if (!existing) return cas === 0 ? true : false;
      if (existing.modifyIndex !== cas) return false;
    }
    const doomed = recurse ? [...this.kv.keys()].filter((k) => k.startsWith(key)) : this.kv.has(key) ? [key] : [];
    if (doomed.length === 0) return true;
    this.txn((idx) => {
      for (const k of doomed) {
        this.kv.delete(k);
        this.kvTombstones.set(k, idx);
      }
      this.setIndex('kvs', idx);
      return true;
    });
    return true;
  }

  kvList(prefix: string): KvEntry[] {
    return [...this.kv.values()].filter((e) => e.key.startsWith(prefix)).sort((a, b) => cmp(a.key, b.key));
  }

  // ---- indexes each endpoint answers with (the blocking layer raises 0 to 1) ----

  /**
   * catalog.go maxIndexForService: a name with instances answers its service.<name> index; a name
   * without any answers service_last_extinction (the last time ANY service lost its last instance), or
   * the nodes/services(/checks) tables when no service ever went extinct.
   */
  indexForServiceName(name: string, includeChecks = true): number {
    if (this.keysByName.has(name)) {
      const own = this.indexTable.get(`service.${name}`);
      if (own !== undefined) return own;
    } else {
      const extinction = this.indexTable.get('service_last_extinction');
      if (extinction !== undefined) return extinction;
    }
    return includeChecks ? this.indexForCatalog() : Math.max(this.index('nodes'), this.index('services'));
  }

  /** the services table (GET /v1/catalog/services) */
  indexForCatalogServices(): number {
    return this.index('services');
  }

  /** the checks table (health/state, health/node, health/checks) */
  indexForChecks(): number {
    return this.index('checks');
  }

  indexForNodes(): number {
    return this.index('nodes');
  }

  /** catalogMaxIndex with checks: nodes, services and checks (ServiceDump, the UI's service list) */
  indexForCatalog(): number {
    return Math.max(this.index('nodes'), this.index('services'), this.index('checks'));
  }

  indexForCoordinates(): number {
    return this.index('coordinates');
  }

  indexForKvKey(key: string): number {
    const e = this.kv.get(key);
    return e ? e.modifyIndex : this.index('kvs');
  }

  indexForKvPrefix(prefix: string): number {
    let max = 0;
    for (const e of this.kv.values()) if (e.key.startsWith(prefix)) max = Math.max(max, e.modifyIndex);
    for (const [k, i] of this.kvTombstones) if (k.startsWith(prefix)) max = Math.max(max, i);
    return max > 0 ? max : this.index('kvs');
  }
}

/** structs.HealthCheck IsSame: the fields the catalog compares (not the indexes). */
function sameCheck(a: CheckEntry, b: CheckEntry): boolean {
  return a.status === b.status && a.output === b.output && a.serviceName === b.serviceName && sameJson(a.serviceTags, b.serviceTags) &&
    a.def.name === b.def.name && a.def.notes === b.def.notes && a.def.serviceId === b.def.serviceId && sameJson(a.definition, b.definition) &&
    sameJson(a.def, b.def);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Structural equality of plain JSON-like data, independent of key order. */
export function sameJson(a: unknown, b: unknown): boolean {
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
