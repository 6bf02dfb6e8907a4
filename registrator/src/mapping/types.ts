// The backend-neutral service record the pure mapper produces and the registry adapters consume.

export type CheckKind = 'http' | 'https' | 'tcp' | 'ttl' | 'grpc' | 'script' | 'docker';

export interface CheckSpec {
  readonly kind: CheckKind;
  /** http/https: full URL; tcp: host:port; grpc: host:port[/service]; script: the command */
  readonly target?: string;
  /** Consul duration strings ("10s", "1m"), validated by the mapper */
  readonly interval?: string;
  readonly timeout?: string;
  readonly ttl?: string;
  readonly method?: string;
  readonly tlsSkipVerify?: boolean;
  readonly initialStatus?: 'passing' | 'warning' | 'critical';
  readonly deregisterAfter?: string;
  /** set when the check mirrors the container's Docker HEALTHCHECK into a TTL check */
  readonly mirrorsDockerHealth?: boolean;
  /** set on the -ttl check: the registrator itself passes it every -ttl-refresh seconds */
  readonly refreshedByRegistrator?: boolean;
}

export interface ServiceRecord {
  /** <hostname>:<container-name>:<exposed-port>[:udp], or SERVICE_ID */
  readonly id: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly checks: readonly CheckSpec[];
  /** the container this service belongs to */
  readonly containerId: string;
  readonly containerName: string;
  readonly exposedPort: string;
  readonly protocol: 'tcp' | 'udp';
}

/** A problem with one container's metadata: logged as a warning, never fatal. */
export interface MappingWarning {
  readonly containerId: string;
  readonly containerName: string;
  /** the offending key, e.g. SERVICE_80_CHECK_INTERVAL */
  readonly key: string;
  readonly value: string;
  readonly reason: string;
}

export interface MappingResult {
  readonly services: readonly ServiceRecord[];
  readonly warnings: readonly MappingWarning[];
}
