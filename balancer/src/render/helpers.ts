// Template helpers mirroring consul-template's vocabulary, as Handlebars helpers. They read Consul
// answers from the RenderData of one render and record every dependency they touch in a
// DependencyRecorder, so the same pass both renders and discovers what the template needs.
// No I/O, no globals: a fresh helper set is made for every render.
import type { HelperOptions } from 'handlebars';
import { checkHostPort, quoteForReason } from '../../../common/host-port.js';
import { parseUrlprefix } from '../routing/build-table.js';
import { parseServiceTags, type ServiceTagOptions } from '../routing/tag-options.js';
import { unsafeWordReason } from './conf-word.js';
import { protocolFromUrlprefixOptions, tcpListensOf } from '../l4/tcp-tags.js';
import { buildTcpRoutes } from '../l4/tcp-routes.js';
import type { TcpListen } from '../routing/types.js';
import { parsePolicyTags } from '../policy/policy-spec.js';
import {
  depKey, type Dependency, type DependencyValue, type KvPairView, type RenderData, type ServiceInstanceView,
  type ServiceSummaryView,
} from './dependencies.js';

export class TemplateFunctionError extends Error {
  readonly code = 'ERR_TEMPLATE_FUNCTION';
}

/** What one render touched: every dependency in first-use order, those without data yet, absent keys. */
export class DependencyRecorder {
  readonly deps = new Map<string, Dependency>();
  readonly missing = new Map<string, Dependency>();
  /** `key` on a key that does not exist: consul-template blocks the render until it does */
  readonly absentKeys = new Set<string>();
  /** values left out because they cannot be written safely (each names the value and why) */
  readonly warnings = new Set<string>();

  use(data: RenderData, dep: Dependency): DependencyValue | undefined {
    const k = depKey(dep);
    if (!this.deps.has(k)) this.deps.set(k, dep);
    const v = data.values.get(k);
    if (v === undefined) this.missing.set(k, dep);
    return v;
  }
}

type HealthStatus = ServiceInstanceView['Status'];
const HEALTH_STATUSES: readonly HealthStatus[] = ['passing', 'warning', 'critical', 'maintenance'];

export interface ServiceQuery {
  readonly name: string;
  readonly tag?: string;
  /** undefined = any status */
  readonly statuses?: readonly HealthStatus[];
}

/**
 * consul-template's service query: "[tag.]name[|filter]" where filter is "any" or a comma list of
 * statuses; default "passing". The tag is everything before the last dot (names cannot contain dots,
 * as in consul-template). `tagOverride` / `filterOverride` come from the hash (`tag=`) or the older
 * second positional argument (`service "web" "any"`).
 */
export function parseServiceQuery(spec: string, tagOverride?: string, filterOverride?: string): ServiceQuery {
  if (typeof spec !== 'string' || spec.trim() === '') throw new TemplateFunctionError('service: expected a service name such as "web", "v1.web" or "web|any"');
  let rest = spec.trim();
  let filter = filterOverride;
  const bar = rest.indexOf('|');
  if (bar >= 0) {
    if (filter === undefined) filter = rest.slice(bar + 1);
    rest = rest.slice(0, bar);
  }
  if (rest.includes('@')) throw new TemplateFunctionError(`service "${spec}": datacenters (@dc) are not supported`);
  const dot = rest.lastIndexOf('.');
  const name = dot >= 0 ? rest.slice(dot + 1) : rest;
  const tag = tagOverride ?? (dot >= 0 ? rest.slice(0, dot) : undefined);
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new TemplateFunctionError(`service "${spec}": invalid service name "${name}"`);
  if (tag !== undefined && tag === '') throw new TemplateFunctionError(`service "${spec}": empty tag`);
  return { name, tag, statuses: parseHealthFilter(spec, filter) };
}

function parseHealthFilter(spec: string, filter: string | undefined): readonly HealthStatus[] | undefined {
  if (filter === undefined || filter.trim() === '') return ['passing'];
  const parts = filter.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (parts.includes('any')) {
    if (parts.length > 1) throw new TemplateFunctionError(`service "${spec}": "any" cannot be combined with other statuses`);
    return undefined;
  }
  for (const p of parts) {
    if (!(HEALTH_STATUSES as readonly string[]).includes(p)) {
      throw new TemplateFunctionError(`service "${spec}": unknown health filter "${p}" (any, passing, warning, critical, maintenance)`);
    }
  }
  return parts as HealthStatus[];
}

/** "config/app" -> "config/app/"; "" stays "" (the whole store). A leading "/" is dropped. */
export function normalizePrefix(prefix: string): string {
  const p = String(prefix).replace(/^\/+/, '');
  return p === '' || p.endsWith('/') ? p : `${p}/`;
}

function isOptions(x: unknown): x is HelperOptions {
  return typeof x === 'object' && x !== null && 'hash' in x && ('fn' in x || 'data' in x || 'name' in x);
}

/** Splits helper arguments from Handlebars' trailing options object. */
function split(args: unknown[]): { pos: unknown[]; hash: Record<string, unknown> } {
  const last = args[args.length - 1];
  if (isOptions(last)) return { pos: args.slice(0, -1), hash: (last.hash ?? {}) as Record<string, unknown> };
  return { pos: args, hash: {} };
}

function asList(helper: string, value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value;
  throw new TemplateFunctionError(`${helper}: expected a list, got ${typeof value}`);
}

function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = a === undefined || a === null ? '' : String(a);
  const sb = b === undefined || b === null ? '' : String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function fieldOf(item: unknown, field: string): unknown {
  let cur: unknown = item;
  for (const part of field.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = Object.prototype.hasOwnProperty.call(cur, part) ? (cur as Record<string, unknown>)[part] : undefined;
  }
  return cur;
}

export { unsafeWordReason } from './conf-word.js';

const shown = (value: string): string => quoteForReason(value);

// no dots: service "a.b" reads as tag a of service b (consul-template's query syntax)
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** The helper set for one render over `data`, recording into `rec`. */
export function makeHelpers(data: RenderData, rec: DependencyRecorder): Record<string, (...args: unknown[]) => unknown> {
  // Consul text reaches templates only after these checks: a service whose name is not a plain word,
  // an instance whose address or port is not one, is left out with a warning (its siblings stay)
  const services = (): readonly ServiceSummaryView[] => {
    const v = rec.use(data, { kind: 'services' });
    if (v?.kind !== 'services') return [];
    return v.value.filter((s) => {
      if (typeof s.Name === 'string' && SERVICE_NAME.test(s.Name)) return true;
      rec.warnings.add(`service ${shown(String(s.Name))} left out: not a valid service name`);
      return false;
    });
  };
  const usableInstance = (i: ServiceInstanceView): boolean => {
    const r = checkHostPort(i.Address, i.Port);
    if (r.ok) return true;
    rec.warnings.add(`service ${shown(String(i.Name))} instance ${shown(String(i.ID))} left out: ${r.reason}`);
    return false;
  };

  const service = (...args: unknown[]): readonly ServiceInstanceView[] => {
    const { pos, hash } = split(args);
    const filterArg = pos[1] === undefined ? (hash.filter as string | undefined) : String(pos[1]);
    const tagArg = hash.tag === undefined ? undefined : String(hash.tag);
    const q = parseServiceQuery(pos[0] as string, tagArg, filterArg);
    const v = rec.use(data, q.tag === undefined ? { kind: 'service', name: q.name } : { kind: 'service', name: q.name, tag: q.tag });
    if (v?.kind !== 'service') return [];
    const statuses = q.statuses;
    return (statuses === undefined ? v.value : v.value.filter((i) => statuses.includes(i.Status))).filter(usableInstance);
  };

  const readKey = (path: unknown): { known: boolean; value: string | null } => {
    if (typeof path !== 'string' || path === '') throw new TemplateFunctionError('key: expected a key path');
    const p = path.replace(/^\/+/, '');
    const v = rec.use(data, { kind: 'key', path: p });
    if (v?.kind !== 'key') return { known: false, value: null };
    return { known: true, value: v.value };
  };

  const kvList = (helper: string, prefix: unknown, recursive: boolean): KvPairView[] => {
    if (typeof prefix !== 'string') throw new TemplateFunctionError(`${helper}: expected a key prefix`);
    const p = normalizePrefix(prefix);
    const v = rec.use(data, { kind: 'prefix', prefix: p });
    if (v?.kind !== 'prefix') return [];
    return v.value.filter((e) => e.Key !== '' && !e.Key.endsWith('/') && (recursive || !e.Key.includes('/')));
  };

  // the service's `proto=` as dynamic mode reads it; '' for plain HTTP
  const protoOf = (list: readonly unknown[]): string => {
    const tags = list.filter((t): t is string => typeof t === 'string');
    const warnings: string[] = [];
    const o = parseServiceTags('', [tags.filter((t) => t.startsWith('proto='))], warnings);
    for (const w of warnings) rec.warnings.add(`proto tag dropped: ${w.slice(w.indexOf(' ignored: ') + 10)}`);
    const p = o.protocol ?? protocolFromUrlprefixOptions([tags]);
    return p === undefined || p === 'http' ? '' : p;
  };

  return {
    services: () => services(),
    service,
    key: (path) => {
      // Handlebars looks a helper up before data for `{{@key}}`: answer it the way #each would.
      if (isOptions(path)) return (path.data as { key?: unknown } | undefined)?.key ?? '';
      const r = readKey(path);
      if (r.known && r.value === null) rec.absentKeys.add(String(path));
      return r.value ?? '';
    },
    keyOrDefault: (path, def) => {
      const r = readKey(path);
      return r.value ?? (typeof def === 'string' ? def : def === undefined || isOptions(def) ? '' : String(def));
    },
    ls: (prefix) => kvList('ls', prefix, false),
    tree: (prefix) => kvList('tree', prefix, true),
    env: (name) => (typeof name === 'string' ? data.env[name] ?? '' : ''),
    envOrDefault: (name, def) => {
      const v = typeof name === 'string' ? data.env[name] : undefined;
      return v === undefined || v === '' ? (isOptions(def) ? '' : String(def ?? '')) : v;
    },
    byTag: (list) => {
      const out: Record<string, ServiceInstanceView[]> = {};
      for (const item of asList('byTag', list) as ServiceInstanceView[]) {
        for (const tag of item?.Tags ?? []) (out[tag] ??= []).push(item);
      }
      const sorted: Record<string, ServiceInstanceView[]> = {};
      for (const tag of Object.keys(out).sort()) sorted[tag] = out[tag];
      return sorted;
    },
    sortBy: (...args) => {
      const { pos } = split(args);
      const field = pos[1];
      if (typeof field !== 'string' || field === '') throw new TemplateFunctionError('sortBy: expected a field name, e.g. (sortBy list "Port")');
      return [...asList('sortBy', pos[0])].sort((a, b) => compareValues(fieldOf(a, field), fieldOf(b, field)));
    },
    sort: (list) => [...asList('sort', list)].sort(compareValues),
    join: (...args) => {
      const { pos } = split(args);
      const sep = pos[1] === undefined ? '' : String(pos[1]);
      return asList('join', pos[0]).map((x) => String(x)).join(sep);
    },
    split: (...args) => {
      const { pos } = split(args);
      const s = pos[0] === undefined || pos[0] === null ? '' : String(pos[0]);
      return s === '' ? [] : s.split(String(pos[1] ?? ','));
    },
    contains: (...args) => {
      const { pos } = split(args);
      return asList('contains', pos[0]).includes(pos[1]);
    },
    eq: (...args) => {
      const { pos } = split(args);
      return pos[0] === pos[1];
    },
    ne: (...args) => {
      const { pos } = split(args);
      return pos[0] !== pos[1];
    },
    /**
     * value of a "name=value" tag, or the default (consul-template users write this with
     * regexReplaceAll); a value that is not one safe config word is dropped with a warning
     */
    tagValue: (...args) => {
      const { pos } = split(args);
      const name = String(pos[1] ?? '');
      for (const t of asList('tagValue', pos[0])) {
        if (typeof t === 'string' && t.startsWith(`${name}=`)) {
          const value = t.slice(name.length + 1);
          const why = unsafeWordReason(value);
          if (why === undefined) return value;
          rec.warnings.add(`tag ${shown(t)} dropped: ${why}`);
        }
      }
      return pos[2] === undefined ? '' : pos[2];
    },
    /**
     * a service option tag checked as dynamic mode checks it (lb=, hash=, max_fails=, fail_timeout=,
     * retries=, proxy_protocol=), in canonical form; '' (and a warning) when absent-or-invalid, so `{{#if}}` drops it
     */
    tagOption: (...args) => {
      const { pos } = split(args);
      const key = String(pos[1] ?? '');
      const tags = asList('tagOption', pos[0]).filter((t): t is string => typeof t === 'string' && t.startsWith(`${key}=`));
      if (tags.length === 0) return '';
      const warnings: string[] = [];
      const o = parseServiceTags('', [tags.slice(0, 1)], warnings);
      for (const w of warnings) rec.warnings.add(`tag ${shown(tags[0])} dropped: ${w.slice(w.indexOf(' ignored: ') + 10)}`);
      return canonicalOption(key, o);
    },
    /**
     * the service's `proto=` as dynamic mode reads it (a proto= tag, else fabio's in-tag
     * `urlprefix-:<port> proto=tcp`); '' for plain HTTP, so `{{#if}}` drops it
     */
    serviceProto: (...args) => {
      const { pos } = split(args);
      return protoOf(asList('serviceProto', pos[0]));
    },
    /**
     * every TCP port the services claim, as the workers serve them (l4/tcp-routes.ts: first claim by
     * name wins, a plain claim on an SNI port is refused): [{Port, Service}] for proto=tcp, [{Port,
     * Names: [{Name, Service}]}] for proto=tcp+sni, by port; names and services are checked words
     */
    tcpRoutes: () => {
      const upstreams: { name: string; protocol: 'tcp' | 'tcp+sni'; listen: TcpListen[] }[] = [];
      for (const s of services()) {
        const tags = asList('tcpRoutes', s.Tags).filter((t): t is string => typeof t === 'string');
        const protocol = protoOf(tags);
        if (protocol !== 'tcp' && protocol !== 'tcp+sni') continue;
        const warnings: string[] = [];
        const listen = tcpListensOf(s.Name, protocol, [tags], { from: 1, to: 65535 }, warnings);
        for (const w of warnings) rec.warnings.add(w);
        upstreams.push({ name: s.Name, protocol, listen });
      }
      const routes = buildTcpRoutes(upstreams, { from: 1, to: 65535 });
      for (const w of routes.warnings) rec.warnings.add(w);
      return [...routes.ports.values()].sort((a, b) => a.port - b.port).map((r) => (r.service !== undefined ? { Port: r.port, Service: r.service } : {
        Port: r.port,
        Names: [...(r.byName ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([Name, Service]) => ({ Name, Service })),
      }));
    },
    /**
     * the `listen` words of a proto=tcp|tcp+sni service ("6379", "db.example.com:6443") from its
     * urlprefix- tags, checked as dynamic mode checks them; --tcp-ports is applied by the workers
     */
    tcpListens: (...args) => {
      const { pos } = split(args);
      const tags = asList('tcpListens', pos[0]).filter((t): t is string => typeof t === 'string');
      const proto = pos[1] === 'tcp' || pos[1] === 'tcp+sni' ? pos[1] : undefined;
      if (proto === undefined) return [];
      const warnings: string[] = [];
      const listens = tcpListensOf('', proto, [tags], { from: 1, to: 65535 }, warnings);
      for (const w of warnings) rec.warnings.add(w.replace(/^service : /, ''));
      return listens.map((l) => (l.sni !== undefined ? `${l.sni}:${l.port}` : String(l.port)));
    },
    /**
     * an access or rate tag (allow=, deny=, rate=, burst=, rate_by=) checked as dynamic mode checks it
     * (policy/policy-spec.ts), in the config's spelling; '' (and a warning) when absent or invalid
     */
    policyOption: (...args) => {
      const { pos } = split(args);
      const key = String(pos[1] ?? '');
      if (!(POLICY_OPTION_KEYS as readonly string[]).includes(key)) throw new TemplateFunctionError(`policyOption: expected one of ${POLICY_OPTION_KEYS.join(', ')}`);
      const tags = asList('policyOption', pos[0]).filter((t): t is string => typeof t === 'string' && POLICY_OPTION_KEYS.some((k) => t.startsWith(`${k}=`)));
      if (!tags.some((t) => t.startsWith(`${key}=`))) return '';
      const warnings: string[] = [];
      const doc = parsePolicyTags('', [tags], warnings);
      for (const w of warnings) {
        const m = / tag ("[^]*") ignored: ([^]*)$/.exec(w);
        if (m && m[1].startsWith(`"${key}=`)) rec.warnings.add(`tag ${m[1]} dropped: ${m[2]}`);
      }
      const r = doc?.rateLimit;
      switch (key) {
        case 'allow':
        case 'deny': return doc?.access?.[key]?.map((c) => `ip:${c}`).join(',') ?? '';
        // the tag's own spelling ("6000/m"): parsed again by the config, to the same rate
        case 'rate': return r === undefined ? '' : tags.find((t) => t.startsWith('rate='))!.slice(5).replace(/\s+/g, '');
        case 'burst': return r?.burst === undefined ? '' : String(r.burst);
        default: return r?.by === undefined ? '' : r.by.source === 'ip' ? 'ip' : `header:${r.by.name}`;
      }
    },
    /** "host/path" of a urlprefix- tag checked as dynamic mode checks it; '' (and a warning) when unusable */
    routeOf: (...args) => {
      const { pos } = split(args);
      const t = typeof pos[0] === 'string' ? pos[0] : '';
      if (!t.startsWith('urlprefix-')) return '';
      const warnings: string[] = [];
      const route = parseUrlprefix('', t, warnings);
      if (!route) {
        const w = warnings.find((x) => x.includes(' ignored: ')) ?? 'unusable route';
        rec.warnings.add(`tag ${shown(t)} dropped: ${w.slice(w.indexOf(' ignored: ') + 10)}`);
        return '';
      }
      const spec = `${route.host}${route.pathPrefix}`;
      const why = unsafeWordReason(spec);
      if (why !== undefined) {
        rec.warnings.add(`tag ${shown(t)} dropped: ${why}`);
        return '';
      }
      return spec;
    },
    /** integer value of a "name=N" tag when >= min, else the default (and a warning when present but bad) */
    tagInt: (...args) => {
      const { pos } = split(args);
      const name = String(pos[1] ?? '');
      const def = pos[2] === undefined ? '' : pos[2];
      const min = typeof pos[3] === 'number' ? pos[3] : 0;
      for (const t of asList('tagInt', pos[0])) {
        if (typeof t === 'string' && t.startsWith(`${name}=`)) {
          const text = t.slice(name.length + 1).trim();
          if (/^\d{1,9}$/.test(text) && Number(text) >= min) return Number(text);
          rec.warnings.add(`tag ${shown(t)} dropped: expected an integer >= ${min}`);
          return def;
        }
      }
      return def;
    },
    /** "host:port" with IPv6 in brackets (the renderer only lets checked addresses through) */
    hostPort: (...args) => {
      const { pos } = split(args);
      const host = String(pos[0] ?? '');
      return host.includes(':') ? `[${host}]:${String(pos[1])}` : `${host}:${String(pos[1])}`;
    },
    /** the value when it is one safe config word, else '' and a warning (use inside {{#if}}) */
    confWord: (...args) => {
      const { pos } = split(args);
      const value = pos[0] === undefined || pos[0] === null ? '' : String(pos[0]);
      if (value === '') return '';
      const why = unsafeWordReason(value);
      if (why === undefined) return value;
      rec.warnings.add(`value ${shown(value)} dropped: ${why}`);
      return '';
    },
    /** true when some item of the list (instances) lacks the tag: nginx refuses an upstream of backup servers only */
    anyWithoutTag: (...args) => {
      const { pos } = split(args);
      const tag = String(pos[1] ?? '');
      return asList('anyWithoutTag', pos[0]).some((i) => !asList('anyWithoutTag', (i as { Tags?: unknown } | null)?.Tags ?? []).includes(tag));
    },
    hasPrefix: (...args) => {
      const { pos } = split(args);
      return typeof pos[0] === 'string' && pos[0].startsWith(String(pos[1] ?? ''));
    },
    trimPrefix: (...args) => {
      const { pos } = split(args);
      const s = pos[0] === undefined || pos[0] === null ? '' : String(pos[0]);
      const p = String(pos[1] ?? '');
      return s.startsWith(p) ? s.slice(p.length) : s;
    },
    toLower: (s) => (typeof s === 'string' ? s.toLowerCase() : ''),
    toUpper: (s) => (typeof s === 'string' ? s.toUpperCase() : ''),
  };
}

const POLICY_OPTION_KEYS = ['allow', 'deny', 'rate', 'burst', 'rate_by'] as const;

function canonicalOption(key: string, o: ServiceTagOptions): string {
  switch (key) {
    case 'lb': return o.algorithm ?? '';
    case 'hash': {
      const h = o.hashKey;
      if (!h) return '';
      return h.source === 'header' || h.source === 'cookie' ? `${h.source}:${h.name}` : h.source;
    }
    case 'max_fails': return o.maxFails === undefined ? '' : String(o.maxFails);
    case 'retries': return o.retries === undefined ? '' : String(o.retries);
    case 'fail_timeout': return o.failTimeoutMs === undefined ? '' : `${o.failTimeoutMs}ms`;
    case 'proxy_protocol': return o.proxyProtocol ?? '';
    default: return '';
  }
}
