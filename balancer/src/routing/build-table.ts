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
// - Each instance is validated (host, integer port 1-65535, string tags): a bad one is skipped with a
//   warning naming it, its siblings are kept. A service whose entry cannot be built at all keeps its
//   last good entry (warning + counter); every other service moves on.
// - Incremental: IncrementalTableBuilder keeps one entry per service and rebuilds only services whose
//   instance list changed (by identity, then by content); unchanged upstreams are shared by reference
//   between consecutive tables, and the version is combined from cached per-upstream hashes.
import { checkHostPort } from '../../../common/host-port.js';
import type { CatalogInstance, CatalogSnapshot, Route, RouteTable, ServerSpec, UpstreamProtocol, UpstreamSpec, UpstreamTlsSpec } from './types.js';
import type { ServiceTagOptions, TableDefaults } from './tag-options.js';
import { parseInstanceTags, parseServiceTags, resolveCheck } from './tag-options.js';
import { serverId } from './server-list.js';
import { canonicalJson, compareRoutes, deepFreeze, routesHash, tableVersion, upstreamDigest, versionFrom, xorInto } from './table-version.js';
import { NO_POLICY_OVERRIDES, withPolicy, type PolicyOverrides } from '../policy/apply-policy.js';
import { withHttpsPolicy } from '../tls/https-policy.js';
import { lazyTable, UpstreamsView } from './table-upstreams.js';
import { isTcpProtocol, protocolFromUrlprefixOptions, tcpListensOf } from '../l4/tcp-tags.js';

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

/** Full build (tests, one-shot producers): the incremental builder from an empty state. */
export function buildRouteTable(input: BuildTableInput): BuildTableResult {
  const builder = new IncrementalTableBuilder(input.defaults);
  const r = builder.build(input.snapshot, input.adminUpstreams, input.policies);
  return { table: r.table, warnings: [...r.warnings] };
}

/** One Consul service's part of the table. */
export interface ServiceEntry {
  /** the instance list it was built from (identity check first, content second) */
  readonly instancesRef: readonly CatalogInstance[];
  readonly inputKey: string;
  /** the upstream before traffic policy (kept to re-apply a changed policy without a rebuild) */
  readonly base: UpstreamSpec;
  /** the valid instances, sorted by service ID (policy tags and canary servers read them) */
  readonly valid: readonly CatalogInstance[];
  /** the upstream as served: base with its resolved policy */
  readonly upstream: UpstreamSpec;
  readonly routes: readonly Route[];
  readonly routesKey: string;
  readonly warnings: readonly string[];
}

/** Pure: one service's upstream and routes, frozen. Throws only on input that is not data at all. */
export function buildServiceEntry(service: string, instances: readonly CatalogInstance[], defaults: TableDefaults, policies: PolicyOverrides = NO_POLICY_OVERRIDES): ServiceEntry {
  const warnings: string[] = [];
  const valid: CatalogInstance[] = [];
  for (const inst of instances) {
    const why = instanceProblem(inst);
    if (why) warnings.push(`service ${service} instance ${JSON.stringify(String((inst as { serviceId?: unknown })?.serviceId ?? '?')).slice(0, 80)}: ${why}, skipped`);
    else valid.push(inst);
  }
  const sorted = valid.sort((a, b) => cmp(a.serviceId, b.serviceId));
  const upstream0 = consulUpstream(service, sorted, defaults, warnings);
  // a TCP service's urlprefix- tags are its ports (consulUpstream read them), not HTTP routes
  const routes = isTcpProtocol(upstream0.protocol) ? [] : routesOf(service, sorted, warnings);
  const base = withHttpsPolicy(upstream0, service, sorted, warnings);
  const upstream = withPolicy(base, sorted, policies, defaults.panicThresholdPercent, warnings);
  return deepFreeze({
    instancesRef: instances,
    inputKey: canonicalJson(instances),
    base,
    valid: sorted,
    upstream,
    routes,
    routesKey: canonicalJson(routes),
    warnings,
  });
}

function instanceProblem(inst: CatalogInstance): string | undefined {
  if (typeof inst !== 'object' || inst === null) return 'not an object';
  if (typeof inst.serviceId !== 'string') return 'service ID is not a string';
  const hp = checkHostPort(inst.address, inst.port);
  if (!hp.ok) return hp.reason;
  if (!Array.isArray(inst.tags) || inst.tags.some((t) => typeof t !== 'string')) return 'tags must be a list of strings';
  if (typeof inst.meta !== 'object' || inst.meta === null) return 'meta must be an object';
  if (!['passing', 'warning', 'critical'].includes(inst.status)) return `unknown status ${JSON.stringify(inst.status)}`;
  return undefined;
}

export interface IncrementalBuildResult {
  readonly table: RouteTable;
  /** every current warning (all services) */
  readonly warnings: readonly string[];
  /** warnings of the services rebuilt by this call (what is new to log) */
  readonly newWarnings: readonly string[];
  /** upstream names whose spec changed (added or replaced) and removed, against the previous build */
  readonly upserted: readonly string[];
  readonly removed: readonly string[];
  /** services whose entry was rebuilt */
  readonly rebuilt: readonly string[];
  /** services whose entry could not be built (each kept its last good entry, if any) */
  readonly failed: readonly string[];
}

/**
 * Keeps the per-service entries between builds. build() costs O(services) identity checks plus work
 * proportional to the services that changed; a failed service keeps its last good entry.
 */
export class IncrementalTableBuilder {
  readonly #entries = new Map<string, ServiceEntry>();
  #admin: Readonly<Record<string, UpstreamSpec>> = {};
  /** admin upstreams with their policy applied, by name (recomputed when either changes) */
  readonly #adminFinal = new Map<string, { spec: UpstreamSpec; admin: UpstreamSpec; docs: readonly unknown[]; final: UpstreamSpec }>();
  #policies: PolicyOverrides = NO_POLICY_OVERRIDES;
  #table: RouteTable | undefined;
  #view: UpstreamsView | undefined;
  #acc = Buffer.alloc(20);
  #routesDigest = routesHash([]);
  #routeWarnings: string[] = [];
  #failures = 0;

  constructor(private readonly defaults: TableDefaults) {}

  /** services that could not be built, since start */
  get failures(): number {
    return this.#failures;
  }

  /**
   * `changedHint`: the services whose instance lists may differ from the previous snapshot (discovery
   * knows them); only those are looked at, so a change costs that service and not a scan of the catalog.
   */
  build(snapshot: CatalogSnapshot, admin: Readonly<Record<string, UpstreamSpec>>, policies: PolicyOverrides = NO_POLICY_OVERRIDES, changedHint?: ReadonlySet<string>): IncrementalBuildResult {
    const services = snapshot.services;
    const touched = new Set<string>();
    // services whose policy document changed: their entries re-apply it (no rebuild of the entry)
    const policyChanged = new Set<string>();
    if (policies !== this.#policies) {
      const old = this.#policies;
      for (const name of new Set([...Object.keys(old.admin), ...Object.keys(old.kv), ...Object.keys(policies.admin), ...Object.keys(policies.kv)])) {
        if (old.admin[name] !== policies.admin[name] || old.kv[name] !== policies.kv[name]) policyChanged.add(name);
      }
      this.#policies = policies;
    }
    const rebuilt: string[] = [];
    const failed: string[] = [];
    const newWarnings: string[] = [];
    let routesChanged = this.#table === undefined;

    const hinted = changedHint !== undefined && this.#table !== undefined && policyChanged.size === 0;
    const candidates = hinted ? [...changedHint].filter((n) => Object.hasOwn(services, n)) : Object.keys(services);
    for (const name of candidates) {
      const instances = services[name];
      const prev = this.#entries.get(name);
      if (prev && prev.instancesRef === instances && !policyChanged.has(name)) continue;
      let key: string;
      try {
        key = canonicalJson(instances);
      } catch {
        key = `unserializable:${Math.random()}`;
      }
      if (prev && prev.inputKey === key) {
        if (policyChanged.has(name)) {
          const warnings = [...prev.warnings];
          const upstream = deepFreeze(withPolicy(prev.base, prev.valid, policies, this.defaults.panicThresholdPercent, warnings));
          this.#entries.set(name, { ...prev, instancesRef: instances, upstream, warnings });
          touched.add(name);
        } else {
          this.#entries.set(name, { ...prev, instancesRef: instances });
        }
        continue;
      }
      try {
        if (!Array.isArray(instances)) throw new Error('instance list is not an array');
        const entry = buildServiceEntry(name, instances, this.defaults, policies);
        this.#entries.set(name, entry);
        rebuilt.push(name);
        newWarnings.push(...entry.warnings);
        touched.add(name);
        if (!prev || prev.routesKey !== entry.routesKey) routesChanged = true;
      } catch (err) {
        this.#failures++;
        failed.push(name);
        newWarnings.push(`service ${name}: table entry cannot be built (${(err as Error).message}); ${prev ? 'keeping its last good entry' : 'left out'}`);
      }
    }
    for (const name of hinted ? [...changedHint] : [...this.#entries.keys()]) {
      if (Object.hasOwn(services, name) || !this.#entries.has(name)) continue;
      const gone = this.#entries.get(name)!;
      this.#entries.delete(name);
      touched.add(name);
      if (gone.routes.length > 0) routesChanged = true;
    }
    for (const name of new Set([...Object.keys(this.#admin), ...Object.keys(admin)])) {
      if (this.#admin[name] !== admin[name] || policyChanged.has(name)) touched.add(name);
    }
    this.#admin = admin;
    const adminFinal = (name: string): UpstreamSpec => {
      const spec = admin[name];
      const docs = [policies.admin[name], policies.kv[name]];
      const cached = this.#adminFinal.get(name);
      if (cached && cached.admin === spec && cached.docs[0] === docs[0] && cached.docs[1] === docs[1]) return cached.final;
      const w: string[] = [];
      const final = deepFreeze(withPolicy(spec, [], policies, this.defaults.panicThresholdPercent, w));
      newWarnings.push(...w);
      this.#adminFinal.set(name, { spec, admin: spec, docs, final });
      return final;
    };
    for (const name of [...this.#adminFinal.keys()]) if (!Object.hasOwn(admin, name)) this.#adminFinal.delete(name);

    const prevTable = this.#table;
    const prevView = this.#view;
    const upserted: string[] = [];
    const removed: string[] = [];
    const nextOf = (name: string): UpstreamSpec | undefined =>
      Object.hasOwn(admin, name) ? adminFinal(name) : this.#entries.get(name)?.upstream;
    const changedSpecs = new Map<string, UpstreamSpec | undefined>();
    for (const name of touched) {
      const before = prevView?.get(name);
      const after = nextOf(name);
      if (before === after) continue;
      if (before) xorInto(this.#acc, upstreamDigest(name, before));
      if (after) {
        const frozen = Object.isFrozen(after) ? after : deepFreeze(after);
        xorInto(this.#acc, upstreamDigest(name, frozen));
        changedSpecs.set(name, frozen);
        upserted.push(name);
      } else {
        changedSpecs.set(name, undefined);
        removed.push(name);
      }
    }

    // the upstreams are shared with the previous table: only the changed ones are new, and the
    // record itself is made when someone reads it (a copy of 5,000 names costs more than the change)
    let view: UpstreamsView;
    if (prevView) {
      view = prevView.with(changedSpecs);
    } else {
      const names = new Set([...this.#entries.keys(), ...Object.keys(admin)]);
      const ordered: Record<string, UpstreamSpec> = {};
      for (const name of [...names].sort()) {
        const spec = changedSpecs.has(name) ? changedSpecs.get(name) : nextOf(name);
        if (spec) ordered[name] = spec;
      }
      view = UpstreamsView.of(Object.freeze(ordered));
    }
    this.#view = view;

    let routes = prevTable?.routes ?? [];
    if (routesChanged) {
      const all: Route[] = [];
      for (const name of [...this.#entries.keys()].sort()) all.push(...this.#entries.get(name)!.routes);
      this.#routeWarnings = [];
      routes = Object.freeze(dedupeRoutes(all, this.#routeWarnings).sort(compareRoutes).map((r) => Object.freeze(r)));
      this.#routesDigest = routesHash(routes);
      newWarnings.push(...this.#routeWarnings);
    }
    const version = versionFrom(this.#acc, this.#routesDigest);
    const table: RouteTable = prevTable && prevTable.version === version && changedSpecs.size === 0 && routes === prevTable.routes
      ? prevTable
      : lazyTable(version, view, routes);
    this.#table = table;
    const entries = this.#entries;
    const routeWarnings = this.#routeWarnings;
    let all: string[] | undefined;
    return {
      table,
      // every current warning: computed when asked (the admin API), not on every change
      get warnings(): string[] {
        if (!all) {
          all = [];
          for (const e of entries.values()) all.push(...e.warnings);
          all.push(...routeWarnings);
        }
        return all;
      },
      newWarnings, upserted, removed, rebuilt, failed,
    };
  }
}

function consulUpstream(service: string, instances: readonly CatalogInstance[], defaults: TableDefaults, warnings: string[]): UpstreamSpec {
  const instancesTags = instances.map((i) => i.tags);
  const opts = parseServiceTags(service, instancesTags, warnings);
  const protocol = opts.protocol ?? protocolFromUrlprefixOptions(instancesTags);
  const algorithm = opts.algorithm ?? defaults.algorithm;
  let hashKey = opts.hashKey ?? defaults.hashKey;
  if (algorithm === 'chash' && !hashKey) hashKey = { source: 'ip' };
  const maxFails = opts.maxFails ?? defaults.maxFails;
  const failTimeoutMs = opts.failTimeoutMs ?? defaults.failTimeoutMs;
  const resolved = resolveCheck(service, opts, defaults, warnings);
  const serverTls = serverTlsOf(service, protocol, opts, warnings);
  // a TCP service cannot answer an HTTP check: the default check probes it by connecting, unless check= says otherwise
  const check = resolved && isTcpProtocol(protocol) && opts.checkType === undefined ? { ...resolved, type: 'tcp' as const, path: '/' }
    // a gRPC check speaks the service's HTTP/2: TLS for proto=h2, h2c otherwise
    : resolved?.type === 'grpc' ? { ...resolved, tls: protocol === 'h2', ...(serverTls !== undefined ? { serverTls } : {}) } : resolved;
  const listen = isTcpProtocol(protocol) ? tcpListensOf(service, protocol, instancesTags, defaults.tcpPorts, warnings, defaults.tlsPorts) : undefined;
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
      ...(typeof zone === 'string' && zone ? { zone } : {}),
      serviceId: inst.serviceId,
    });
  }
  servers.sort((a, b) => cmp(a.id, b.id));
  return {
    name: service,
    algorithm,
    ...(hashKey ? { hashKey } : {}),
    servers,
    ...(check ? { check } : {}),
    retry,
    origin: 'consul',
    ...(protocol !== undefined && protocol !== 'http' ? { protocol } : {}),
    ...(listen !== undefined ? { listen } : {}),
    ...(opts.proxyProtocol !== undefined ? { proxyProtocol: opts.proxyProtocol } : {}),
    ...(serverTls !== undefined ? { serverTls } : {}),
  };
}

/** `tls_server_name=` / `tls_skip_verify=`: only proto=h2 speaks TLS to its servers; elsewhere a warning. */
function serverTlsOf(service: string, protocol: UpstreamProtocol | undefined, opts: ServiceTagOptions, warnings: string[]): UpstreamTlsSpec | undefined {
  if (opts.tlsServerName === undefined && opts.tlsSkipVerify === undefined) return undefined;
  if (protocol !== 'h2') {
    warnings.push(`service ${service}: tls_server_name= / tls_skip_verify= ignored: only proto=h2 speaks TLS to its servers`);
    return undefined;
  }
  if (opts.tlsServerName === undefined && opts.tlsSkipVerify !== true) return undefined; // tls_skip_verify=false: the default
  return {
    ...(opts.tlsServerName !== undefined ? { serverName: opts.tlsServerName } : {}),
    ...(opts.tlsSkipVerify === true ? { skipVerify: true } : {}),
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
    ordered[name] = deepFreeze({ ...u, servers: [...u.servers].sort((a, b) => cmp(a.id, b.id)) });
  }
  const sortedRoutes = [...routes].sort(compareRoutes);
  return deepFreeze({ version: tableVersion(ordered, sortedRoutes), upstreams: ordered, routes: sortedRoutes });
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
