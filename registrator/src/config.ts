// Pure CLI/env parsing for the registrator: `registrator [options] <registry-uri>`.
// Go-style flags as registrator's: -flag and --flag, -flag=value and -flag value; booleans are bare
// (or -flag=true|false, never consuming the next argument). "--" ends the options. Flags may also
// follow the URI. Every problem is a ConfigError with a stable code; the CLI prints it and exits 2.
import { parseHostPort } from '../../common/host-port.js';
import os from 'node:os';
import { checkHost } from '../../common/host-port.js';
import type { HealthGate, MappingOptions } from './mapping/service-mapper.js';
import { parseGoBool } from './mapping/checks.js';
import { splitEscapedList } from './mapping/tags.js';

const MAX_TIMER_MS = 2_147_483_647;

export type ConfigErrorCode =
  | 'ERR_CONFIG_UNKNOWN_FLAG'
  | 'ERR_CONFIG_MISSING_VALUE'
  | 'ERR_CONFIG_BAD_VALUE'
  | 'ERR_CONFIG_MISSING_URI'
  | 'ERR_CONFIG_EXTRA_ARGS'
  | 'ERR_CONFIG_BAD_URI'
  | 'ERR_CONFIG_TTL'
  | 'ERR_CONFIG_BAD_ENV';

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
  /** host/port for consul and consul-tls (defaults 127.0.0.1 and 8500) */
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
  /** file paths from CONSUL_CACERT / CONSUL_CLIENT_CERT (or CONSUL_TLSCERT) / CONSUL_CLIENT_KEY (or
   *  CONSUL_TLSKEY); the caller reads them */
  readonly caCertFile?: string;
  readonly clientCertFile?: string;
  readonly clientKeyFile?: string;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export type DeregisterPolicy = 'always' | 'on-success';

export interface RunConfig {
  readonly action: 'run';
  readonly consul: ConsulTarget;
  /** options for the pure mapper; hostname and instanceMarker already defaulted */
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
  /** -drain-on-stop (default true): services into maintenance on the stop signal, before `die` */
  readonly drainOnStop: boolean;
  /** -consul-max-conns: registry calls in flight at most (registration, resync, cleanup, TTL, ...) */
  readonly consulMaxConns: number;
  /** -metrics host:port: Prometheus GET /metrics listener; undefined = off (default) */
  readonly metricsListen?: { readonly host: string; readonly port: number };
}

export type Config = RunConfig | { readonly action: 'help' } | { readonly action: 'version' };

export interface HostFacts {
  /** default for -hostname (os.hostname()) */
  readonly hostname: string;
}

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';
export const DEFAULT_CONSUL_PORT = 8500;
export const DEFAULT_RETRY_INTERVAL_MS = 2000;
export const DEFAULT_CONSUL_MAX_CONNS = 8;
const HEALTH_GATES: readonly HealthGate[] = ['off', 'register-when-healthy', 'mirror'];

type FlagKind = 'bool' | 'string' | 'int';
interface FlagSpec { readonly kind: FlagKind }

/** Every flag the CLI knows (help.ts documents each). */
export const FLAGS: Readonly<Record<string, FlagSpec>> = {
  internal: { kind: 'bool' },
  ip: { kind: 'string' },
  tags: { kind: 'string' },
  resync: { kind: 'int' },
  cleanup: { kind: 'bool' },
  deregister: { kind: 'string' },
  explicit: { kind: 'bool' },
  useIpFromLabel: { kind: 'string' },
  'retry-attempts': { kind: 'int' },
  'retry-interval': { kind: 'int' },
  ttl: { kind: 'int' },
  'ttl-refresh': { kind: 'int' },
  'health-gate': { kind: 'string' },
  hostname: { kind: 'string' },
  'docker-host': { kind: 'string' },
  'log-level': { kind: 'string' },
  'drain-on-stop': { kind: 'bool' },
  'consul-max-conns': { kind: 'int' },
  metrics: { kind: 'string' },
  help: { kind: 'bool' },
  h: { kind: 'bool' },
  version: { kind: 'bool' },
};

type FlagValue = string | boolean | number;

function bad(flag: string, value: string, why: string): ConfigError {
  return new ConfigError('ERR_CONFIG_BAD_VALUE', `invalid value "${value}" for -${flag}: ${why}`);
}

function parseIntFlag(flag: string, text: string): number | ConfigError {
  if (!/^-?\d+$/.test(text.trim())) return bad(flag, text, 'not an integer');
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n)) return bad(flag, text, 'out of range');
  return n;
}

/** Splits argv into flag values and positional arguments. */
function scanArgv(argv: readonly string[]): { flags: Map<string, FlagValue>; positional: string[] } | ConfigError {
  const flags = new Map<string, FlagValue>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const body = arg.startsWith('--') ? arg.slice(2) : arg.slice(1);
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    const spec = Object.prototype.hasOwnProperty.call(FLAGS, name) ? FLAGS[name] : undefined;
    if (!spec) return new ConfigError('ERR_CONFIG_UNKNOWN_FLAG', `unknown flag ${arg} (see -help)`);
    if (spec.kind === 'bool') {
      if (inline === undefined) {
        flags.set(name, true);
      } else {
        const b = parseGoBool(inline);
        if (b === undefined) return bad(name, inline, 'expected true or false');
        flags.set(name, b);
      }
      continue;
    }
    let text = inline;
    if (text === undefined) {
      if (i + 1 >= argv.length) return new ConfigError('ERR_CONFIG_MISSING_VALUE', `flag -${name} needs a value`);
      text = argv[++i];
    }
    if (spec.kind === 'int') {
      const n = parseIntFlag(name, text);
      if (n instanceof ConfigError) return n;
      flags.set(name, n);
    } else {
      flags.set(name, text);
    }
  }
  return { flags, positional };
}

function envBool(env: NodeJS.ProcessEnv, name: string): boolean | undefined | ConfigError {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const b = parseGoBool(raw.trim());
  if (b === undefined) return new ConfigError('ERR_CONFIG_BAD_ENV', `${name}="${raw}" is not true or false`);
  return b;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** Parses the registry URI together with the CONSUL_* environment. */
export function parseRegistryUri(uri: string, env: NodeJS.ProcessEnv): ConsulTarget | ConfigError {
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(uri);
  if (!m) {
    return new ConfigError('ERR_CONFIG_BAD_URI', `registry URI "${uri}" must look like consul://host:port, consul-tls://host:port or consul-unix:///path.sock`);
  }
  const scheme = m[1].toLowerCase();
  if (scheme !== 'consul' && scheme !== 'consul-tls' && scheme !== 'consul-unix') {
    return new ConfigError('ERR_CONFIG_BAD_URI', `unsupported registry scheme "${m[1]}" (supported: consul, consul-tls, consul-unix)`);
  }
  const ssl = envBool(env, 'CONSUL_HTTP_SSL');
  if (ssl instanceof ConfigError) return ssl;
  const verify = envBool(env, 'CONSUL_HTTP_SSL_VERIFY');
  if (verify instanceof ConfigError) return verify;
  const common = {
    uri,
    tlsSkipVerify: verify === false,
    ...(nonEmpty(env.CONSUL_HTTP_TOKEN) ? { token: env.CONSUL_HTTP_TOKEN } : {}),
    ...(nonEmpty(env.CONSUL_CACERT) ? { caCertFile: env.CONSUL_CACERT } : {}),
    ...(nonEmpty(env.CONSUL_CLIENT_CERT ?? env.CONSUL_TLSCERT)
      ? { clientCertFile: env.CONSUL_CLIENT_CERT ?? env.CONSUL_TLSCERT } : {}),
    ...(nonEmpty(env.CONSUL_CLIENT_KEY ?? env.CONSUL_TLSKEY)
      ? { clientKeyFile: env.CONSUL_CLIENT_KEY ?? env.CONSUL_TLSKEY } : {}),
  };
  const rest = m[2];
  if (scheme === 'consul-unix') {
    const socketPath = rest.split(/[?#]/)[0];
    if (!socketPath.startsWith('/') || socketPath.length < 2) {
      return new ConfigError('ERR_CONFIG_BAD_URI', `registry URI "${uri}" needs an absolute socket path: consul-unix:///path/to/consul.sock`);
    }
    return { ...common, scheme, socketPath, secure: ssl === true };
  }
  const authority = rest.split(/[/?#]/)[0];
  let host = '127.0.0.1';
  let port = DEFAULT_CONSUL_PORT;
  if (authority !== '') {
    const hp = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]@]+)?(?::(\d*))?$/.exec(authority);
    if (!hp) return new ConfigError('ERR_CONFIG_BAD_URI', `registry URI "${uri}" has an invalid host:port`);
    if (hp[1]) host = hp[1].startsWith('[') ? hp[1].slice(1, -1) : hp[1];
    if (hp[2] !== undefined && hp[2] !== '') {
      port = Number(hp[2]);
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        return new ConfigError('ERR_CONFIG_BAD_URI', `registry URI "${uri}" has an invalid port "${hp[2]}"`);
      }
    }
  }
  return { ...common, scheme, host, port, secure: scheme === 'consul-tls' || ssl === true };
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
  const scanned = scanArgv(argv);
  if (scanned instanceof ConfigError) return scanned;
  const { flags, positional } = scanned;
  if (flags.get('help') === true || flags.get('h') === true) return { action: 'help' };
  if (flags.get('version') === true) return { action: 'version' };

  if (positional.length === 0) {
    return new ConfigError('ERR_CONFIG_MISSING_URI', 'missing registry URI, e.g. registrator consul://127.0.0.1:8500 (see -help)');
  }
  if (positional.length > 1) {
    return new ConfigError('ERR_CONFIG_EXTRA_ARGS', `unexpected extra arguments: ${positional.slice(1).join(' ')}`);
  }
  const consul = parseRegistryUri(positional[0], env);
  if (consul instanceof ConfigError) return consul;

  const str = (name: string): string | undefined => flags.get(name) as string | undefined;
  const int = (name: string, dflt: number): number => (flags.get(name) as number | undefined) ?? dflt;
  const bool = (name: string): boolean => flags.get(name) === true;

  const ip = str('ip');
  if (ip !== undefined) {
    const host = checkHost(ip);
    if (!host.ok) return bad('ip', ip, `expected a bare IP address or host name: ${host.reason}`);
  }

  const resyncSeconds = int('resync', 0);
  if (resyncSeconds < 0) return bad('resync', String(resyncSeconds), 'must be 0 (off) or more seconds');
  // Node runs a timer longer than 2^31-1 ms after 1 ms: -resync 3000000 would resync in a tight loop.
  for (const [name, scale] of [['resync', 1000], ['ttl', 1000], ['ttl-refresh', 1000], ['retry-interval', 1]] as const) {
    const v = int(name, 0);
    if (v * scale > MAX_TIMER_MS) return bad(name, String(v), `longer than a timer can wait (${Math.floor(MAX_TIMER_MS / scale)} at most)`);
  }

  const deregister = str('deregister') ?? 'always';
  if (deregister !== 'always' && deregister !== 'on-success') return bad('deregister', deregister, 'expected always or on-success');

  const retryAttempts = int('retry-attempts', 0);
  if (retryAttempts < -1) return bad('retry-attempts', String(retryAttempts), 'must be -1 (forever) or more');
  const retryIntervalMs = int('retry-interval', DEFAULT_RETRY_INTERVAL_MS);
  if (retryIntervalMs < 0) return bad('retry-interval', String(retryIntervalMs), 'must be 0 or more milliseconds');

  const ttl = int('ttl', 0);
  const ttlRefresh = int('ttl-refresh', 0);
  if (ttl < 0) return bad('ttl', String(ttl), 'must be 0 or more seconds');
  if (ttlRefresh < 0) return bad('ttl-refresh', String(ttlRefresh), 'must be 0 or more seconds');
  if ((ttl > 0) !== (ttlRefresh > 0)) {
    return new ConfigError('ERR_CONFIG_TTL', '-ttl and -ttl-refresh must be given together');
  }
  if (ttl > 0 && ttlRefresh >= ttl) {
    return new ConfigError('ERR_CONFIG_TTL', `-ttl-refresh (${ttlRefresh}) must be less than -ttl (${ttl})`);
  }

  const healthGate = str('health-gate') ?? 'off';
  if (!(HEALTH_GATES as readonly string[]).includes(healthGate)) {
    return bad('health-gate', healthGate, `expected ${HEALTH_GATES.join(', ')}`);
  }

  const hostname = str('hostname') ?? host.hostname;
  if (hostname.trim() === '' || /[\s/]/.test(hostname)) return bad('hostname', hostname, 'must be a non-empty name without spaces or "/"');

  const useIpFromLabel = str('useIpFromLabel');
  if (useIpFromLabel !== undefined && useIpFromLabel.trim() === '') return bad('useIpFromLabel', useIpFromLabel, 'empty label name');

  const logLevel = (str('log-level') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    return bad('log-level', logLevel, `expected one of ${LOG_LEVELS.join(', ')}`);
  }

  const consulMaxConns = int('consul-max-conns', DEFAULT_CONSUL_MAX_CONNS);
  if (consulMaxConns < 1 || consulMaxConns > 200) return bad('consul-max-conns', String(consulMaxConns), 'must be 1 to 200 (Consul allows 200 per client IP)');

  const metricsText = str('metrics');
  let metricsListen: { host: string; port: number } | undefined;
  if (metricsText !== undefined) {
    // port 0 (any free port) is allowed here, for tests
    const zero = /:0$/.test(metricsText);
    const hp = parseHostPort(zero ? `${metricsText.slice(0, -2)}:1` : metricsText);
    if (!hp.ok) return bad('metrics', metricsText, `expected host:port (${hp.reason})`);
    metricsListen = { host: hp.host, port: zero ? 0 : hp.port };
  }

  const dockerHost = str('docker-host') ?? nonEmpty(env.DOCKER_HOST) ?? DEFAULT_DOCKER_HOST;
  if (dockerHost.trim() === '') return bad('docker-host', dockerHost, 'empty');

  const mapping: MappingOptions = {
    hostname,
    ...(ip !== undefined ? { hostIp: ip } : {}),
    internal: bool('internal'),
    explicit: bool('explicit'),
    forceTags: str('tags') !== undefined ? splitEscapedList(str('tags')!) : [],
    ...(useIpFromLabel !== undefined ? { useIpFromLabel } : {}),
    ...(ttl > 0 ? { ttl, ttlRefresh } : {}),
    healthGate: healthGate as HealthGate,
    instanceMarker: hostname,
  };
  return {
    action: 'run',
    consul,
    mapping,
    resyncSeconds,
    cleanup: bool('cleanup'),
    deregister,
    retryAttempts,
    retryIntervalMs,
    dockerHost,
    logLevel: logLevel as LogLevel,
    drainOnStop: flags.get('drain-on-stop') !== false,
    consulMaxConns,
    ...(metricsListen ? { metricsListen } : {}),
  };
}

export type { HealthGate };
