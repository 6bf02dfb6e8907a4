// Per-service and per-instance options read from Consul tags, and the defaults a table is built with.
// Pure: a bad value becomes a warning string naming the service and the tag, never an exception, so
// one bad tag cannot take a service (or the table) out. Tags that are not ours are ignored: Consul
// tags are shared with other tools.
import type { ActiveCheckSpec, Algorithm, HashKey, HashSource, RetrySpec, UpstreamProtocol } from './types.js';
import { ALGORITHMS, UPSTREAM_PROTOCOLS } from './types.js';
import { grpcServiceNameProblem } from '../health/grpc-health.js';

export interface TableDefaults {
  readonly algorithm: Algorithm;
  /** used by chash when no `hash=` tag is given; absent: client IP */
  readonly hashKey?: HashKey;
  /** nginx max_fails, default 1 */
  readonly maxFails: number;
  /** nginx fail_timeout, default 10 s */
  readonly failTimeoutMs: number;
  readonly retry: RetrySpec;
  /** an active check every service gets unless its tags say otherwise */
  readonly check?: ActiveCheckSpec;
  /** true: only 'passing' instances; false: 'warning' ones too (only 'critical' dropped) */
  readonly passingOnly: boolean;
  /** panic threshold of services whose policy sets none; undefined = 50 %, 0 = off */
  readonly panicThresholdPercent?: number;
  /** --tcp-ports: the ports proto=tcp|tcp+sni services may be served on; undefined = none */
  readonly tcpPorts?: PortRange;
  /** --tls-listen ports: TLS terminates there, so a plain proto=tcp claim of one is refused (tcp+sni names pass through) */
  readonly tlsPorts?: readonly number[];
}

/** An inclusive port range (--tcp-ports 7000-7999, or one port). */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** "7000-7999", "6379"; undefined when malformed or outside 1-65535. */
export function parsePortRange(text: string): PortRange | undefined {
  const m = /^\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*$/.exec(text);
  if (!m) return undefined;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from < 1 || to > 65535 || to < from) return undefined;
  return { from, to };
}

export function inPortRange(range: PortRange | undefined, port: number): boolean {
  return range !== undefined && port >= range.from && port <= range.to;
}

export const DEFAULT_TABLE_DEFAULTS: TableDefaults = Object.freeze({
  algorithm: 'roundrobin',
  maxFails: 1,
  failTimeoutMs: 10_000,
  retry: Object.freeze({ tries: 3, timeoutMs: 0, onStatuses: Object.freeze([502, 503, 504]), nonIdempotent: false }),
  passingOnly: true,
});

/** Base of a check declared with `check=` when the defaults carry none (nginx_upstream_check_module-like). */
export const DEFAULT_ACTIVE_CHECK: ActiveCheckSpec = Object.freeze({
  type: 'http',
  path: '/',
  intervalMs: 2000,
  timeoutMs: 1000,
  rise: 2,
  fall: 3,
  expectStatuses: Object.freeze(expandStatusRange(200, 399)),
});

/** Service-level options found in tags; a field is undefined when no tag set it. */
export interface ServiceTagOptions {
  algorithm?: Algorithm;
  hashKey?: HashKey;
  maxFails?: number;
  failTimeoutMs?: number;
  /** `retries=N`: extra attempts after the first one, so RetrySpec.tries = N + 1 */
  retries?: number;
  checkType?: { type: 'http' | 'tcp' | 'grpc'; path: string; grpcService?: string };
  checkIntervalMs?: number;
  checkTimeoutMs?: number;
  rise?: number;
  fall?: number;
  expectStatuses?: number[];
  /** `proto=`; absent = http */
  protocol?: UpstreamProtocol;
  /** `proxy_protocol=v1|v2` */
  proxyProtocol?: 'v1' | 'v2';
  /** `tls_server_name=<name>` (proto=h2): the name verified in the servers' certificates */
  tlsServerName?: string;
  /** `tls_skip_verify=true|false` (proto=h2) */
  tlsSkipVerify?: boolean;
}

/** Instance-level options found in one instance's tags. */
export interface InstanceTagOptions {
  weight: number;
  backup: boolean;
  down: boolean;
}

const SERVICE_KEYS = new Set([
  'lb', 'hash', 'max_fails', 'fail_timeout', 'retries', 'check', 'check_interval', 'check_timeout', 'rise', 'fall',
  'check_expect', 'proto', 'proxy_protocol', 'tls_server_name', 'tls_skip_verify',
]);

/** A DNS name (RFC 1123 labels) or a `*.`-less host name: what a certificate's DNS SAN can name. */
const SERVER_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * The `key=value` tags of a service's instances whose key is in `keys`: the first value of each key
 * (in instance order, then tag order) with the tag it came from, in order of first appearance. A
 * later different value is a warning naming both. Shared by the routing options and the traffic
 * policy tags.
 */
export function firstTagValues(
  service: string,
  instancesTags: readonly (readonly string[])[],
  keys: ReadonlySet<string>,
  warnings: string[],
): Map<string, { readonly value: string; readonly tag: string }> {
  const seen = new Map<string, { value: string; tag: string }>();
  for (const tags of instancesTags) {
    for (const tag of tags) {
      const eq = tag.indexOf('=');
      if (eq <= 0) continue;
      const key = tag.slice(0, eq).trim();
      if (!keys.has(key)) continue;
      const value = tag.slice(eq + 1).trim();
      const first = seen.get(key);
      if (first === undefined) seen.set(key, { value, tag });
      else if (first.value !== value) warnings.push(`service ${service}: conflicting tag "${tag}" ignored, "${key}=${first.value}" wins`);
    }
  }
  return seen;
}

/**
 * Reads service options from the tags of all instances of a service. Precedence: instances are
 * visited in the order given (the builder sorts them by service ID) and the first value seen for a
 * key wins; a later, different value for the same key adds a "conflicting" warning.
 */
export function parseServiceTags(
  service: string,
  instancesTags: readonly (readonly string[])[],
  warnings: string[],
): ServiceTagOptions {
  const out: ServiceTagOptions = {};
  for (const [key, { value, tag }] of firstTagValues(service, instancesTags, SERVICE_KEYS, warnings)) {
    applyServiceTag(out, key, value, (why) => warnings.push(`service ${service}: tag "${tag}" ignored: ${why}`));
  }
  return out;
}

function applyServiceTag(out: ServiceTagOptions, key: string, value: string, warn: (why: string) => void): void {
  switch (key) {
    case 'lb': {
      if ((ALGORITHMS as readonly string[]).includes(value)) out.algorithm = value as Algorithm;
      else warn(`expected one of ${ALGORITHMS.join('|')}`);
      return;
    }
    case 'hash': {
      const key = parseHashKey(value);
      if (key) out.hashKey = key;
      else warn('expected header:<name>, cookie:<name>, ip or uri');
      return;
    }
    case 'max_fails': return setInt(value, 0, warn, (n) => { out.maxFails = n; });
    case 'retries': return setInt(value, 0, warn, (n) => { out.retries = n; });
    case 'rise': return setInt(value, 1, warn, (n) => { out.rise = n; });
    case 'fall': return setInt(value, 1, warn, (n) => { out.fall = n; });
    case 'fail_timeout': return setDuration(value, warn, (ms) => { out.failTimeoutMs = ms; });
    case 'check_interval': return setDuration(value, warn, (ms) => { out.checkIntervalMs = ms; }, 1, MAX_TIMER_MS);
    case 'check_timeout': return setDuration(value, warn, (ms) => { out.checkTimeoutMs = ms; }, 1, MAX_TIMER_MS);
    case 'check': {
      if (value === 'tcp') out.checkType = { type: 'tcp', path: '/' };
      else if (value === 'http') out.checkType = { type: 'http', path: '/' };
      else if (value.startsWith('http:/')) {
        const path = value.slice(5);
        const bad = checkPathProblem(path);
        if (bad) warn(bad);
        else out.checkType = { type: 'http', path };
      } else if (value === 'grpc' || value.startsWith('grpc:')) {
        const service = value === 'grpc' ? '' : value.slice(5);
        const bad = grpcServiceNameProblem(service);
        if (bad) warn(bad);
        else out.checkType = { type: 'grpc', path: '/', grpcService: service };
      } else warn('expected http:/<path>, http, tcp, grpc or grpc:<service>');
      return;
    }
    case 'proto': {
      // one parse of proto= for every protocol (h2 and l4 read the field, not the tag)
      const p = value.toLowerCase();
      if ((UPSTREAM_PROTOCOLS as readonly string[]).includes(p)) out.protocol = p as UpstreamProtocol;
      else warn(`expected one of ${UPSTREAM_PROTOCOLS.join('|')}`);
      return;
    }
    case 'proxy_protocol': {
      if (value === 'v1' || value === 'v2') out.proxyProtocol = value;
      else warn('expected v1 or v2');
      return;
    }
    case 'tls_server_name': {
      const name = value.toLowerCase();
      if (SERVER_NAME.test(name)) out.tlsServerName = name;
      else warn('expected a DNS name such as api.internal');
      return;
    }
    case 'tls_skip_verify': {
      if (value === 'true' || value === 'false') out.tlsSkipVerify = value === 'true';
      else warn('expected true or false');
      return;
    }
    case 'check_expect': {
      const statuses = parseStatusList(value);
      if (statuses) out.expectStatuses = statuses;
      else warn('expected status codes or ranges such as 200-299,304');
      return;
    }
  }
}

/**
 * Reads `weight=N`, `backup` and `down` from one instance's tags. The weight may also come from service
 * Meta `weight` (where registrator's SERVICE_WEIGHT puts it); a `weight=` tag wins over it.
 */
export function parseInstanceTags(service: string, serviceId: string, tags: readonly string[], warnings: string[], meta?: Readonly<Record<string, string>>): InstanceTagOptions {
  const out: InstanceTagOptions = { weight: 1, backup: false, down: false };
  const metaWeight = meta !== undefined && Object.prototype.hasOwnProperty.call(meta, 'weight') ? meta.weight : undefined;
  if (metaWeight !== undefined) {
    const n = typeof metaWeight === 'string' ? parseNonNegativeInt(metaWeight.trim()) : undefined;
    if (n !== undefined && n >= 1) out.weight = n;
    else warnings.push(`service ${service} instance ${serviceId}: Meta weight ${JSON.stringify(String(metaWeight)).slice(0, 40)} ignored: expected an integer >= 1`);
  }
  for (const tag of tags) {
    if (tag === 'backup') out.backup = true;
    else if (tag === 'down') out.down = true;
    else if (tag.startsWith('weight=')) {
      const n = parseNonNegativeInt(tag.slice(7).trim());
      if (n !== undefined && n >= 1) out.weight = n;
      else warnings.push(`service ${service} instance ${serviceId}: tag "${tag}" ignored: expected an integer >= 1`);
    }
  }
  return out;
}

/** Combines the defaults and the tag options into the upstream's check (undefined = no active check). */
export function resolveCheck(
  service: string,
  opts: ServiceTagOptions,
  defaults: TableDefaults,
  warnings: string[],
): ActiveCheckSpec | undefined {
  const tuned = opts.checkIntervalMs !== undefined || opts.checkTimeoutMs !== undefined || opts.rise !== undefined ||
    opts.fall !== undefined || opts.expectStatuses !== undefined;
  const base = defaults.check ?? (opts.checkType ? DEFAULT_ACTIVE_CHECK : undefined);
  if (!base) {
    if (tuned) warnings.push(`service ${service}: check_* / rise / fall tags ignored: no check= tag and no default check`);
    return undefined;
  }
  return {
    type: opts.checkType?.type ?? base.type,
    path: opts.checkType?.path ?? base.path,
    ...(opts.checkType?.type === 'grpc' ? { grpcService: opts.checkType.grpcService ?? '' } : {}),
    intervalMs: opts.checkIntervalMs ?? base.intervalMs,
    timeoutMs: opts.checkTimeoutMs ?? base.timeoutMs,
    rise: opts.rise ?? base.rise,
    fall: opts.fall ?? base.fall,
    expectStatuses: opts.expectStatuses ?? base.expectStatuses,
  };
}

const MAX_CHECK_PATH = 1024;
// RFC 3986 path and query characters (percent-escapes included); anything else (space, control,
// non-ASCII, "#") makes http.request throw or sends something other than what the tag says
const CHECK_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;

/** Why a check path cannot be sent as a request target; undefined when it can. */
export function checkPathProblem(path: string): string | undefined {
  if (path.length > MAX_CHECK_PATH) return `check path longer than ${MAX_CHECK_PATH} characters`;
  if (!CHECK_PATH.test(path)) {
    const bad = [...path].find((c) => !/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]/.test(c));
    return bad === undefined ? 'check path must start with "/"' : `check path contains ${JSON.stringify(bad)} (escape it as %XX)`;
  }
  if (/%(?![0-9A-Fa-f]{2})/.test(path)) return 'check path has a "%" not followed by two hex digits';
  return undefined;
}

// an HTTP header name is an RFC 9110 token
const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function parseHashKey(value: string): HashKey | undefined {
  if (value === 'ip' || value === 'uri') return { source: value };
  const colon = value.indexOf(':');
  if (colon <= 0) return undefined;
  const source = value.slice(0, colon) as HashSource;
  const name = value.slice(colon + 1).trim();
  if (!name || name.length > 256 || !HEADER_TOKEN.test(name)) return undefined;
  // Node lower-cases incoming header names; cookie names are case-sensitive.
  if (source === 'header') return { source, name: name.toLowerCase() };
  if (source === 'cookie') return { source, name };
  return undefined;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10s", "500ms", "2m", "1h", or a bare number of seconds (nginx). Undefined when malformed. */
export function parseDurationMs(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 's'];
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

export function parseNonNegativeInt(text: string): number | undefined {
  if (!/^\d{1,9}$/.test(text)) return undefined;
  return Number(text);
}

/**
 * "200-299,304" -> [200..299, 304]; classes as nginx_upstream_check_module writes them ("2xx" or
 * "http_2xx") are accepted too. Undefined when malformed or outside 100-599.
 */
export function parseStatusList(text: string): number[] | undefined {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const cls = /^\s*(?:http_)?([1-5])xx\s*$/i.exec(part);
    if (cls) {
      for (const s of expandStatusRange(Number(cls[1]) * 100, Number(cls[1]) * 100 + 99)) out.add(s);
      continue;
    }
    const m = /^\s*(\d{3})(?:\s*-\s*(\d{3}))?\s*$/.exec(part);
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 100 || hi > 599 || hi < lo) return undefined;
    for (const s of expandStatusRange(lo, hi)) out.add(s);
  }
  return out.size > 0 ? [...out].sort((a, b) => a - b) : undefined;
}

function expandStatusRange(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let s = lo; s <= hi; s++) out.push(s);
  return out;
}

function setInt(value: string, min: number, warn: (why: string) => void, set: (n: number) => void): void {
  const n = parseNonNegativeInt(value);
  if (n === undefined || n < min) warn(`expected an integer >= ${min}`);
  else set(n);
}

/** Node fires a timer longer than 2^31-1 ms after 1 ms (check_timeout=999h would fail every probe). */
const MAX_TIMER_MS = 2_147_483_647;

function setDuration(value: string, warn: (why: string) => void, set: (ms: number) => void, min = 0, max = Infinity): void {
  const ms = parseDurationMs(value);
  if (ms === undefined || ms < min) warn('expected a duration such as 10s, 500ms or 2m');
  else if (ms > max) warn('longer than a timer can wait (24 days)');
  else set(ms);
}
