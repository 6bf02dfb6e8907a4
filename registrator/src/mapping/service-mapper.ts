// Pure mapping: one inspected container -> the Consul services it should have.
// No I/O, no logging, never throws: bad metadata becomes MappingWarnings and only the bad part is skipped.
import type Dockerode from 'dockerode';
import type { MappingResult } from './types.js';

/** The subset of `docker inspect` (dockerode ContainerInspectInfo) the mapper uses. */
export interface ContainerView {
  readonly id: string;
  /** container name without the leading '/' */
  readonly name: string;
  /** Config.Image, e.g. "registry:5000/team/web:1.2" */
  readonly image: string;
  /** Config.Env, "K=V" */
  readonly env: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** keys of Config.ExposedPorts, e.g. "80/tcp" */
  readonly exposedPorts: readonly string[];
  /** NetworkSettings.Ports: "80/tcp" -> bindings (null when exposed but not published) */
  readonly portBindings: Readonly<Record<string, readonly { HostIp: string; HostPort: string }[] | null>>;
  /** NetworkSettings.Networks: docker network name -> IP of the container on it */
  readonly networks: Readonly<Record<string, { IPAddress: string }>>;
  /** HostConfig.NetworkMode ("default", "bridge", "host", "container:<id>", a network name) */
  readonly networkMode: string;
  /** State.Health.Status; undefined or 'none' when the image has no HEALTHCHECK */
  readonly health?: 'starting' | 'healthy' | 'unhealthy' | 'none';
  /** Config.Hostname */
  readonly hostname: string;
}

export type HealthGate = 'off' | 'register-when-healthy' | 'mirror';

export interface MappingOptions {
  /** the registrator host's name, the service ID prefix (default os.hostname(), set by config) */
  readonly hostname: string;
  /** -ip: address for published ports, overrides the binding's HostIp */
  readonly hostIp?: string;
  /**
   * Address used when a port is published on a wildcard HostIp (0.0.0.0 / ::) and no -ip is given.
   * The original resolves the host name there; resolving is I/O, so the caller does it once at start.
   */
  readonly fallbackHostIp?: string;
  /** -internal: register the container IP and exposed ports instead of published ones */
  readonly internal: boolean;
  /** -explicit: only ports with SERVICE_NAME or SERVICE_<port>_NAME */
  readonly explicit: boolean;
  /** -tags: appended to every service's tags; "{{.Hostname}}" etc. are expanded (see tags.ts) */
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

/** Pure projection of `docker inspect` output onto ContainerView. */
export function containerViewFromInspect(info: Dockerode.ContainerInspectInfo): ContainerView {
  throw new Error('not implemented yet');
}

/** Pure: the services one container should have, plus warnings for metadata that could not be used. */
export function mapContainer(c: ContainerView, opts: MappingOptions): MappingResult {
  return { services: [], warnings: [] };
}
