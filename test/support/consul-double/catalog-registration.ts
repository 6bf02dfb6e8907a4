// Pure parsing of PUT /v1/catalog/register and /v1/catalog/deregister bodies (structs.RegisterRequest,
// structs.DeregisterRequest), validated as agent/consul/catalog_endpoint.go Register/Deregister do,
// and of PUT /v1/txn bodies (agent/txn_endpoint.go convertOps; only Service ops are modelled).
// Their errors reach the client as a 500 with the RPC error's text, like any non-HTTP error (http.go).
import { folded, RegistrationError, type ServiceDef } from './registration.js';
import { CatalogError, type CatalogCheck, type CatalogNode, type TxnServiceOp } from './state.js';

export interface CatalogRegistration {
  readonly node: CatalogNode;
  readonly skipNodeUpdate: boolean;
  readonly service?: ServiceDef;
  readonly checks: readonly CatalogCheck[];
}

const VALID_STATUS = new Set(['passing', 'warning', 'critical']);

function strOf(m: Map<string, unknown>, k: string): string {
  const v = m.get(k);
  return typeof v === 'string' ? v : '';
}

function strMap(v: unknown): Record<string, string> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) out[k] = String(x);
  return out;
}

function parseService(raw: unknown): ServiceDef {
  const b = folded(raw);
  const name = strOf(b, 'service');
  // catalog_endpoint.go servicePreApply
  if (name === '') throw new CatalogError('Must provide service name');
  const port = b.get('port') ?? 0;
  if (typeof port !== 'number' || !Number.isInteger(port)) throw new RegistrationError('Request decode failed: json: cannot unmarshal into Go struct field Port of type int');
  const w = folded(b.get('weights'));
  const weightsGiven = b.get('weights') !== undefined && b.get('weights') !== null;
  const tags = b.get('tags');
  const kind = strOf(b, 'kind');
  return {
    id: strOf(b, 'id') || name,
    name,
    tags: Array.isArray(tags) ? tags.map(String) : [],
    address: strOf(b, 'address'),
    port,
    meta: strMap(b.get('meta')) ?? {},
    weights: weightsGiven ? { Passing: Number(w.get('passing') ?? 0), Warning: Number(w.get('warning') ?? 0) } : { Passing: 1, Warning: 1 },
    enableTagOverride: b.get('enabletagoverride') === true,
    taggedAddresses: (strMap(b.get('taggedaddresses')) ?? {}) as Record<string, unknown>,
    ...(kind ? { kind } : {}),
  };
}

function parseCheck(raw: unknown, node: string): CatalogCheck {
  const c = folded(raw);
  const checkNode = strOf(c, 'node') || node;
  if (checkNode !== node) throw new CatalogError('Checks must be registered to the same node');
  const name = strOf(c, 'name');
  // checkPreApply: an empty CheckID takes the Name
  const checkId = strOf(c, 'checkid') || name;
  if (checkId === '') throw new CatalogError('Missing check ID');
  const status = strOf(c, 'status');
  if (status !== '' && !VALID_STATUS.has(status)) throw new CatalogError(`Invalid check status: '${status}'`);
  const definition = c.get('definition');
  return {
    checkId,
    name: name || checkId,
    // ensureCheckTxn: a check without status is critical
    status: (status || 'critical') as CatalogCheck['status'],
    output: strOf(c, 'output'),
    notes: strOf(c, 'notes'),
    serviceId: strOf(c, 'serviceid'),
    definition: definition && typeof definition === 'object' && !Array.isArray(definition) ? (definition as Record<string, unknown>) : {},
  };
}

export function parseCatalogRegistration(body: unknown): CatalogRegistration {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new RegistrationError('Request decode failed: json: cannot unmarshal into Go value of type structs.RegisterRequest');
  const b = folded(body);
  const node = strOf(b, 'node');
  const address = strOf(b, 'address');
  const skipNodeUpdate = b.get('skipnodeupdate') === true;
  if (node === '') throw new CatalogError('Must provide node');
  if (address === '' && !skipNodeUpdate) throw new CatalogError('Must provide address if SkipNodeUpdate is not set');
  const id = strOf(b, 'id');
  if (id && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw new CatalogError(`Bad node ID: uuid string is wrong length`);
  const service = b.get('service') ? parseService(b.get('service')) : undefined;
  const many = b.get('checks');
  const rawChecks = [b.get('check'), ...(Array.isArray(many) ? many : [])].filter((c) => c && typeof c === 'object');
  return {
    node: { name: node, address, ...(id ? { id } : {}), taggedAddresses: strMap(b.get('taggedaddresses')), meta: strMap(b.get('nodemeta')) },
    skipNodeUpdate,
    service,
    checks: rawChecks.map((c) => parseCheck(c, node)),
  };
}

export function parseCatalogDeregistration(body: unknown): { node: string; serviceId?: string; checkId?: string } {
  const b = folded(body);
  const node = strOf(b, 'node');
  if (node === '') throw new CatalogError('Must provide node');
  const serviceId = strOf(b, 'serviceid');
  const checkId = strOf(b, 'checkid');
  return { node, ...(serviceId ? { serviceId } : {}), ...(checkId ? { checkId } : {}) };
}

/** agent/txn_endpoint.go maxTxnOps */
export const MAX_TXN_OPS = 64;

/** Why a /v1/txn body is refused before any op runs: the HTTP status and Consul's text. */
export class TxnBodyError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * A /v1/txn body (api.TxnOps: a JSON array of {KV|Node|Service|Check: {...}}). Service ops only;
 * another kind is refused as the double does not model it. An op whose service has no name fails as
 * servicePreApply does ("Must provide service name"), reported per op like the RPC's other errors.
 */
export function parseTxnOps(body: unknown): { ops: TxnServiceOp[]; errors: { OpIndex: number; What: string }[] } {
  if (!Array.isArray(body)) throw new TxnBodyError(400, 'Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps');
  if (body.length > MAX_TXN_OPS) throw new TxnBodyError(413, `Transaction contains too many operations (${body.length} > ${MAX_TXN_OPS})`);
  const ops: TxnServiceOp[] = [];
  const errors: { OpIndex: number; What: string }[] = [];
  for (const [i, raw] of body.entries()) {
    const op = folded(raw);
    const svc = op.get('service');
    if (svc === undefined) {
      const kind = ['kv', 'node', 'check', 'session'].find((k) => op.has(k));
      throw new TxnBodyError(400, kind ? `Not implemented by the Consul double: /v1/txn ${kind} ops` : 'Failed to parse body: no operation specified');
    }
    const s = folded(svc);
    const verb = strOf(s, 'verb');
    const node = strOf(s, 'node');
    try {
      const service = verb === 'delete' || verb === 'get'
        ? { ...parseServiceOrEmpty(s.get('service')) }
        : parseService(s.get('service'));
      ops.push({ verb, node, service });
    } catch (err) {
      errors.push({ OpIndex: i, What: (err as Error).message });
    }
  }
  return { ops, errors };
}

/** delete and get name only the ID (an empty name is fine for them). */
function parseServiceOrEmpty(raw: unknown): ServiceDef {
  const id = strOf(folded(raw), 'id');
  return { id, name: '', tags: [], address: '', port: 0, meta: {}, weights: { Passing: 1, Warning: 1 }, enableTagOverride: false, taggedAddresses: {} };
}
