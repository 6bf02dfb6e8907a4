// Request handling: routes, Consul's query parameters, and blocking queries. node:http only.
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CheckRunner } from './check-runner.js';
import { parseGoDuration } from './durations.js';
import { parseCatalogDeregistration, parseCatalogRegistration, parseTxnOps, TxnBodyError } from './catalog-registration.js';
import { folded, parseRegistration, RegistrationError, type CheckStatus } from './registration.js';
import { SERF_CHECK_ID, type ConsulState, type ServiceEntry } from './state.js';
import { agentServiceView, catalogServiceView, checkView, healthServiceView, kvView, nodeView } from './views.js';

const DEFAULT_WAIT_MS = 5 * 60_000;
const MAX_WAIT_MS = 10 * 60_000;
const MAX_KV_VALUE = 512 * 1024;
const MAX_BODY = 4 * 1024 * 1024;

class HttpError extends Error {
  readonly code = 'ERR_CONSUL_DOUBLE_HTTP';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

type Answer = { status: 200; body: unknown; raw?: Buffer } | { status: 404; body?: undefined };

export interface RouterDeps {
  readonly state: ConsulState;
  readonly runner: CheckRunner;
  /** current artificial delay before answering */
  latencyMs(): number;
  /** false while the double simulates a cluster without a leader */
  hasLeader(): boolean;
  /** enable_script_checks (a real agent's default: false) */
  readonly enableScriptChecks: boolean;
  /** the agent's coordinate updates, applied by the servers in batches */
  coordinateUpdate(node: string, coord: unknown): void;
  /** [0, 1): Go's map iteration order, where Consul answers in it */
  random(): number;
}

/** agent.go addCheck: a script check from the HTTP API (source remote) on an agent without enable_script_checks. */
export const SCRIPTS_DISABLED = "Scripts are disabled on this agent from remote calls; to enable, configure 'enable_script_checks' to true";

export function createHandler(deps: RouterDeps) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void handle(deps, req, res).catch((err: unknown) => {
      if (res.headersSent || res.destroyed) return;
      // http.go: an HTTPError carries its code, any other error from an endpoint is a 500 with its text
      const status = err instanceof HttpError ? err.status : err instanceof RegistrationError ? 400 : 500;
      const message = err instanceof Error ? err.message : String(err);
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(message);
    });
  };
}

async function handle(deps: RouterDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const latency = deps.latencyMs();
  if (latency > 0) await sleep(latency, req);
  const url = new URL(req.url ?? '/', 'http://consul');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const q = url.searchParams;
  const { state } = deps;

  const requireMethod = (...allowed: string[]) => {
    if (!allowed.includes(method)) throw new HttpError(405, `method ${method} not allowed`);
  };
  const segment = (prefix: string) => decodeURIComponent(path.slice(prefix.length));

  // ---- status / agent (not blocking) ----
  // status_endpoint.go StatusLeader: 200 with "" while raft has no leader
  if (path === '/v1/status/leader') {
    requireMethod('GET');
    return sendJson(res, 200, deps.hasLeader() ? `${state.node.address}:8300` : '');
  }
  if (path === '/v1/status/peers') {
    requireMethod('GET');
    return sendJson(res, 200, [`${state.node.address}:8300`]);
  }
  if (path === '/v1/agent/self') {
    requireMethod('GET');
    return sendJson(res, 200, {
      Config: { Datacenter: state.node.datacenter, NodeName: state.node.name, NodeID: state.node.id, Server: true, Version: '1.17.0' },
      Member: { Name: state.node.name, Addr: state.node.address, Port: 8301, Tags: { dc: state.node.datacenter, role: 'consul' }, Status: 1 },
      Meta: { 'consul-network-segment': '' },
    });
  }
  // serf LAN members: the nodes carrying serfHealth (1 alive, 4 failed)
  if (path === '/v1/agent/members') {
    requireMethod('GET');
    const members = [...state.nodes.values()].flatMap((n) => {
      const serf = state.nodeChecks(n.name).find((c) => c.def.checkId === SERF_CHECK_ID);
      if (!serf) return [];
      return [{ Name: n.name, Addr: n.address, Port: 8301, Tags: { dc: n.datacenter, role: n.name === state.agentNode ? 'consul' : 'node' }, Status: serf.status === 'passing' ? 1 : 4 }];
    });
    return sendJson(res, 200, members);
  }
  if (path === '/v1/agent/services') {
    requireMethod('GET');
    const out: Record<string, unknown> = {};
    for (const s of state.agentServices()) out[s.def.id] = agentServiceView(state, s);
    return sendJson(res, 200, out);
  }
  if (path.startsWith('/v1/agent/service/') && method === 'GET' && !path.startsWith('/v1/agent/service/register')) {
    const id = segment('/v1/agent/service/');
    const s = state.agentService(id);
    if (!s) throw new HttpError(404, `unknown service ID: ${id}`);
    return sendJson(res, 200, agentServiceView(state, s));
  }
  if (path === '/v1/agent/checks') {
    requireMethod('GET');
    const out: Record<string, unknown> = {};
    for (const c of state.agentChecks()) out[c.def.checkId] = checkView(c, true);
    return sendJson(res, 200, out);
  }
  // not Consul's API: a benchmark's bulk load (a JSON list of registrations, each as the agent
  // endpoint takes it), so 50,000 instances do not cost 50,000 HTTP round trips
  if (path === '/_double/register-bulk') {
    requireMethod('PUT');
    const body = await readJson(req, 256 * 1024 * 1024);
    if (!Array.isArray(body)) throw new HttpError(400, 'expected a JSON list of registrations');
    const regs = body.map((b) => parseRegistration(b));
    for (const reg of regs) state.register(reg, false);
    return sendJson(res, 200, { registered: regs.length });
  }
  if (path === '/v1/agent/service/register') {
    requireMethod('PUT');
    const body = await readJson(req);
    const reg = parseRegistration(body);
    // agent.go addCheck refuses script (and docker, which runs Args) checks before anything is added
    if (!deps.enableScriptChecks && reg.checks.some((c) => c.type === 'script' || c.type === 'docker')) throw new HttpError(500, SCRIPTS_DISABLED);
    const replace = q.get('replace-existing-checks');
    state.register(reg, replace === '' || replace === 'true');
    return sendEmpty(res);
  }
  if (path.startsWith('/v1/agent/service/deregister/')) {
    requireMethod('PUT');
    const id = segment('/v1/agent/service/deregister/');
    if (!state.deregister(id)) throw new HttpError(404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
    return sendEmpty(res);
  }
  if (path === '/v1/agent/maintenance' || path.startsWith('/v1/agent/service/maintenance/')) {
    requireMethod('PUT');
    if (!q.has('enable')) throw new HttpError(400, 'Missing value for enable');
    const enable = boolParam(q, 'enable');
    const id = path === '/v1/agent/maintenance' ? undefined : segment('/v1/agent/service/maintenance/');
    if (!state.setMaintenance(id, enable, q.get('reason') ?? '')) throw new HttpError(404, `Unknown service ID "${id}"`);
    return sendEmpty(res);
  }
  const ttl = /^\/v1\/agent\/check\/(pass|warn|fail|update)\/(.+)$/.exec(path);
  if (ttl) {
    requireMethod('PUT');
    const checkId = decodeURIComponent(ttl[2]);
    let status: CheckStatus;
    let output: string;
    if (ttl[1] === 'update') {
      const b = folded(await readJson(req));
      const s = String(b.get('status') ?? '');
      if (!['passing', 'warning', 'critical'].includes(s)) throw new HttpError(400, `Invalid check status: '${s}'`);
      status = s as CheckStatus;
      output = String(b.get('output') ?? '');
    } else {
      status = ttl[1] === 'pass' ? 'passing' : ttl[1] === 'warn' ? 'warning' : 'critical';
      output = q.get('note') ?? '';
    }
    const c = state.agentCheck(checkId);
    if (!c || c.def.serviceId === '') throw new HttpError(404, `Unknown check ID "${checkId}". Ensure that the check ID is passed, not the check name.`);
    if (c.def.type !== 'ttl') throw new HttpError(500, `CheckID "${checkId}" does not have associated TTL`);
    deps.runner.checkResult(checkId, status, output);
    deps.runner.ttlRefreshed(checkId);
    return sendEmpty(res);
  }
  if (path.startsWith('/v1/agent/')) throw new HttpError(404, `Not implemented by the Consul double: ${path}`);

  // rpc.go: without a leader, consistent reads and every write fail; ?stale reads are served
  if (!deps.hasLeader() && !(method === 'GET' && q.has('stale'))) throw new HttpError(500, 'No cluster leader');

  // ---- catalog writes (catalog_endpoint.go; the servers' Catalog.Register/Deregister) ----
  if (path === '/v1/catalog/register') {
    requireMethod('PUT');
    // a CatalogError (the RPC's refusal) is a 500 with its text, as http.go answers any non-HTTP error
    state.catalogRegister(parseCatalogRegistration(await readJson(req)));
    return sendJson(res, 200, true);
  }
  if (path === '/v1/catalog/deregister') {
    requireMethod('PUT');
    state.catalogDeregister(parseCatalogDeregistration(await readJson(req)));
    return sendJson(res, 200, true);
  }
  // txn_endpoint.go Txn: Service ops applied by the servers at one raft index (state/txn.go); a
  // conflict (any op's error) is a 409 with every error and nothing written
  if (path === '/v1/txn') {
    requireMethod('PUT');
    let parsed: ReturnType<typeof parseTxnOps>;
    try {
      parsed = parseTxnOps(await readJson(req));
    } catch (err) {
      if (err instanceof TxnBodyError) throw new HttpError(err.status, err.message);
      throw err;
    }
    const out = parsed.errors.length > 0 ? { results: [], errors: parsed.errors } : state.txnServices(parsed.ops);
    if (out.errors.length > 0) return sendJson(res, 409, { Results: null, Errors: out.errors });
    return sendJson(res, 200, { Results: out.results.map((e) => ({ Service: healthServiceView(e) })), Errors: null });
  }
  // coordinate_endpoint.go: updates are queued and applied by the servers in batches
  if (path === '/v1/coordinate/update') {
    requireMethod('PUT');
    const b = folded(await readJson(req));
    const node = String(b.get('node') ?? '');
    if (!node || !b.get('coord')) throw new HttpError(400, 'Missing Node or Coord');
    deps.coordinateUpdate(node, b.get('coord'));
    return sendEmpty(res);
  }
  if (path === '/v1/coordinate/nodes') {
    requireMethod('GET');
    return blocking(state.changes, req, res, q, () => state.indexForCoordinates(), () => ({
      status: 200,
      body: [...state.coordinates].sort(([a], [b]) => cmp(a, b)).map(([Node, Coord]) => ({ Node, Segment: '', Coord, Partition: '' })),
    }), deps);
  }

  // ---- catalog / health / kv (blocking) ----
  if (path === '/v1/catalog/datacenters') {
    requireMethod('GET');
    return sendJson(res, 200, [state.node.datacenter]);
  }
  if (path === '/v1/catalog/services') {
    requireMethod('GET');
    return blocking(state.changes, req, res, q, () => state.indexForCatalogServices(), () => {
      const tagsByName = new Map<string, Set<string>>();
      for (const s of state.services.values()) {
        const set = tagsByName.get(s.def.name) ?? new Set<string>();
        for (const t of s.def.tags) set.add(t);
        tagsByName.set(s.def.name, set);
      }
      // catalog.go Services(): each name's tags are collected in a Go map and listed in its iteration
      // order, random on every answer (encoding/json sorts only the names, the outer map's keys)
      const out: Record<string, string[]> = {};
      for (const name of [...tagsByName.keys()].sort(cmp)) out[name] = shuffled([...tagsByName.get(name)!], deps.random);
      return { status: 200, body: out };
    }, deps);
  }
  if (path.startsWith('/v1/catalog/service/')) {
    requireMethod('GET');
    const name = segment('/v1/catalog/service/');
    const tags = q.getAll('tag');
    return blocking(state.changes, req, res, q, () => state.indexForServiceName(name, false), () => ({
      status: 200,
      body: instancesOf(state, name, tags).map((s) => catalogServiceView(state.nodes.get(s.node)!, s)),
    }), deps);
  }
  if (path === '/v1/catalog/nodes') {
    requireMethod('GET');
    return blocking(state.changes, req, res, q, () => state.indexForNodes(), () => ({ status: 200, body: [...state.nodes.keys()].sort(cmp).map((n) => nodeView(state.nodes.get(n)!)) }), deps);
  }
  if (path.startsWith('/v1/catalog/node/')) {
    requireMethod('GET');
    const name = segment('/v1/catalog/node/');
    return blocking(state.changes, req, res, q, () => Math.max(state.indexForNodes(), state.indexForCatalogServices()), () => {
      const node = state.nodes.get(name);
      if (!node) return { status: 200, body: null };
      const services: Record<string, unknown> = {};
      for (const s of state.servicesOfNode(name)) services[s.def.id] = healthServiceView(s);
      return { status: 200, body: { Node: nodeView(node), Services: services } };
    }, deps);
  }
  if (path.startsWith('/v1/health/service/')) {
    requireMethod('GET');
    const name = segment('/v1/health/service/');
    const tags = q.getAll('tag');
    const passing = boolParam(q, 'passing');
    // health_endpoint.go ServiceNodes: the filter applies to the entries after the index is taken
    // (checkServiceNodesTxn's service.<name> index), so a filter matching nothing still answers it
    const keep = checkFilter(q.get('filter'));
    // a node check (serfHealth, node maintenance) counts for every instance on its node
    return blocking(state.changes, req, res, q, () => state.indexForServiceName(name, true), () => {
      const entries = instancesOf(state, name, tags)
        .map((s) => ({ s, checks: state.checksOfInstance(s) }))
        .filter((e) => !passing || e.checks.every((c) => c.status === 'passing'))
        .map((e) => ({ Node: nodeView(state.nodes.get(e.s.node)!), Service: healthServiceView(e.s), Checks: e.checks.map((c) => checkView(c)) }))
        .filter((e) => keep(e));
      return { status: 200, body: entries };
    }, deps);
  }
  if (path.startsWith('/v1/health/checks/')) {
    requireMethod('GET');
    const name = segment('/v1/health/checks/');
    return blocking(state.changes, req, res, q, () => state.indexForChecks(), () => ({
      status: 200,
      body: [...state.checks.values()].filter((c) => c.serviceName === name).map((c) => checkView(c)),
    }), deps);
  }
  if (path.startsWith('/v1/health/node/')) {
    requireMethod('GET');
    const name = segment('/v1/health/node/');
    return blocking(state.changes, req, res, q, () => state.indexForChecks(), () => ({
      status: 200,
      body: [...state.checks.values()].filter((c) => c.node === name).map((c) => checkView(c)),
    }), deps);
  }
  // the web UI's service list (internal, Consul 1.9+): one summary per service name with its instance
  // count and check counts (each check counted once per node, node checks for every service on the
  // node), sorted by name; the index is the whole catalog's (nodes, services and checks)
  if (path === '/v1/internal/ui/services') {
    requireMethod('GET');
    return blocking(state.changes, req, res, q, () => state.indexForCatalog(), () => ({
      status: 200,
      body: serviceSummaries(state),
    }), deps);
  }
  if (path.startsWith('/v1/health/state/')) {
    requireMethod('GET');
    const wanted = segment('/v1/health/state/');
    if (!['any', 'passing', 'warning', 'critical'].includes(wanted)) throw new HttpError(400, 'Invalid check state');
    const keep = checkFilter(q.get('filter'));
    return blocking(state.changes, req, res, q, () => state.indexForChecks(), () => ({
      status: 200,
      // the filter sees the fields it may name before the (larger) view is built
      body: [...state.checks.values()]
        .filter((c) => (wanted === 'any' || c.status === wanted) && keep({ Node: c.node, CheckID: c.def.checkId, Name: c.def.name, Status: c.status, ServiceID: c.def.serviceId, ServiceName: c.serviceName, Type: c.def.type }))
        .map((c) => checkView(c)),
    }), deps);
  }
  if (path === '/v1/kv' || path.startsWith('/v1/kv/')) {
    return handleKv(deps, req, res, q, path === '/v1/kv' ? '' : segment('/v1/kv/'), method);
  }
  throw new HttpError(404, `Not implemented by the Consul double: ${method} ${path}`);
}

async function handleKv(deps: RouterDeps, req: IncomingMessage, res: ServerResponse, q: URLSearchParams, key: string, method: string): Promise<void> {
  const { state } = deps;
  const cas = q.has('cas') ? uintParam(q, 'cas', 'Invalid CAS index') : undefined;
  if (method === 'GET') {
    if (q.has('keys')) {
      const sep = q.get('separator') ?? '';
      return blocking(state.changes, req, res, q, () => state.indexForKvPrefix(key), () => {
        const keys = new Set<string>();
        for (const e of state.kvList(key)) {
          const rest = e.key.slice(key.length);
          const at = sep ? rest.indexOf(sep) : -1;
          keys.add(at >= 0 ? key + rest.slice(0, at + sep.length) : e.key);
        }
        return keys.size === 0 ? { status: 404 } : { status: 200, body: [...keys].sort(cmp) };
      }, deps);
    }
    if (q.has('recurse')) {
      return blocking(state.changes, req, res, q, () => state.indexForKvPrefix(key), () => {
        const entries = state.kvList(key);
        return entries.length === 0 ? { status: 404 } : { status: 200, body: entries.map(kvView) };
      }, deps);
    }
    const raw = q.has('raw');
    return blocking(state.changes, req, res, q, () => state.indexForKvKey(key), () => {
      const e = state.kv.get(key);
      if (!e) return { status: 404 };
      return raw ? { status: 200, body: undefined, raw: e.value ?? Buffer.alloc(0) } : { status: 200, body: [kvView(e)] };
    }, deps);
  }
  if (method === 'PUT') {
    if (key === '') throw new HttpError(400, 'Missing key name');
    const value = await readBody(req, MAX_KV_VALUE + 1);
    if (value.length > MAX_KV_VALUE) throw new HttpError(413, `Request body(${value.length} bytes) too large, max size: ${MAX_KV_VALUE} bytes. See https://developer.hashicorp.com/consul/docs/agent/config/config-files#kv_max_value_size.`);
    const flags = q.has('flags') ? uintParam(q, 'flags', 'Invalid flags') : 0;
    return sendJson(res, 200, state.kvPut(key, value, flags, cas));
  }
  if (method === 'DELETE') {
    const recurse = q.has('recurse');
    if (key === '' && !recurse) throw new HttpError(400, 'Missing key name');
    return sendJson(res, 200, state.kvDelete(key, recurse, cas));
  }
  throw new HttpError(405, `method ${method} not allowed`);
}

/**
 * ui_endpoint.go summarizeServices + prepSummaryOutput (1.9-era): one row per name, Nodes one entry per
 * instance (sorted), each check counted once per node+CheckID; no row at all answers null (a nil slice).
 */
function serviceSummaries(state: ConsulState): unknown[] | null {
  const byName = new Map<string, { kind: string; tags: Set<string>; nodes: string[]; sources: string[]; count: number; checks: Map<string, string> }>();
  // insertion order is enough: names, nodes and tags are sorted below
  for (const s of state.services.values()) {
    let sum = byName.get(s.def.name);
    if (!sum) byName.set(s.def.name, (sum = { kind: s.def.kind ?? '', tags: new Set(), nodes: [], sources: [], count: 0, checks: new Map() }));
    sum.kind = s.def.kind ?? '';
    sum.count++;
    sum.nodes.push(s.node);
    for (const t of s.def.tags) sum.tags.add(t);
    const source = s.def.meta['external-source'];
    if (source && !sum.sources.includes(source)) sum.sources.push(source);
    for (const c of state.checksOfInstance(s)) sum.checks.set(`${s.node}/${c.def.checkId}`, c.status);
  }
  if (byName.size === 0) return null;
  return [...byName.keys()].sort(cmp).map((name) => {
    const sum = byName.get(name)!;
    const statuses = [...sum.checks.values()];
    const tags = [...sum.tags].sort(cmp);
    return {
      ...(sum.kind ? { Kind: sum.kind } : {}),
      Name: name,
      Datacenter: state.node.datacenter,
      // Go's nil slices: no tags and no external source answer null
      Tags: tags.length > 0 ? tags : null,
      Nodes: sum.nodes.sort(cmp),
      ExternalSources: sum.sources.length > 0 ? sum.sources : null,
      InstanceCount: sum.count,
      ChecksPassing: statuses.filter((x) => x === 'passing').length,
      ChecksWarning: statuses.filter((x) => x === 'warning').length,
      ChecksCritical: statuses.filter((x) => x === 'critical').length,
      GatewayConfig: {},
      TransparentProxy: false,
      ConnectNative: false,
      ConnectedWithProxy: false,
      ConnectedWithGateway: false,
    };
  });
}


/**
 * Consul's `filter` (go-bexpr) on health/state and health/service, for the expressions clients here
 * send: `Selector == "v"` or `Selector != "v"` on a string field (a dotted selector such as `Service.ID`
 * on health/service entries), joined by `and`. Anything else is a 400, as Consul answers a filter it
 * cannot parse.
 */
function checkFilter(expr: string | null): (c: Record<string, unknown>) => boolean {
  if (expr === null || expr.trim() === '') return () => true;
  const terms = expr.split(/\s+and\s+/i).map((t) => {
    const m = /^\s*([A-Za-z]+(?:\.[A-Za-z]+)*)\s*(==|!=)\s*"([^"]*)"\s*$/.exec(t);
    if (!m) throw new HttpError(400, `Failed to create boolean expression evaluator: unsupported filter ${JSON.stringify(t)}`);
    const [, selector, op, value] = m;
    const path = selector.split('.');
    const field = (c: Record<string, unknown>): unknown => path.reduce<unknown>((o, k) => (typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined), c);
    return (c: Record<string, unknown>) => (String(field(c) ?? '') === value) === (op === '==');
  });
  return (c) => terms.every((f) => f(c));
}

/** Consul's blocking query: answer at once unless `index` is given and not behind the endpoint's index. */
async function blocking(changes: EventEmitter, req: IncomingMessage, res: ServerResponse, q: URLSearchParams, index: () => number, answer: () => Answer, deps: RouterDeps): Promise<void> {
  const minIndex = q.has('index') ? uintParam(q, 'index', 'Invalid index') : 0;
  let waitMs = DEFAULT_WAIT_MS;
  if (q.has('wait')) {
    const parsed = parseGoDuration(q.get('wait') ?? '');
    if (parsed === undefined) throw new HttpError(400, 'Invalid wait time');
    waitMs = parsed;
  }
  waitMs = Math.min(waitMs <= 0 ? DEFAULT_WAIT_MS : waitMs, MAX_WAIT_MS);
  if (minIndex > 0 && index() <= minIndex) {
    const jitter = Math.random() * (waitMs / 16);
    await waitForIndex(changes, req, index, minIndex, waitMs + jitter);
  }
  if (res.destroyed) return;
  const idx = Math.max(1, index());
  const a = answer();
  const headers = { 'X-Consul-Index': String(idx), 'X-Consul-KnownLeader': String(deps.hasLeader()), 'X-Consul-LastContact': '0', 'X-Consul-Default-Acl-Policy': 'allow' };
  if (a.status === 404) {
    res.writeHead(404, headers);
    res.end();
    return;
  }
  if (a.raw) {
    res.writeHead(200, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(a.raw.length) });
    res.end(a.raw);
    return;
  }
  sendJson(res, 200, a.body, headers);
}

function waitForIndex(emitter: EventEmitter, req: IncomingMessage, index: () => number, minIndex: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off('change', onChange);
      req.socket.off('close', onClose);
    };
    const onChange = () => {
      if (index() > minIndex) {
        cleanup();
        resolve();
      }
    };
    const onClose = () => {
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      resolve();
    }, timeoutMs);
    emitter.on('change', onChange);
    req.socket.on('close', onClose);
  });
}

function boolParam(q: URLSearchParams, name: string): boolean {
  if (!q.has(name)) return false;
  const v = q.get(name) ?? '';
  if (v === '') return true;
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
  throw new HttpError(400, `Invalid value for ?${name}`);
}

function uintParam(q: URLSearchParams, name: string, message: string): number {
  const v = q.get(name) ?? '';
  if (!/^\d+$/.test(v)) throw new HttpError(400, message);
  return Number(v);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function sendEmpty(res: ServerResponse): void {
  res.writeHead(200, { 'Content-Length': '0' });
  res.end();
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function readJson(req: IncomingMessage, maxBytes = MAX_BODY): Promise<unknown> {
  const buf = await readBody(req, maxBytes);
  if (buf.length === 0) return undefined;
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `Request decode failed: ${(err as Error).message}`);
  }
}

function sleep(ms: number, req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    req.socket.once('close', done);
    function done() {
      clearTimeout(t);
      req.socket.off('close', done);
      resolve();
    }
  });
}

function shuffled<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function instancesOf(state: ConsulState, name: string, tags: string[]): ServiceEntry[] {
  return state.instancesNamed(name).filter((s) => tags.every((t) => s.def.tags.includes(t)));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
