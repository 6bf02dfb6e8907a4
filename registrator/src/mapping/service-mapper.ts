// Pure mapping: one inspected container -> the Consul services it should have.
// No I/O, no logging, never throws: bad metadata becomes MappingWarnings and only the bad part (one
// check, one meta key, one service) is skipped; the container's other services are kept.
import type Dockerode from 'dockerode';
import type { CheckSpec, MappingResult, MappingWarning, ServiceRecord } from './types.js';
import type { ContainerView } from './container-view.js';
import { badPortKeys, metadataForPort, portKeysForAbsentPorts, type MetadataEntry, type PortMetadata } from './metadata.js';
import { checksFromMetadata } from './checks.js';
import { expandTagTemplate, splitEscapedList } from './tags.js';
import { addressOverride, containerIp, isWildcardHostIp, NETWORK_LABEL } from './address.js';
import { metaValueProblem, serviceNameProblem, tagProblem } from './validate.js';

export type HealthGate = 'off' | 'register-when-healthy' | 'mirror';

export interface MappingOptions {
  /** the registrator host's name, the service ID prefix (default os.hostname(), set by config) */
  readonly hostname: string;
  /** -ip: address for published ports, overrides the binding's HostIp */
  readonly hostIp?: string;
  /**
   * Address used when a port is published on a wildcard HostIp (0.0.0.0 / ::) and no -ip is given.
   * The original resolves the host name there; resolving is I/O, so the caller does it once at start.
   * Without it such a service is registered with the wildcard address and a warning.
   */
  readonly fallbackHostIp?: string;
  /** -internal: register the container IP and exposed ports instead of published ones */
  readonly internal: boolean;
  /** -explicit: only ports with SERVICE_NAME or SERVICE_<port>_NAME */
  readonly explicit: boolean;
  /** -tags: appended to every service's tags; {{.Hostname}}, {{.ContainerName}}, {{.ContainerHostname}},
   *  {{.ContainerID}}, {{.Image}} are expanded */
  readonly forceTags: readonly string[];
  /** -useIpFromLabel <label>: the container's value of that label becomes the service address */
  readonly useIpFromLabel?: string;
  /** -ttl / -ttl-refresh (seconds): add a TTL check the registrator refreshes */
  readonly ttl?: number;
  readonly ttlRefresh?: number;
  /** Docker HEALTHCHECK gating */
  readonly healthGate: HealthGate;
  /** written to Meta["registrator-instance"] so -cleanup only removes our own registrations */
  readonly instanceMarker: string;
}

export const META_INSTANCE_KEY = 'registrator-instance';
export const META_CONTAINER_KEY = 'container-id';
/** TTL of the health-mirroring check when -ttl is not given; the bridge re-pushes the status within it. */
export const DEFAULT_MIRROR_TTL_SECONDS = 60;

const HEALTH_STATES = new Set(['starting', 'healthy', 'unhealthy', 'none']);

/** Pure projection of `docker inspect` output onto ContainerView (tolerates the nulls Docker sends). */
export function containerViewFromInspect(info: Dockerode.ContainerInspectInfo): ContainerView {
  const config = info.Config ?? ({} as Partial<Dockerode.ContainerInspectInfo['Config']>);
  const settings = info.NetworkSettings ?? ({} as Partial<Dockerode.ContainerInspectInfo['NetworkSettings']>);
  const networks: Record<string, { IPAddress: string }> = {};
  for (const [name, n] of Object.entries(settings.Networks ?? {})) networks[name] = { IPAddress: n?.IPAddress ?? '' };
  const portBindings: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const [key, bindings] of Object.entries(settings.Ports ?? {})) {
    portBindings[key] = Array.isArray(bindings)
      ? bindings.map((b) => ({ HostIp: b?.HostIp ?? '', HostPort: b?.HostPort ?? '' }))
      : null;
  }
  const status = info.State?.Health?.Status;
  const view: ContainerView = {
    id: info.Id,
    name: (info.Name ?? '').replace(/^\//, ''),
    image: config.Image ?? '',
    env: [...(config.Env ?? [])],
    labels: { ...(config.Labels ?? {}) },
    exposedPorts: Object.keys(config.ExposedPorts ?? {}),
    portBindings,
    networks,
    networkMode: info.HostConfig?.NetworkMode ?? 'default',
    hostname: config.Hostname ?? '',
    ...(status !== undefined
      ? { health: (HEALTH_STATES.has(status) ? status : 'none') as ContainerView['health'] }
      : {}),
  };
  return view;
}

/** Default service name: the image's base name without registry, namespace, tag or digest. */
export function defaultServiceName(image: string, containerName: string): string {
  const withoutDigest = image.split('@')[0];
  if (/^sha256:[0-9a-f]+$/i.test(withoutDigest) || withoutDigest === '') return containerName;
  const base = withoutDigest.slice(withoutDigest.lastIndexOf('/') + 1);
  const colon = base.indexOf(':');
  const name = colon >= 0 ? base.slice(0, colon) : base;
  return name === '' ? containerName : name;
}

/** Consul status to report for a mirrored Docker health state. */
export function mirroredCheckStatus(health: ContainerView['health']): 'passing' | 'critical' {
  return health === 'healthy' ? 'passing' : 'critical';
}

interface PortCandidate {
  readonly portKey: string;
  readonly exposedPort: string;
  readonly protocol: 'tcp' | 'udp';
  /** port to register (host port, or exposed port for internal/host networking) */
  readonly portText: string;
  /** undefined = decided later (published: -ip / HostIp / fallback) */
  readonly hostIp?: string;
}

function parsePortKey(key: string): { exposedPort: string; protocol: string } | undefined {
  const m = /^(\d+)(?:\/([a-z]+))?$/.exec(key);
  return m ? { exposedPort: m[1], protocol: m[2] ?? 'tcp' } : undefined;
}

function pickBinding(bindings: readonly { HostIp: string; HostPort: string }[]): { HostIp: string; HostPort: string } | undefined {
  const usable = bindings.filter((b) => b && b.HostPort);
  // Docker publishes on 0.0.0.0 and :: alike; prefer the IPv4 binding, as registrator does with the first.
  return usable.find((b) => !b.HostIp.includes(':')) ?? usable[0];
}

const RESERVED_META_KEYS = new Set(['name', 'id', 'tags', 'ignore']);
const META_KEY = /^[a-z0-9_-]{1,128}$/;
const META_MAX_PAIRS = 64;

export function mapContainer(c: ContainerView, opts: MappingOptions): MappingResult {
  const warnings: MappingWarning[] = [];
  const warn = (key: string, value: string, reason: string): void => {
    warnings.push({ containerId: c.id, containerName: c.name, key, value, reason });
  };
  const done = (services: ServiceRecord[]): MappingResult => {
    const seen = new Set<string>();
    const unique = warnings.filter((w) => {
      const k = `${w.key}\u0000${w.value}\u0000${w.reason}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    return { services, warnings: unique };
  };

  if (opts.healthGate === 'register-when-healthy' && (c.health === 'starting' || c.health === 'unhealthy')) {
    return done([]);
  }

  for (const bad of badPortKeys(c)) warn(bad.rawKey, bad.value, `"${bad.port}" is not a valid port number`);

  // Which ports become services, and the address mode. A host-networked container has no address of
  // its own: its exposed ports are host ports, registered on the host address even with -internal.
  const hostNetwork = c.networkMode === 'host';
  const networkLabel = c.labels[NETWORK_LABEL];
  const internal = !hostNetwork && (opts.internal || (networkLabel !== undefined && networkLabel !== ''));
  const allKeys = [...new Set([...c.exposedPorts, ...Object.keys(c.portBindings)])];
  const candidates: PortCandidate[] = [];
  const override = addressOverride(c, opts.useIpFromLabel);
  if (override.problem) warn(override.problem.key, override.problem.value, override.problem.reason);
  let internalIp: string | undefined;
  if (internal && override.address === undefined) {
    const r = containerIp(c);
    if (!r.ok) {
      warn(r.key, r.value, r.reason);
      return done([]);
    }
    internalIp = r.ip;
  }
  for (const unknown of portKeysForAbsentPorts(c, allKeys)) {
    warn(unknown.rawKey, unknown.value, `port ${unknown.port} is neither exposed nor published by the container`);
  }
  for (const key of allKeys) {
    const parsed = parsePortKey(key);
    if (!parsed) {
      warn(key, key, 'unparseable exposed port');
      continue;
    }
    if (parsed.protocol !== 'tcp' && parsed.protocol !== 'udp') continue; // sctp: Consul services are tcp/udp
    const base = { portKey: key, exposedPort: parsed.exposedPort, protocol: parsed.protocol } as const;
    if (internal) {
      candidates.push({ ...base, portText: parsed.exposedPort, hostIp: internalIp });
    } else if (hostNetwork) {
      candidates.push({ ...base, portText: parsed.exposedPort });
    } else {
      const binding = pickBinding(c.portBindings[key] ?? []);
      if (!binding) continue; // exposed, not published
      candidates.push({ ...base, portText: binding.HostPort, hostIp: binding.HostIp });
    }
  }
  candidates.sort((a, b) => Number(a.exposedPort) - Number(b.exposedPort) || a.protocol.localeCompare(b.protocol));
  const isGroup = candidates.length > 1;

  const services: ServiceRecord[] = [];
  const usedIds = new Set<string>();
  for (const cand of candidates) {
    const meta = metadataForPort(c, cand.exposedPort);
    if (meta.get('ignore')) continue;

    const nameEntry = meta.get('name');
    if (!nameEntry && opts.explicit) continue;
    let name = nameEntry ? nameEntry.value : defaultServiceName(c.image, c.name);
    if (isGroup && !nameEntry?.fromPort) name += `-${cand.exposedPort}`;
    const nameProblem = serviceNameProblem(name);
    if (nameProblem) {
      warn(nameEntry?.sourceKey ?? 'Config.Image', nameEntry?.value ?? c.image, `${nameProblem}; service skipped`);
      continue;
    }

    const port = Number(cand.portText);
    if (!/^\d+$/.test(cand.portText) || port < 1 || port > 65535) {
      warn(cand.portKey, cand.portText, 'published port is not a valid port number; service skipped');
      continue;
    }

    let address: string;
    if (override.address !== undefined) {
      address = override.address;
    } else if (internal) {
      address = cand.hostIp!;
    } else if (opts.hostIp) {
      address = opts.hostIp;
    } else if (cand.hostIp !== undefined && !isWildcardHostIp(cand.hostIp)) {
      address = cand.hostIp;
    } else if (opts.fallbackHostIp) {
      address = opts.fallbackHostIp;
    } else {
      address = cand.hostIp && cand.hostIp !== '' ? cand.hostIp : '0.0.0.0';
      warn(cand.portKey, address, 'published on a wildcard address and no -ip given: registered address is not routable');
    }

    const id = serviceId(c, opts, cand, meta.get('id'), isGroup);
    if (!id.ok) {
      warn(id.key, id.value, id.reason);
      continue;
    }
    if (usedIds.has(id.id)) {
      warn(meta.get('id')?.sourceKey ?? cand.portKey, id.id, 'service ID already used by another port of this container; service skipped');
      continue;
    }

    const tags = serviceTags(c, opts, cand, meta.get('tags'), warn);

    const fromMeta = checksFromMetadata(meta, { address, port });
    for (const p of fromMeta.problems) warn(p.key, p.value, p.reason);
    const checks: CheckSpec[] = [...fromMeta.checks];
    if (opts.ttl && opts.ttl > 0) {
      checks.push({ kind: 'ttl', ttl: `${opts.ttl}s`, initialStatus: 'passing', refreshedByRegistrator: true });
    }
    if (opts.healthGate === 'mirror' && c.health !== undefined && c.health !== 'none') {
      checks.push({
        kind: 'ttl',
        ttl: `${opts.ttl && opts.ttl > 0 ? opts.ttl : DEFAULT_MIRROR_TTL_SECONDS}s`,
        initialStatus: mirroredCheckStatus(c.health),
        mirrorsDockerHealth: true,
      });
    }

    usedIds.add(id.id);
    services.push({
      id: id.id,
      name,
      address,
      port,
      tags,
      meta: serviceMeta(c, opts, meta, warn),
      checks,
      containerId: c.id,
      containerName: c.name,
      exposedPort: cand.exposedPort,
      protocol: cand.protocol,
    });
  }
  return done(services);
}

type IdResult = { ok: true; id: string } | { ok: false; key: string; value: string; reason: string };

function serviceId(
  c: ContainerView,
  opts: MappingOptions,
  cand: PortCandidate,
  idEntry: MetadataEntry | undefined,
  isGroup: boolean,
): IdResult {
  const udp = cand.protocol === 'udp' ? ':udp' : '';
  if (!idEntry) return { ok: true, id: `${opts.hostname}:${c.name}:${cand.exposedPort}${udp}` };
  const given = idEntry.value.trim();
  if (!/^[^\s/]+$/.test(given)) {
    return { ok: false, key: idEntry.sourceKey, value: idEntry.value, reason: 'service ID must not contain spaces or "/"; service skipped' };
  }
  // A general SERVICE_ID shared by several ports would collide: give each port its own.
  if (isGroup && !idEntry.fromPort) return { ok: true, id: `${given}:${cand.exposedPort}${udp}` };
  return { ok: true, id: given };
}

function serviceTags(
  c: ContainerView,
  opts: MappingOptions,
  cand: PortCandidate,
  tagsEntry: MetadataEntry | undefined,
  warn: (key: string, value: string, reason: string) => void,
): string[] {
  const tags = tagsEntry ? splitEscapedList(tagsEntry.value) : [];
  const values = {
    Hostname: opts.hostname, ContainerName: c.name, ContainerHostname: c.hostname, ContainerID: c.id, Image: c.image,
  };
  for (const forced of opts.forceTags) {
    const { tag, unknown } = expandTagTemplate(forced, values);
    if (unknown.length > 0) warn('-tags', forced, `unknown placeholder(s) ${unknown.join(', ')}`);
    tags.push(tag);
  }
  if (cand.protocol === 'udp') tags.push('udp');
  return [...new Set(tags)].filter((tag) => {
    const problem = tagProblem(tag);
    if (problem) warn(tagsEntry?.sourceKey ?? '-tags', tag, `${problem}; tag dropped`);
    return problem === undefined;
  });
}

function serviceMeta(
  c: ContainerView,
  opts: MappingOptions,
  meta: PortMetadata,
  warn: (key: string, value: string, reason: string) => void,
): Record<string, string> {
  const out: Record<string, string> = {};
  const keys = [...meta.keys()].filter((k) => !RESERVED_META_KEYS.has(k) && !k.startsWith('check_')).sort();
  // Consul refuses more than 64 pairs; four are ours: registrator-instance and container-id (below),
  // registrator-fingerprint and registrator-engine (added by the Consul backend).
  let room = META_MAX_PAIRS - 4;
  for (const key of keys) {
    const entry = meta.get(key)!;
    if (!META_KEY.test(key) || key.startsWith('consul-') || key === META_INSTANCE_KEY || key === META_CONTAINER_KEY) {
      warn(entry.sourceKey, entry.value, 'not usable as a Consul meta key (letters, digits, "_" and "-", not reserved)');
      continue;
    }
    const valueProblem = metaValueProblem(entry.value);
    if (valueProblem) {
      warn(entry.sourceKey, entry.value, valueProblem);
      continue;
    }
    if (key === 'weight' && !(/^\d+$/.test(entry.value) && Number(entry.value) >= 1 && Number(entry.value) <= 65535)) {
      warn(entry.sourceKey, entry.value, 'weight must be an integer from 1 to 65535');
      continue;
    }
    if (room <= 0) {
      warn(entry.sourceKey, entry.value, `more than ${META_MAX_PAIRS} meta keys`);
      continue;
    }
    out[key] = entry.value;
    room--;
  }
  out[META_INSTANCE_KEY] = opts.instanceMarker;
  out[META_CONTAINER_KEY] = c.id;
  return out;
}
