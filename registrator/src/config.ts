// Pure CLI/env parsing for the registrator: `registrator [options] <registry-uri>`.
// Go-style flags: -flag and --flag, -flag=value and -flag value, booleans bare (or -flag=true|false).
import os from 'node:os';
import type { HealthGate } from './mapping/service-mapper.js';
import type { MappingOptions } from './mapping/service-mapper.js';

export type ConfigErrorCode =
  | 'ERR_CONFIG_UNKNOWN_FLAG'
  | 'ERR_CONFIG_MISSING_VALUE'
  | 'ERR_CONFIG_BAD_VALUE'
  | 'ERR_CONFIG_MISSING_URI'
  | 'ERR_CONFIG_EXTRA_ARGS'
  | 'ERR_CONFIG_BAD_URI'
  | 'ERR_CONFIG_TTL';

export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  constructor(code: ConfigErrorCode, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.code = code;
  }
}

/** Where Consul is and how to talk to it (URI + CONSUL_* environment). */
export interface ConsulTarget {
  /** the URI as given */
  readonly uri: string;
  readonly scheme: 'consul' | 'consul-tls' | 'consul-unix';
  /** host/port for consul and consul-tls (port defaults to 8500, or 8501 for consul-tls) */
  readonly host?: string;
  readonly port?: number;
  /** consul-unix: the socket path */
  readonly socketPath?: string;
  /** https (consul-tls, or CONSUL_HTTP_SSL=true with consul://) */
  readonly secure: boolean;
  /** CONSUL_HTTP_SSL_VERIFY=false */
  readonly tlsSkipVerify: boolean;
  /** CONSUL_HTTP_TOKEN */
  readonly token?: string;
  /** file paths from CONSUL_CACERT / CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY (read by the caller) */
  readonly caCertFile?: string;
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type DeregisterPolicy = 'always' | 'on-success';

export interface RunConfig {
  readonly action: 'run';
  readonly consul: ConsulTarget;
  /** options for the pure mapper; hostname already defaulted */
  readonly mapping: MappingOptions;
  /** -resync seconds; 0 = off */
  readonly resyncSeconds: number;
  /** -cleanup: remove dangling services carrying our instance marker at start-up */
  readonly cleanup: boolean;
  /** -deregister: always, or only when the container exited 0 */
  readonly deregister: DeregisterPolicy;
  /** -retry-attempts: Consul connection attempts at start-up; -1 = forever */
  readonly retryAttempts: number;
  /** -retry-interval in milliseconds */
  readonly retryIntervalMs: number;
  /** -docker-host: DOCKER_HOST or unix:///var/run/docker.sock, as given */
  readonly dockerHost: string;
  readonly logLevel: LogLevel;
}

export type Config = RunConfig | { readonly action: 'help' } | { readonly action: 'version' };

export interface HostFacts {
  /** default for -hostname (os.hostname()) */
  readonly hostname: string;
}

/**
 * Pure: parses argv (without node and script, i.e. process.argv.slice(2)) and the environment.
 * Returns a ConfigError (never throws) for any bad input; the CLI prints its message and exits 2.
 */
export function parseArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  host: HostFacts = { hostname: os.hostname() },
): Config | ConfigError {
  return new ConfigError('ERR_CONFIG_MISSING_URI', 'not implemented yet');
}

export type { HealthGate };
