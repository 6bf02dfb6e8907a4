// The pure table build: a Consul catalog snapshot plus admin-API upstreams -> one frozen RouteTable.
//
// Rules (documented here because producers and operators rely on them):
// - One upstream per Consul service, named after the service. Instances are filtered by health:
//   passingOnly keeps only 'passing'; otherwise only 'critical' ones are dropped. A service whose
//   instances are all filtered out keeps an upstream with no servers, so its Host answers "no healthy
//   instance" (502) rather than "unknown host" (404).
// - Service options (lb, hash, max_fails, fail_timeout, retries, check*, rise, fall) come from the tags
//   of all its instances, healthy or not, so options do not flap with health. Instances are visited in
//   service-ID order and the first value for a key wins (see parseServiceTags).
// - Routes come from `urlprefix-` tags (fabio syntax) of all instances, for the same reason. Fabio's
//   route options after a space (e.g. `strip=`) are not supported and are ignored with a warning.
//   When two services claim the same host+path, the service whose name sorts first keeps it.
// - Admin-API upstreams replace Consul services of the same name entirely (servers and options);
//   routes from the Consul service's tags keep pointing at the name, so they lead to the admin upstream.
// - Two instances with the same address:port in one service: the first by service ID is kept.
import type { CatalogInstance, CatalogSnapshot, Route, RouteTable, ServerSpec, UpstreamSpec } from './types.js';
import type { TableDefaults } from './tag-options.js';
import { parseInstanceTags, parseServiceTags, resolveCheck } from './tag-options.js';
import { serverId } from './server-list.js';
import { compareRoutes, deepFreeze, tableVersion } from './table-version.js';
import { withPolicy, type PolicyOverrides } from '../policy/apply-policy.js';
import { withHttpsPolicy } from '../tls/https-policy.js';

export interface BuildTableInput {
  readonly snapshot: CatalogSnapshot;
  readonly adminUpstreams: Readonly<Record<string, UpstreamSpec>>;
  readonly defaults: TableDefaults;
  /** traffic policies from the admin API and Consul KV (tags are read here) */
  readonly policies?: PolicyOverrides;
}

export interface BuildTableResult {
  readonly table: RouteTable;
  readonly warnings: string[];
}

const URLPREFIX = 'urlprefix-';

export function buildRouteTable(input: BuildTableInput): BuildTableResult {
  const { snapshot, adminUpstreams, defaults } = input;
  const warnings: string[] = [];
  const upstreams: Record<string, UpstreamSpec> = {};
  const routes: Route[] = [];
  for (const service of Object.keys(snapshot.services).sort()) {
    const instances = [...snapshot.services[service]].sort((a, b) => cmp(a.serviceId, b.serviceId));
    routes.push(...routesOf(service, instances, warnings));
    if (Object.hasOwn(adminUpstreams, service)) continue;
    upstreams[service] = withPolicy(withHttpsPolicy(consulUpstream(service, instances, defaults, warnings), service, instances, warnings), instances, input.policies, defaults.panicThresholdPercent, warnings);
  }
  for (const name of Object.keys(adminUpstreams)) upstreams[name] = withPolicy(adminUpstreams[name], [], input.policies, defaults.panicThresholdPercent, warnings);
  return { table: tableFromUpstreams(upstreams, dedupeRoutes(routes, warnings)), warnings };
}

function consulUpstream(service: string, instances: readonly CatalogInstance[], defaults: TableDefaults, warnings: string[]): UpstreamSpec {
  const opts = parseServiceTags(service, instances.map((i) => i.tags), warnings);
  const algorithm = opts.algorithm ?? defaults.algorithm;
  let hashKey = opts.hashKey ?? defaults.hashKey;
  if (algorithm === 'chash' && !hashKey) hashKey = { source: 'ip' };
  const maxFails = opts.maxFails ?? defaults.maxFails;
  const failTimeoutMs = opts.failTimeoutMs ?? defaults.failTimeoutMs;
  const check = resolveCheck(service, opts, defaults, warnings);
  const retry = opts.retries === undefined ? defaults.retry : { ...defaults.retry, tries: opts.retries + 1 };

  const servers: ServerSpec[] = [];
  const seen = new Set<string>();
  for (const inst of instances) {
    if (inst.status === 'critical' || (defaults.passingOnly && inst.status !== 'passing')) continue;
    const id = serverId(inst.address, inst.port);
    if (seen.has(id)) {
      warnings.push(`service ${service} instance ${inst.serviceId}: duplicate address ${id} ignored`);
      continue;
    }
    seen.add(id);
    const it = parseInstanceTags(service, inst.serviceId, inst.tags, warnings, inst.meta);
    const zone = inst.meta.zone;
    servers.push({
      id,
      host: inst.address,
      port: inst.port,
      weight: it.weight,
      maxFails,
      failTimeoutMs,
      down: it.down,
      backup: it.backup,
      node: inst.node,
      ...(zone ? { zone } : {}),
      serviceId: inst.serviceId,
    });
  }
  return {
    name: service,
    algorithm,
    ...(hashKey ? { hashKey } : {}),
    servers,
    ...(check ? { check } : {}),
    retry,
    origin: 'consul',
  };
}

function routesOf(service: string, instances: readonly CatalogInstance[], warnings: string[]): Route[] {
  const out: Route[] = [];
  const seen = new Set<string>();
  for (const inst of instances) {
    for (const tag of inst.tags) {
      if (!tag.startsWith(URLPREFIX) || seen.has(tag)) continue;
      seen.add(tag);
      const route = parseUrlprefix(service, tag, warnings);
      if (route) out.push(route);
    }
  }
  return out;
}

/** `urlprefix-/path`, `urlprefix-host/`, `urlprefix-host/path`, `urlprefix-host` (= host/). */
export function parseUrlprefix(service: string, tag: string, warnings: string[]): Route | undefined {
  let spec = tag.slice(URLPREFIX.length).trim();
  const space = spec.search(/\s/);
  if (space >= 0) {
    warnings.push(`service ${service}: tag "${tag}": route options "${spec.slice(space + 1).trim()}" not supported, ignored`);
    spec = spec.slice(0, space);
  }
  if (!spec) {
    warnings.push(`service ${service}: tag "${tag}" ignored: empty route`);
    return undefined;
  }
  const slash = spec.indexOf('/');
  const hostPart = slash < 0 ? spec : spec.slice(0, slash);
  const pathPrefix = slash < 0 ? '/' : spec.slice(slash);
  const host = normalizeRouteHost(hostPart);
  if (host === undefined) {
    warnings.push(`service ${service}: tag "${tag}" ignored: bad host "${hostPart}"`);
    return undefined;
  }
  return { host, pathPrefix, upstream: service };
}

/** Lower-cased host without port; '' for any host; undefined when malformed. */
function normalizeRouteHost(host: string): string | undefined {
  if (!host) return '';
  let h = host.toLowerCase();
  if (h.startsWith('[')) {
    const close = h.indexOf(']');
    if (close < 0) return undefined;
    return h.slice(0, close + 1);
  }
  const colon = h.indexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  return /^[a-z0-9*._-]+$/.test(h) ? h : undefined;
}

function dedupeRoutes(routes: Route[], warnings: string[]): Route[] {
  const byKey = new Map<string, Route>();
  for (const r of routes) {
    const key = `${r.host}\u0000${r.pathPrefix}`;
    const kept = byKey.get(key);
    if (!kept) byKey.set(key, r);
    else if (kept.upstream !== r.upstream) {
      warnings.push(`route ${r.host || '*'}${r.pathPrefix}: claimed by ${kept.upstream} and ${r.upstream}; ${kept.upstream} keeps it`);
    }
  }
  return [...byKey.values()];
}

/**
 * Freeze + version for any producer of tables (admin-only tables, reload-mode config files): upstream
 * keys and routes are put in a canonical order, servers sorted by id, everything deep-frozen.
 */
export function tableFromUpstreams(upstreams: Readonly<Record<string, UpstreamSpec>>, routes: readonly Route[]): RouteTable {
  const ordered: Record<string, UpstreamSpec> = {};
  for (const name of Object.keys(upstreams).sort()) {
    const u = upstreams[name];
    ordered[name] = { ...u, servers: [...u.servers].sort((a, b) => cmp(a.id, b.id)) };
  }
  const sortedRoutes = [...routes].sort(compareRoutes);
  return deepFreeze({ version: tableVersion(ordered, sortedRoutes), upstreams: ordered, routes: sortedRoutes });
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
