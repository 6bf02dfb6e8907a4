// The randomized follower test's edges: apply a generated op to Consul through its HTTP API (so it
// runs unchanged against a real agent), read the routable set from the catalog's own answers, and
// read every worker's table from the balancer's admin API. The comparison itself is pure (diffRouting).
import { request } from 'undici';
import type { ConsulOp } from './consul-ops-generator.js';
import type { ConsulTarget } from './consul.js';

/** service name -> sorted server IDs ("host:port") */
export type Routing = ReadonlyMap<string, readonly string[]>;

const TIMEOUT_MS = 5000;
const SERF = { CheckID: 'serfHealth', Name: 'Serf Health Status' };

async function call(consul: ConsulTarget, method: string, path: string, body?: unknown): Promise<{ status: number; text: string; index: number }> {
  const res = await request(`${consul.url}${path}`, { method: method as 'GET', body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(TIMEOUT_MS) });
  const text = await res.body.text();
  return { status: res.statusCode, text, index: Number(res.headers['x-consul-index'] ?? 0) };
}

/** The agent's node name (/v1/agent/self). */
export async function agentNodeName(consul: ConsulTarget): Promise<string> {
  const r = await call(consul, 'GET', '/v1/agent/self');
  return (JSON.parse(r.text) as { Config: { NodeName: string } }).Config.NodeName;
}

/**
 * One op through the HTTP API. A target the op names may be gone (a shrunk sequence, a node reaped by a
 * real leader): Consul's 404 (agent) or 500 "Missing service registration" (catalog) is then the
 * answer, and the op is a no-op; anything else unexpected throws.
 */
export async function applyOp(consul: ConsulTarget, agentNode: string, op: ConsulOp): Promise<void> {
  const ok = (r: { status: number; text: string }, what: string, tolerated: (r: { status: number; text: string }) => boolean = () => false) => {
    if (r.status === 200 || tolerated(r)) return;
    throw Object.assign(new Error(`${what}: ${r.status} ${r.text.slice(0, 200)}`), { code: 'ERR_FOLLOWER_OP' });
  };
  const gone = (r: { status: number; text: string }) => r.status === 404 || /Missing service registration|Unknown (service|check) ID/.test(r.text);
  const checkId = (id: string) => (op.kind === 'check' || op.kind === 'register' ? `${id}:check` : id);
  switch (op.kind) {
    case 'register': {
      if (op.node === agentNode) {
        return ok(await call(consul, 'PUT', '/v1/agent/service/register', {
          ID: op.id, Name: op.service, Address: op.address, Port: op.port, Tags: op.tags, Check: { CheckID: checkId(op.id), TTL: '1h', Status: op.status },
        }), op.kind);
      }
      return ok(await call(consul, 'PUT', '/v1/catalog/register', {
        Node: op.node, Address: op.nodeAddress, SkipNodeUpdate: true,
        Service: { ID: op.id, Service: op.service, Address: op.address, Port: op.port, Tags: op.tags },
        Check: { CheckID: checkId(op.id), Name: 'instance', ServiceID: op.id, Status: op.status },
      }), op.kind);
    }
    case 'deregister':
      if (op.node === agentNode) return ok(await call(consul, 'PUT', `/v1/agent/service/deregister/${encodeURIComponent(op.id)}`), op.kind, gone);
      return ok(await call(consul, 'PUT', '/v1/catalog/deregister', { Node: op.node, ServiceID: op.id }), op.kind);
    case 'check': {
      if (op.node === agentNode) {
        const verb = op.status === 'passing' ? 'pass' : op.status === 'warning' ? 'warn' : 'fail';
        return ok(await call(consul, 'PUT', `/v1/agent/check/${verb}/${encodeURIComponent(checkId(op.id))}`), op.kind, gone);
      }
      return ok(await call(consul, 'PUT', '/v1/catalog/register', {
        Node: op.node, Address: '127.0.0.1', SkipNodeUpdate: true, Check: { CheckID: checkId(op.id), Name: 'instance', ServiceID: op.id, Status: op.status },
      }), op.kind, gone);
    }
    case 'maintenance':
      return ok(await call(consul, 'PUT', `/v1/agent/service/maintenance/${encodeURIComponent(op.id)}?enable=${op.enable}&reason=random`), op.kind, gone);
    case 'node-join':
      return ok(await call(consul, 'PUT', '/v1/catalog/register', { Node: op.node, Address: op.address, Check: { ...SERF, Status: 'passing' } }), op.kind);
    case 'node-fail':
    case 'node-recover':
      return ok(await call(consul, 'PUT', '/v1/catalog/register', {
        Node: op.node, Address: op.nodeAddress, SkipNodeUpdate: true, Check: { ...SERF, Status: op.kind === 'node-fail' ? 'critical' : 'passing' },
      }), op.kind);
    case 'node-leave':
      return ok(await call(consul, 'PUT', '/v1/catalog/deregister', { Node: op.node }), op.kind);
    case 'node-readdress':
      // no SkipNodeUpdate: the node record itself is rewritten (ensureRegistrationTxn -> ensureNodeTxn)
      return ok(await call(consul, 'PUT', '/v1/catalog/register', { Node: op.node, Address: op.address }), op.kind);
    case 'txn':
      // a node gone (a shrunk sequence) fails the whole transaction: 409 "Missing node registration"
      return ok(await call(consul, 'PUT', '/v1/txn', op.sets.map((x) => ({
        Service: { Verb: 'set', Node: x.node, Service: { ID: x.id, Service: x.service, Address: x.address, Port: x.port, Tags: x.tags } },
      }))), op.kind, (r) => r.status === 409 && /Missing node registration/.test(r.text));
    case 'kv':
      return ok(await call(consul, 'PUT', `/v1/kv/${op.key}`, String(Date.now())), op.kind);
    case 'coordinate':
      return ok(await call(consul, 'PUT', '/v1/coordinate/update', {
        Node: op.node, Coord: { Vec: [0.001, 0, 0, 0, 0, 0, 0, 0], Error: 1.5, Adjustment: 0, Height: 1e-5 },
      }), op.kind, (r) => r.status === 403 || r.status === 500);
    case 'burst':
      // all at once: they land inside one blocking answer of the follower
      await Promise.all(op.ops.map((o) => applyOp(consul, agentNode, o)));
      return;
    case 'quiet':
      return;
  }
}

/**
 * The routable set as the catalog says it: every service named with the prefix, its instances that
 * pass every check (`?passing`, the balancer's default passingOnly), each as Service.Address (or
 * Node.Address when empty) and port. A service whose instances all fail keeps an empty list (the
 * balancer keeps its upstream, with no server).
 */
export async function catalogRouting(consul: ConsulTarget, prefix: string): Promise<Routing> {
  const services = JSON.parse((await call(consul, 'GET', '/v1/catalog/services')).text) as Record<string, string[]>;
  const out = new Map<string, string[]>();
  for (const name of Object.keys(services).filter((n) => n.startsWith(prefix)).sort()) {
    const entries = JSON.parse((await call(consul, 'GET', `/v1/health/service/${encodeURIComponent(name)}?passing`)).text) as Array<{ Node: { Address: string }; Service: { Address: string; Port: number } }>;
    out.set(name, [...new Set(entries.map((e) => `${e.Service.Address || e.Node.Address}:${e.Service.Port}`))].sort());
  }
  return out;
}

interface TableAnswer {
  upstreams: Record<string, { servers: Array<{ id: string }> }>;
}
interface StatusAnswer {
  workers: Array<{ workerId: number }>;
  upstreams: Array<{ name: string; servers: Array<{ id: string; workers: string[] }> }>;
  notFound?: string[];
}

/**
 * Every worker's table, from the admin API: the primary's table names the upstreams (GET /table), and
 * GET /status asks each worker for them; a server listed by only some workers is reported per worker.
 * Returns one Routing per worker.
 */
export async function workerRoutings(adminPort: number, prefix: string): Promise<Routing[]> {
  const get = async <T>(path: string): Promise<T> => {
    const res = await request(`http://127.0.0.1:${adminPort}${path}`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`GET ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
    return JSON.parse(text) as T;
  };
  const table = await get<TableAnswer>('/table');
  const names = Object.keys(table.upstreams).filter((n) => n.startsWith(prefix)).sort();
  // with no upstream of ours, one row of any answers which workers there are
  const status = await get<StatusAnswer>(names.length === 0 ? '/status?limit=1' : `/status?upstream=${encodeURIComponent(names.join(','))}&limit=1000`);
  const perWorker = status.workers.map(() => new Map<string, string[]>());
  for (const name of names) for (const w of perWorker) w.set(name, []);
  for (const u of names.length === 0 ? [] : status.upstreams) {
    for (const s of u.servers) {
      // `workers` lists the server's state in each worker that has it, in worker order; a server only
      // some workers have is not told apart per worker here, so it goes to the first ones
      s.workers.forEach((_, i) => perWorker[i]?.get(u.name)?.push(s.id));
    }
  }
  for (const w of perWorker) for (const [k, v] of w) w.set(k, v.sort());
  return perWorker;
}

/** Differences between the expected routing and one worker's, one line each; [] when equal. */
export function diffRouting(expected: Routing, actual: Routing): string[] {
  const out: string[] = [];
  for (const name of [...new Set([...expected.keys(), ...actual.keys()])].sort()) {
    const e = expected.get(name);
    const a = actual.get(name);
    if (e === undefined) {
      out.push(`${name}: in the table (${a!.join(' ') || 'no server'}), not in the catalog`);
      continue;
    }
    if (a === undefined) {
      out.push(`${name}: in the catalog (${e.join(' ') || 'no server'}), not in the table`);
      continue;
    }
    const missing = e.filter((x) => !a.includes(x));
    const extra = a.filter((x) => !e.includes(x));
    if (missing.length > 0 || extra.length > 0) out.push(`${name}: missing [${missing.join(' ')}] extra [${extra.join(' ')}]`);
  }
  return out;
}
