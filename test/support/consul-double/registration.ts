// Pure parsing/validation of PUT /v1/agent/service/register bodies into the double's records.
// Go's encoding/json matches field names case-insensitively and Consul also accepts snake_case
// aliases (deregister_critical_service_after ...), so fields are looked up by a folded key.
import { durationField } from './durations.js';

export type CheckStatus = 'passing' | 'warning' | 'critical' | 'maintenance';
export type CheckType = 'http' | 'tcp' | 'ttl' | 'grpc' | 'script' | 'docker' | 'alias' | 'h2ping' | 'udp' | 'maintenance' | '';

export interface ServiceDef {
  readonly id: string;
  readonly name: string;
  readonly tags: readonly string[];
  readonly address: string;
  readonly port: number;
  readonly meta: Readonly<Record<string, string>>;
  readonly weights: { readonly Passing: number; readonly Warning: number };
  readonly enableTagOverride: boolean;
  readonly taggedAddresses: Readonly<Record<string, unknown>>;
  /** '' for a typical service; 'connect-proxy', 'mesh-gateway', ... for Connect registrations */
  readonly kind?: string;
}

export interface CheckDef {
  readonly checkId: string;
  readonly name: string;
  readonly notes: string;
  readonly serviceId: string;
  readonly type: CheckType;
  readonly initialStatus: CheckStatus;
  readonly http?: string;
  readonly method?: string;
  readonly header?: Readonly<Record<string, readonly string[]>>;
  readonly body?: string;
  readonly tlsSkipVerify: boolean;
  readonly tcp?: string;
  readonly grpc?: string;
  readonly args?: readonly string[];
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly ttlMs?: number;
  readonly deregisterCriticalAfterMs?: number;
  /** the check definition as received (for the Definition field of health answers) */
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface Registration {
  readonly service: ServiceDef;
  readonly checks: readonly CheckDef[];
}

export class RegistrationError extends Error {
  readonly code = 'ERR_CONSUL_DOUBLE_BAD_REGISTRATION';
}

const VALID_STATUS = new Set(['passing', 'warning', 'critical']);

function fold(key: string): string {
  return key.replace(/_/g, '').toLowerCase();
}

/** Case- and underscore-insensitive view of a JSON object. */
export function folded(obj: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) out.set(fold(k), v);
  }
  return out;
}

function str(m: Map<string, unknown>, key: string, what: string): string | undefined {
  const v = m.get(fold(key));
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new RegistrationError(`Request decode failed: json: cannot unmarshal ${typeof v} into Go struct field ${what} of type string`);
  return v;
}

function strMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new RegistrationError(`Request decode failed: json: cannot unmarshal into Go struct field ${what} of type map[string]string`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw new RegistrationError(`Request decode failed: json: cannot unmarshal ${typeof val} into Go struct field ${what} of type string`);
    out[k] = val;
  }
  return out;
}

function duration(m: Map<string, unknown>, key: string): number | undefined {
  const d = durationField(m.get(fold(key)));
  if (d === 'invalid') throw new RegistrationError(`Request decode failed: time: invalid duration "${String(m.get(fold(key)))}"`);
  return d;
}

function parseCheck(rawCheck: unknown, service: ServiceDef, defaultId: string): CheckDef {
  const c = folded(rawCheck);
  const status = str(c, 'Status', 'Status') ?? '';
  if (status !== '' && !VALID_STATUS.has(status)) {
    throw new RegistrationError("Status for checks must 'passing', 'warning', 'critical'");
  }
  const http = str(c, 'HTTP', 'HTTP');
  const tcp = str(c, 'TCP', 'TCP');
  const grpc = str(c, 'GRPC', 'GRPC');
  const script = str(c, 'Script', 'Script');
  const argsRaw = c.get('args');
  const args = Array.isArray(argsRaw) ? argsRaw.map(String) : script ? ['/bin/sh', '-c', script] : undefined;
  const intervalMs = duration(c, 'Interval');
  const timeoutMs = duration(c, 'Timeout');
  const ttlMs = duration(c, 'TTL');
  const deregisterCriticalAfterMs = duration(c, 'DeregisterCriticalServiceAfter');
  const aliasService = str(c, 'AliasService', 'AliasService');
  const docker = str(c, 'DockerContainerID', 'DockerContainerID');

  let type: CheckType;
  if (ttlMs !== undefined && ttlMs > 0) type = 'ttl';
  else if (http) type = 'http';
  else if (tcp) type = 'tcp';
  else if (grpc) type = 'grpc';
  else if (docker) type = 'docker';
  else if (args && args.length > 0) type = 'script';
  else if (aliasService) type = 'alias';
  else type = '';

  // CheckType.Validate() in Consul
  const intervalNeeded = type === 'http' || type === 'tcp' || type === 'grpc' || type === 'script' || type === 'docker';
  if (type === '') {
    throw new RegistrationError('Invalid check: TTL must be > 0 for TTL checks');
  }
  if (type === 'ttl' && (http || tcp || grpc || (args && args.length > 0))) {
    throw new RegistrationError('Invalid check: Interval and TTL cannot both be set');
  }
  if (intervalNeeded && !(intervalMs !== undefined && intervalMs > 0)) {
    throw new RegistrationError('Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks');
  }
  if (type === 'http' && http && !/^https?:\/\//i.test(http)) {
    throw new RegistrationError(`Invalid check: invalid HTTP check URL "${http}"`);
  }

  const headerRaw = c.get('header');
  const header: Record<string, string[]> = {};
  if (headerRaw && typeof headerRaw === 'object') {
    for (const [k, v] of Object.entries(headerRaw)) header[k] = Array.isArray(v) ? v.map(String) : [String(v)];
  }

  return {
    checkId: str(c, 'CheckID', 'CheckID') || str(c, 'ID', 'ID') || defaultId,
    name: str(c, 'Name', 'Name') || `Service '${service.name}' check`,
    notes: str(c, 'Notes', 'Notes') ?? '',
    serviceId: service.id,
    type,
    initialStatus: (status || 'critical') as CheckStatus,
    http,
    method: str(c, 'Method', 'Method'),
    header,
    body: str(c, 'Body', 'Body'),
    tlsSkipVerify: c.get('tlsskipverify') === true,
    tcp,
    grpc,
    args,
    intervalMs,
    timeoutMs,
    ttlMs,
    deregisterCriticalAfterMs,
    raw: (rawCheck && typeof rawCheck === 'object' ? rawCheck : {}) as Record<string, unknown>,
  };
}

/** Validate a register body the way Consul's agent endpoint does; throws RegistrationError (HTTP 400). */
export function parseRegistration(body: unknown): Registration {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new RegistrationError('Request decode failed: json: cannot unmarshal into Go value of type structs.ServiceDefinition');
  }
  const b = folded(body);
  const name = str(b, 'Name', 'Name') ?? '';
  if (name === '') throw new RegistrationError('Missing service name');
  const id = str(b, 'ID', 'ID') || name;
  const tagsRaw = b.get('tags');
  if (tagsRaw !== undefined && tagsRaw !== null && !Array.isArray(tagsRaw)) {
    throw new RegistrationError('Request decode failed: json: cannot unmarshal into Go struct field Tags of type []string');
  }
  const portRaw = b.get('port') ?? 0;
  if (typeof portRaw !== 'number' || !Number.isInteger(portRaw)) {
    throw new RegistrationError(`Request decode failed: json: cannot unmarshal ${typeof portRaw} into Go struct field Port of type int`);
  }
  const meta = strMap(b.get('meta'), 'Meta');
  for (const k of Object.keys(meta)) {
    if (!/^[a-zA-Z0-9_-]+$/.test(k) || k.length > 128) throw new RegistrationError(`Invalid Service Meta: Key contains invalid characters: "${k}"`);
    if (k.startsWith('consul-')) throw new RegistrationError(`Invalid Service Meta: Key prefix 'consul-' is reserved for internal use`);
  }
  // Without Weights Consul uses {Passing: 1, Warning: 1}; a given Weights object is taken as is (Go zero values).
  const weightsGiven = b.get('weights') !== undefined && b.get('weights') !== null;
  const w = folded(b.get('weights'));
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  const weights = weightsGiven ? { Passing: num(w.get('passing')), Warning: num(w.get('warning')) } : { Passing: 1, Warning: 1 };
  if (weights.Passing < 1) throw new RegistrationError('Invalid Weights: Passing must be greater than 0');
  if (weights.Warning < 0) throw new RegistrationError('Invalid Weights: Warning must be greater or equal than 0');
  const address = str(b, 'Address', 'Address') ?? '';
  if (['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0'].includes(address)) throw new RegistrationError('Invalid service address');
  const tagged = b.get('taggedaddresses');
  const service: ServiceDef = {
    id,
    name,
    tags: (tagsRaw as unknown[] | undefined)?.map(String) ?? [],
    address,
    port: portRaw,
    meta,
    weights,
    enableTagOverride: b.get('enabletagoverride') === true,
    taggedAddresses: tagged && typeof tagged === 'object' ? (tagged as Record<string, unknown>) : {},
    ...(str(b, 'kind', 'ServiceDefinition.Kind') ? { kind: str(b, 'kind', 'ServiceDefinition.Kind') } : {}),
  };

  // Consul's ServiceDefinition.CheckTypes(): Check (unless empty) then Checks; default IDs are
  // "service:<id>" when there is exactly one check, else "service:<id>:<n>" counting from 1.
  const single = b.get('check');
  const many = b.get('checks');
  if (many !== undefined && many !== null && !Array.isArray(many)) {
    throw new RegistrationError('Request decode failed: json: cannot unmarshal into Go struct field Checks of type structs.CheckTypes');
  }
  const isEmpty = (c: unknown) => !c || (typeof c === 'object' && Object.keys(c).length === 0);
  const rawChecks = [single, ...((many as unknown[] | undefined) ?? [])].filter((c) => !isEmpty(c));
  const checks = rawChecks.map((c, i) =>
    parseCheck(c, service, rawChecks.length > 1 ? `service:${id}:${i + 1}` : `service:${id}`),
  );
  const ids = new Set<string>();
  for (const c of checks) {
    if (ids.has(c.checkId)) throw new RegistrationError(`Invalid check: duplicate CheckID "${c.checkId}"`);
    ids.add(c.checkId);
  }
  return { service, checks };
}
