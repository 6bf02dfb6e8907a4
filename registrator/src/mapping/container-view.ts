// The container as the pure mapping reads it; service-mapper.ts and address.ts both sit above it.
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
