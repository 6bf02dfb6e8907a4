// Pure parsing of PUT /v1/catalog/register and /v1/catalog/deregister bodies (structs.RegisterRequest,
// structs.DeregisterRequest), validated as agent/consul/catalog_endpoint.go Register/Deregister do.
// Their errors reach the client as a 500 with the RPC error's text, like any non-HTTP error (http.go).
import { folded, RegistrationError, type ServiceDef } from './registration.js';
import { CatalogError, type CatalogCheck, type CatalogNode } from './state.js';

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
