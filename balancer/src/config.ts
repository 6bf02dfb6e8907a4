// Command line + environment -> Config. Pure: argv, env and the core count come in, a Config or a
// ConfigError comes out; main.ts prints and exits. Precedence: flag > environment variable > default.
// The FLAGS table is the single source for parsing and for `--help` (help.ts renders it).
import os from 'node:os';
import type { Algorithm } from './routing/types.js';
import { ALGORITHMS } from './routing/types.js';
import { parseDurationMs } from './routing/tag-options.js';
import { CidrError, parseCidrList } from './proxy/cidr.js';
import { parseTlsConfig, type TlsConfig } from './tls/tls-config.js';
import { parseL4Config, type L4Config } from './l4/l4-config.js';
import { HTTP2_FLAGS, parseHttp2Config, type Http2Config } from './proxy/http2/http2-config.js';
import { CLIENT_HALF_CLOSE, DEFAULT_CLIENT_HALF_CLOSE, type ClientHalfClose } from './proxy/client-half-close.js';

/** Node fires a setTimeout/setInterval longer than 2^31-1 ms after 1 ms: such a duration must be refused. */
const MAX_TIMER_MS = 2_147_483_647;

export type Mode = 'dynamic' | 'reload';
export type Engine = 'native' | 'undici';
export const ENGINES: readonly Engine[] = ['native', 'undici'];
/** default of --engine */
export const DEFAULT_ENGINE: Engine = 'native';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ConsulConfig {
  /** http://host:port or https://host:port */
  readonly baseUrl: string;
  readonly token?: string;
  /** blocking query `wait` */
  readonly waitMs: number;
  /** minimum time between the starts of two queries of one watcher (rate limit) */
  readonly minQueryIntervalMs: number;
  /** quiet time that coalesces a burst of catalog changes into one table build */
  readonly debounceMs: number;
  /** --consul-max-conns: hard cap on concurrent connections to the agent (default 16) */
  readonly maxConns?: number;
  /** --consul-stale: Consul's ?stale on every read */
  readonly stale?: boolean;
  /** --consul-max-body: cap on one Consul answer's body (default 128 MiB) */
  readonly maxBodyBytes?: number;
  /** --consul-resync: full re-read of every service at this period (0 = off; default 5 min) */
  readonly resyncMs?: number;
  /** --consul-watch: how the catalog is followed (dynamic, reload mode, --render; default index; per-service needs https) */
  readonly watch?: ConsulWatchDesign;
  /** --consul-ca: a PEM file; the agent's HTTPS certificate is verified against it alone */
  readonly caFile?: string;
  /** the PEM read from caFile at start (discovery/consul-ca.ts); the parser leaves it undefined */
  readonly ca?: string;
}

/**
 * index: two change signals and reads explained by raft indexes (discovery/consul-catalog.ts);
 * per-service: one blocking query per service over HTTP/2 to an HTTPS agent (discovery/per-service/).
 */
export type ConsulWatchDesign = 'index' | 'per-service';

export interface RenderSpec {
  readonly template: string;
  readonly output: string;
}

/** Reload-mode settings, passed through untouched for balancer/src/reload. */
export interface ReloadConfig {
  /** the balancer's own config template (--template), default templates/balancer.conf.hbs */
  readonly template?: string;
  /** where the rendered balancer config goes (--config-out) */
  readonly configOut?: string;
  /** extra consul-template style renders (--render tpl:out, repeatable) */
  readonly renders: readonly RenderSpec[];
  /** shell command run after a render changed a file (--reload-command) */
  readonly reloadCommand?: string;
  /** consul-template quiescence (--wait min:max); undefined = render at once */
  readonly wait?: { readonly minMs: number; readonly maxMs: number };
}

export interface Config {
  readonly kind: 'config';
  /** undefined with --no-consul: upstreams come only from the admin API and the dump file */
  readonly consul?: ConsulConfig;
  readonly listen: HostPort;
  readonly admin: HostPort;
  readonly adminToken?: string;
  /** --admin-token-file: where a token made at start goes (undefined = ~/.consul-balancer/admin-token) */
  readonly adminTokenFile?: string;
  /** key of the opaque server ids in sticky cookies; undefined = a random one per start */
  readonly stickySecret?: string;
  /** --scripts-kv: request scripts also kept in and loaded from Consul KV under this prefix; undefined = off */
  readonly scriptsKvPrefix?: string;
  /** Host names the admin API answers to besides its listen address and localhost (DNS rebinding) */
  readonly adminAllowedHosts: readonly string[];
  readonly adminMaxUpstreams: number;
  readonly adminMaxServers: number;
  readonly mode: Mode;
  readonly workers: number;
  readonly dumpFile?: string;
  readonly strongDependency: boolean;
  /** with strongDependency: how long to keep trying Consul at start */
  readonly startTimeoutMs: number;
  /** allow list of Consul service names; undefined = every service */
  readonly services?: readonly string[];
  readonly passingOnly: boolean;
  readonly defaultLb: Algorithm;
  readonly localNode?: string;
  readonly localZone?: string;
  readonly timeouts: {
    readonly connectMs: number;
    readonly headersMs: number;
    readonly idleMs: number;
    readonly clientKeepAliveMs: number;
    readonly clientHeaderMs: number;
    readonly clientBodyMs: number;
    readonly requestMs: number;
    readonly queueMs: number;
    readonly tunnelIdleMs: number;
  };
  /** how long an old worker generation may take to drain before it is killed */
  readonly drainTimeoutMs: number;
  readonly maxConnectionsPerServer: number;
  /** data plane: native (own HTTP/1.1 codec and socket pool) or undici (node:http + undici) */
  readonly engine: Engine;
  /** native engine: request head limit in bytes (431 beyond) */
  readonly maxHeadBytes: number;
  readonly accessLog: boolean;
  /** CIDR ranges whose Forwarded / X-Forwarded-* / X-Real-IP headers are kept (default: none) */
  readonly trustForwarded: readonly string[];
  /** --underscores-in-headers: request fields whose name has a '_' are forwarded (default: dropped) */
  readonly underscoresInHeaders: boolean;
  /** --client-half-close: a client's FIN after its request aborts it (default) or is answered */
  readonly clientHalfClose: ClientHalfClose;
  /** requests waiting for a connection to one server beyond its busy ones */
  readonly maxQueuePerServer: number;
  /** Upgrade protocols passed through, lower case */
  readonly upgradeProtocols: readonly string[];
  readonly logLevel: LogLevel;
  readonly reload: ReloadConfig;
  /** --tls-listen and the TLS/ACME flags; undefined = no TLS listener */
  readonly tls?: TlsConfig;
  /** Prometheus metrics (GET /metrics on the admin API) */
  readonly metrics: MetricsConfig;
  /** TCP services, TLS passthrough, PROXY protocol (balancer/src/l4) */
  readonly l4: L4Config;
  /** --h2c and the --http2-* bounds */
  readonly http2: Http2Config;
}

export interface MetricsConfig {
  /** metric name prefix: balancer_service_requests_total; "traefik" reuses a Traefik board */
  readonly prefix: string;
  /** request duration histogram upper bounds, seconds, ascending */
  readonly bucketsSeconds: readonly number[];
  /** distinct server label values per service; more are folded into "_other" */
  readonly maxServersPerService: number;
}

export interface HelpRequest {
  readonly kind: 'help';
}

export class ConfigError extends Error {
  readonly kind = 'error' as const;
  readonly code = 'ERR_CONFIG' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type FlagKind = 'string' | 'bool' | 'list' | 'repeat';
export interface FlagSpec {
  readonly name: string;
  readonly env?: string;
  readonly kind: FlagKind;
  readonly value?: string;
  readonly def?: string;
  readonly help: string;
}

export const FLAGS: readonly FlagSpec[] = [
  { name: 'consul', env: 'CONSUL_HTTP_ADDR', kind: 'string', value: 'host:port', def: '127.0.0.1:8500', help: 'Consul agent address; http:// or https:// URLs accepted' },
  { name: 'consul-ca', env: 'CONSUL_CACERT', kind: 'string', value: 'file', help: "PEM CA the HTTPS agent's certificate is verified against (instead of the system store), as CONSUL_CACERT is to Consul's CLI" },
  { name: 'consul-token', env: 'CONSUL_HTTP_TOKEN', kind: 'string', value: 'token', help: 'ACL token sent as X-Consul-Token' },
  { name: 'no-consul', env: 'BALANCER_NO_CONSUL', kind: 'bool', help: 'run without Consul: upstreams only from the admin API and the dump file' },
  { name: 'services', env: 'BALANCER_SERVICES', kind: 'list', value: 'a,b', help: 'only route these Consul services (default: all)' },
  { name: 'passing-only', env: 'BALANCER_PASSING_ONLY', kind: 'string', value: 'true|false', def: 'true', help: 'true: only passing instances; false: warning ones too' },
  { name: 'consul-wait', env: 'BALANCER_CONSUL_WAIT', kind: 'string', value: 'duration', def: '60s', help: 'blocking query wait' },
  { name: 'min-query-interval', env: 'BALANCER_MIN_QUERY_INTERVAL', kind: 'string', value: 'duration', def: '10ms', help: 'rate limit: minimum time between two queries of one watcher' },
  { name: 'consul-max-conns', env: 'BALANCER_CONSUL_MAX_CONNS', kind: 'string', value: 'N', def: '16', help: 'at most N concurrent connections to the Consul agent, whatever the number of services (min 4; the agent allows 200 per client IP, shared by everything on the host)' },
  { name: 'consul-stale', env: 'BALANCER_CONSUL_STALE', kind: 'bool', help: "Consul reads with ?stale: any server answers (read scale; may lag the leader slightly)" },
  { name: 'consul-max-body', env: 'BALANCER_CONSUL_MAX_BODY', kind: 'string', value: 'bytes', def: '134217728', help: 'cap on one Consul answer; a larger one is that watcher\'s failure' },
  { name: 'consul-resync', env: 'BALANCER_CONSUL_RESYNC', kind: 'string', value: 'duration', def: '5m', help: 'full re-read of every service at this period, a safety net beside the change signals (0 = off)' },
  { name: 'consul-watch', env: 'BALANCER_CONSUL_WATCH', kind: 'string', value: 'index|per-service', def: 'index', help: 'how the catalog is followed (dynamic mode, reload mode and --render): index (two change signals, any agent) or per-service (one blocking query per service multiplexed over HTTP/2; needs an https:// --consul; --consul-max-conns sessions x 250 streams)' },
  { name: 'debounce', env: 'BALANCER_DEBOUNCE', kind: 'string', value: 'duration', def: '2ms', help: 'window that coalesces a burst of catalog changes into one table (latest wins)' },
  { name: 'listen', env: 'BALANCER_LISTEN', kind: 'string', value: 'host:port', def: '0.0.0.0:8080', help: 'proxy listener' },
  { name: 'tls-listen', env: 'BALANCER_TLS_LISTEN', kind: 'repeat', value: 'host:port', help: 'TLS (HTTPS) proxy listener (repeatable; env: comma separated); ALPN offers h2 then http/1.1, host:port/http1 offers http/1.1 only' },
  { name: 'tls-cert-dir', env: 'BALANCER_TLS_CERT_DIR', kind: 'string', value: 'path', help: 'directory of PEM chains and keys, watched; names from each certificate\'s SAN' },
  { name: 'tls-kv-prefix', env: 'BALANCER_TLS_KV_PREFIX', kind: 'string', value: 'prefix', help: 'Consul KV prefix of certificates: <prefix><name>/cert and /key, followed (default balancer/certs/ with ACME)' },
  { name: 'tls-default-cert', env: 'BALANCER_TLS_DEFAULT_CERT', kind: 'string', value: 'name', help: 'the certificate (by one of its names) for handshakes without SNI or with an unknown name' },
  { name: 'tls-ciphers', env: 'BALANCER_TLS_CIPHERS', kind: 'string', value: 'list', def: 'Mozilla intermediate', help: 'OpenSSL cipher list (TLS 1.3 and 1.2 suites)' },
  { name: 'tls-min-version', env: 'BALANCER_TLS_MIN_VERSION', kind: 'string', value: 'TLSv1.2|TLSv1.3', def: 'TLSv1.2', help: 'lowest TLS version accepted' },
  { name: 'tls-ticket-rotate', env: 'BALANCER_TLS_TICKET_ROTATE', kind: 'string', value: 'duration', def: '1h', help: 'session ticket key rotation (keys shared by all workers)' },
  { name: 'tls-handshake-timeout', env: 'BALANCER_TLS_HANDSHAKE_TIMEOUT', kind: 'string', value: 'duration', def: '10s', help: 'a TLS handshake not finished after this is dropped' },
  { name: 'acme-directory', env: 'BALANCER_ACME_DIRECTORY', kind: 'string', value: 'url', help: 'ACME directory URL: order certificates for services tagged tls=acme (needs Consul)' },
  { name: 'acme-email', env: 'BALANCER_ACME_EMAIL', kind: 'string', value: 'address', help: 'ACME account contact' },
  { name: 'acme-kv-prefix', env: 'BALANCER_ACME_KV_PREFIX', kind: 'string', value: 'prefix', def: 'balancer/acme/', help: 'Consul KV prefix of the ACME account, challenges, locks and renewal state' },
  { name: 'acme-lock-ttl', env: 'BALANCER_ACME_LOCK_TTL', kind: 'string', value: 'duration', def: '2m', help: 'an order lock not refreshed for this long is free again' },
  { name: 'acme-check-interval', env: 'BALANCER_ACME_CHECK_INTERVAL', kind: 'string', value: 'duration', def: '1m', help: 'how often names are checked for issuance and renewal' },
  { name: 'acme-retry', env: 'BALANCER_ACME_RETRY', kind: 'string', value: 'duration', def: '1m', help: 'first pause after a failed order (doubles up to 1h)' },
  { name: 'admin', env: 'BALANCER_ADMIN', kind: 'string', value: 'host:port', def: '127.0.0.1:8081', help: 'admin API listener' },
  { name: 'admin-token', env: 'BALANCER_ADMIN_TOKEN', kind: 'string', value: 'token', help: 'require "Authorization: Bearer <token>" on the admin API (without one, an admin listener beyond loopback gets a token made at start)' },
  { name: 'admin-token-file', env: 'BALANCER_ADMIN_TOKEN_FILE', kind: 'string', value: 'path', def: '~/.consul-balancer/admin-token', help: 'where the token made at start is written (mode 0600) when --admin-token is unset and --admin is not loopback' },
  { name: 'admin-allowed-hosts', env: 'BALANCER_ADMIN_ALLOWED_HOSTS', kind: 'list', value: 'a,b', help: 'Host names the admin API answers to besides its own address and localhost ("*" = any); others get 403 (DNS rebinding)' },
  { name: 'admin-max-upstreams', env: 'BALANCER_ADMIN_MAX_UPSTREAMS', kind: 'string', value: 'N', def: '1000', help: 'upstreams that may be set through the admin API (413 beyond)' },
  { name: 'admin-max-servers', env: 'BALANCER_ADMIN_MAX_SERVERS', kind: 'string', value: 'N', def: '1000', help: 'servers in one admin upstream (400 beyond)' },
  { name: 'mode', env: 'BALANCER_MODE', kind: 'string', value: 'dynamic|reload', def: 'dynamic', help: 'dynamic: swap tables in place; reload: render a config and start a new worker generation (forked ahead of time)' },
  { name: 'workers', env: 'BALANCER_WORKERS', kind: 'string', value: 'N', def: 'number of cores', help: 'proxy worker processes' },
  { name: 'dump-file', env: 'BALANCER_DUMP_FILE', kind: 'string', value: 'path', help: 'last good table + admin upstreams, written after a change (at most once a second) and at shutdown, read at start' },
  { name: 'start-timeout', env: 'BALANCER_START_TIMEOUT', kind: 'string', value: 'duration', def: '10s', help: 'with --strong-dependency: how long to wait for Consul at start before giving up' },
  { name: 'strong-dependency', env: 'BALANCER_STRONG_DEPENDENCY', kind: 'bool', help: 'refuse to start when Consul is unreachable (default: serve from the dump file)' },
  { name: 'default-lb', env: 'BALANCER_DEFAULT_LB', kind: 'string', value: ALGORITHMS.join('|'), def: 'roundrobin', help: 'algorithm for services without an lb= tag' },
  { name: 'local-node', env: 'BALANCER_LOCAL_NODE', kind: 'string', value: 'name', help: 'Consul node name of this host (local-first)' },
  { name: 'local-zone', env: 'BALANCER_LOCAL_ZONE', kind: 'string', value: 'zone', help: 'zone of this host (local-first)' },
  { name: 'sticky-secret', env: 'BALANCER_STICKY_SECRET', kind: 'string', value: 'text', help: 'key of the server ids in sticky cookies (default: random per start, so cookies do not survive a restart)' },
  { name: 'scripts-kv', env: 'BALANCER_SCRIPTS_KV', kind: 'bool', help: 'keep request scripts in Consul KV too: admin uploads/deletes write <prefix><name>, and scripts put there (another balancer, consul kv put) are loaded; an admin upload of the same name wins' },
  { name: 'scripts-kv-prefix', env: 'BALANCER_SCRIPTS_KV_PREFIX', kind: 'string', value: 'prefix', def: 'balancer/scripts/', help: 'with --scripts-kv: the Consul KV prefix of request scripts' },
  { name: 'connect-timeout', env: 'BALANCER_CONNECT_TIMEOUT', kind: 'string', value: 'duration', def: '5s', help: 'upstream TCP connect timeout' },
  { name: 'headers-timeout', env: 'BALANCER_HEADERS_TIMEOUT', kind: 'string', value: 'duration', def: '60s', help: 'upstream response headers timeout' },
  { name: 'idle-timeout', env: 'BALANCER_IDLE_TIMEOUT', kind: 'string', value: 'duration', def: '60s', help: 'upstream response body idle timeout' },
  { name: 'client-keepalive-timeout', env: 'BALANCER_CLIENT_KEEPALIVE_TIMEOUT', kind: 'string', value: 'duration', def: '5s', help: 'idle client keep-alive connections are closed after this' },
  { name: 'client-header-timeout', env: 'BALANCER_CLIENT_HEADER_TIMEOUT', kind: 'string', value: 'duration', def: '10s', help: 'a request head must be complete within this long of its first byte (408 and close)' },
  { name: 'client-body-timeout', env: 'BALANCER_CLIENT_BODY_TIMEOUT', kind: 'string', value: 'duration', def: '60s', help: 'max gap between two request-body reads from a client (408 and close; 0 = none)' },
  { name: 'request-timeout', env: 'BALANCER_REQUEST_TIMEOUT', kind: 'string', value: 'duration', def: '300s', help: 'the whole request body must arrive within this long of its head (408 and close; 0 = none)' },
  { name: 'queue-timeout', env: 'BALANCER_QUEUE_TIMEOUT', kind: 'string', value: 'duration', def: '10s', help: 'longest wait for a free connection to an upstream server (then 504)' },
  { name: 'max-queue-per-server', env: 'BALANCER_MAX_QUEUE_PER_SERVER', kind: 'string', value: 'N', def: '256', help: 'requests that may wait for a busy upstream server (beyond it: 503)' },
  { name: 'tunnel-idle-timeout', env: 'BALANCER_TUNNEL_IDLE_TIMEOUT', kind: 'string', value: 'duration', def: '10m', help: 'an Upgrade (WebSocket) tunnel with no byte either way for this long is closed (0 = none)' },
  { name: 'upgrade-protocols', env: 'BALANCER_UPGRADE_PROTOCOLS', kind: 'list', value: 'a,b', def: 'websocket', help: 'Upgrade protocols passed through to upstreams; any other Upgrade request is a 400' },
  { name: 'drain-timeout', env: 'BALANCER_DRAIN_TIMEOUT', kind: 'string', value: 'duration', def: '30s', help: 'bound on draining a worker generation before it is killed' },
  { name: 'max-connections-per-server', env: 'BALANCER_MAX_CONNECTIONS_PER_SERVER', kind: 'string', value: 'N', def: '128', help: 'keep-alive connections per upstream server' },
  { name: 'max-head-size', env: 'BALANCER_MAX_HEAD_SIZE', kind: 'string', value: 'bytes', def: '16384', help: 'native engine: largest request line + headers accepted (431 beyond)' },
  { name: 'engine', env: 'BALANCER_ENGINE', kind: 'string', value: ENGINES.join('|'), def: DEFAULT_ENGINE, help: 'data plane: native (own HTTP/1.1 codec and upstream socket pool) or undici (node:http + undici, the comparison engine)' },
  ...HTTP2_FLAGS,
  { name: 'access-log', env: 'BALANCER_ACCESS_LOG', kind: 'bool', help: 'one log line per proxied request' },
  { name: 'underscores-in-headers', env: 'BALANCER_UNDERSCORES_IN_HEADERS', kind: 'bool', help: 'forward request header fields whose name has a "_" (default: dropped, as nginx does: CGI-style backends read Transfer_Encoding as Transfer-Encoding)' },
  { name: 'client-half-close', env: 'BALANCER_CLIENT_HALF_CLOSE', kind: 'string', value: CLIENT_HALF_CLOSE.join('|'), def: DEFAULT_CLIENT_HALF_CLOSE, help: 'a client\'s FIN after its request (HTTP/1.x): abort = it left, its upstream request is aborted and nothing answered (nginx\'s default, 499); answer = it only shut down its write side, it is answered, then closed (HAProxy without abortonclose); a client that really left then costs the whole upstream exchange' },
  { name: 'trust-forwarded', env: 'BALANCER_TRUST_FORWARDED', kind: 'list', value: 'cidr,cidr', help: 'clients (proxies) whose Forwarded, X-Real-IP and X-Forwarded-* headers are kept; from anyone else they are replaced (default: none)' },
  { name: 'tcp-ports', env: 'BALANCER_TCP_PORTS', kind: 'string', value: 'from-to', help: 'ports that proto=tcp|tcp+sni services may be served on (urlprefix-:<port>); a tag outside is a warning (default: none)' },
  { name: 'tcp-host', env: 'BALANCER_TCP_HOST', kind: 'string', value: 'host', help: 'address the TCP service ports are opened on (default: the --listen host)' },
  { name: 'tcp-idle-timeout', env: 'BALANCER_TCP_IDLE_TIMEOUT', kind: 'string', value: 'duration', def: '10m', help: 'a TCP service connection with no byte either way for this long is closed' },
  { name: 'tcp-drain-timeout', env: 'BALANCER_TCP_DRAIN_TIMEOUT', kind: 'string', value: 'duration', def: '30s', help: 'connections to a server that left the table may go on this long, then they are closed' },
  { name: 'tcp-hello-timeout', env: 'BALANCER_TCP_HELLO_TIMEOUT', kind: 'string', value: 'duration', def: '5s', help: 'proto=tcp+sni: the TLS ClientHello must arrive within this long (else the connection is closed)' },
  { name: 'proxy-protocol-from', env: 'BALANCER_PROXY_PROTOCOL_FROM', kind: 'list', value: 'cidr,cidr', help: 'HTTP, --tls-listen and TCP service ports: peers (load balancers) that must open with a PROXY protocol v1/v2 header, whose address is then the client\'s (access rules, rate limits, logs, X-Forwarded-For, hash by IP, the backend\'s proxy_protocol= header); a missing or malformed one closes the connection; so does a header from another peer on an HTTP port (default: none)' },
  { name: 'metrics-prefix', env: 'BALANCER_METRICS_PREFIX', kind: 'string', value: 'name', def: 'balancer', help: 'Prometheus metric name prefix (traefik: reuse a Traefik dashboard as is)' },
  { name: 'metrics-buckets', env: 'BALANCER_METRICS_BUCKETS', kind: 'string', value: 's,s,...', def: '0.1,0.3,1.2,5', help: 'request duration histogram buckets in seconds (Traefik\'s default)' },
  { name: 'metrics-max-servers', env: 'BALANCER_METRICS_MAX_SERVERS', kind: 'string', value: 'N', def: '100', help: 'server label values kept per service in metrics; more are folded into "_other"' },
  { name: 'log-level', env: 'BALANCER_LOG_LEVEL', kind: 'string', value: LOG_LEVELS.join('|'), def: 'info', help: 'pino log level' },
  { name: 'template', env: 'BALANCER_TEMPLATE', kind: 'string', value: 'path', help: 'reload mode: the balancer config template (default templates/balancer.conf.hbs)' },
  { name: 'config-out', env: 'BALANCER_CONFIG_OUT', kind: 'string', value: 'path', help: 'reload mode: where the rendered balancer config is written' },
  { name: 'render', env: 'BALANCER_RENDER', kind: 'repeat', value: 'tpl:out', help: 'render a template to a file on every change (repeatable; env: comma separated)' },
  { name: 'reload-command', env: 'BALANCER_RELOAD_COMMAND', kind: 'string', value: 'cmd', help: 'command run after a --render output changed, e.g. "nginx -s reload"' },
  { name: 'wait', env: 'BALANCER_WAIT', kind: 'string', value: 'min:max', help: 'render quiescence as in consul-template, e.g. 2s:10s' },
  { name: 'help', kind: 'bool', help: 'print this help' },
];

const BY_NAME = new Map(FLAGS.map((f) => [f.name, f]));
const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off', '']);

export interface ConfigFacts {
  /** default for --workers */
  readonly cores: number;
}

export function parseBalancerArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  facts: ConfigFacts = { cores: os.availableParallelism() },
): Config | ConfigError | HelpRequest {
  const fromArgs = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) return new ConfigError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = BY_NAME.get(name);
    if (!spec) return new ConfigError(`unknown flag --${name}`);
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (spec.kind === 'bool') {
      // an explicit true/false may follow a boolean flag; anything else is the next flag
      const next = argv[i + 1];
      if (next !== undefined && (TRUE.has(next) || (FALSE.has(next) && next !== ''))) value = argv[++i];
      else value = 'true';
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) return new ConfigError(`flag --${name} needs a value (${spec.value ?? 'value'})`);
      value = argv[++i];
    }
    const list = fromArgs.get(name) ?? [];
    list.push(value);
    fromArgs.set(name, list);
  }
  if (fromArgs.has('help')) return { kind: 'help' };

  const raw = (name: string): string | undefined => {
    const given = fromArgs.get(name);
    if (given) return given[given.length - 1];
    const spec = BY_NAME.get(name);
    return spec?.env ? env[spec.env] : undefined;
  };
  const source = (name: string): string => (fromArgs.has(name) ? `--${name}` : `${BY_NAME.get(name)?.env ?? name}`);

  try {
    const bool = (name: string): boolean => {
      const v = raw(name);
      if (v === undefined) return false;
      const lower = v.trim().toLowerCase();
      if (TRUE.has(lower)) return true;
      if (FALSE.has(lower)) return false;
      throw new ConfigError(`${source(name)}: expected true or false, got "${v}"`);
    };
    const duration = (name: string, def: number): number => {
      const v = raw(name);
      if (v === undefined || v === '') return def;
      const ms = parseDurationMs(v);
      if (ms === undefined) throw new ConfigError(`${source(name)}: expected a duration such as 500ms, 5s or 2m, got "${v}"`);
      if (ms > MAX_TIMER_MS) throw new ConfigError(`${source(name)}: "${v}" is longer than a timer can wait (24 days)`);
      return ms;
    };
    // a limit that cannot be switched off (0 would cut every request at once)
    const positiveDuration = (name: string, def: number): number => {
      const ms = duration(name, def);
      if (ms <= 0) throw new ConfigError(`${source(name)}: must be longer than 0`);
      return ms;
    };
    const int = (name: string, def: number, min: number): number => {
      const v = raw(name);
      if (v === undefined || v === '') return def;
      if (!/^\d{1,6}$/.test(v.trim()) || Number(v) < min) throw new ConfigError(`${source(name)}: expected an integer >= ${min}, got "${v}"`);
      return Number(v);
    };
    const byteCount = (name: string, def: number, min: number): number => {
      const v = raw(name);
      if (v === undefined || v === '') return def;
      if (!/^\d{1,12}$/.test(v.trim()) || Number(v) < min) throw new ConfigError(`${source(name)}: expected a byte count >= ${min}, got "${v}"`);
      return Number(v);
    };
    const str = (name: string): string | undefined => {
      const v = raw(name);
      return v === undefined || v === '' ? undefined : v;
    };

    const noConsul = bool('no-consul');
    const consulAddr = str('consul') ?? '127.0.0.1:8500';
    const consul: ConsulConfig | undefined = noConsul
      ? undefined
      : {
          baseUrl: parseConsulUrl(consulAddr, source('consul')),
          token: str('consul-token'),
          waitMs: duration('consul-wait', 60_000),
          minQueryIntervalMs: duration('min-query-interval', 10),
          debounceMs: duration('debounce', 2),
          maxConns: int('consul-max-conns', 16, 4),
          stale: bool('consul-stale'),
          maxBodyBytes: byteCount('consul-max-body', 134_217_728, 1024),
          resyncMs: duration('consul-resync', 300_000),
          watch: consulWatch(str('consul-watch'), consulAddr, source),
          caFile: str('consul-ca'),
        };

    const mode = str('mode') ?? 'dynamic';
    if (mode !== 'dynamic' && mode !== 'reload') throw new ConfigError(`${source('mode')}: expected dynamic or reload, got "${mode}"`);

    const passing = str('passing-only') ?? 'true';
    if (!TRUE.has(passing.toLowerCase()) && !FALSE.has(passing.toLowerCase())) {
      throw new ConfigError(`${source('passing-only')}: expected true or false, got "${passing}"`);
    }

    const lb = str('default-lb') ?? 'roundrobin';
    if (!(ALGORITHMS as readonly string[]).includes(lb)) throw new ConfigError(`${source('default-lb')}: expected one of ${ALGORITHMS.join('|')}, got "${lb}"`);

    const engine = str('engine') ?? DEFAULT_ENGINE;
    if (!(ENGINES as readonly string[]).includes(engine)) throw new ConfigError(`${source('engine')}: expected one of ${ENGINES.join('|')}, got "${engine}"`);

    const logLevel = str('log-level') ?? 'info';
    if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) throw new ConfigError(`${source('log-level')}: expected one of ${LOG_LEVELS.join('|')}, got "${logLevel}"`);

    const prefix = str('metrics-prefix') ?? 'balancer';
    if (!/^[a-zA-Z_][a-zA-Z0-9_]{0,63}$/.test(prefix)) throw new ConfigError(`${source('metrics-prefix')}: expected a metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*), got "${prefix}"`);
    const bucketsRaw = str('metrics-buckets') ?? '0.1,0.3,1.2,5';
    const bucketsSeconds = bucketsRaw.split(',').map((b) => b.trim()).filter(Boolean).map(Number);
    if (bucketsSeconds.length === 0 || bucketsSeconds.length > 50 || bucketsSeconds.some((b, i) => !Number.isFinite(b) || b <= 0 || (i > 0 && b <= bucketsSeconds[i - 1]))) {
      throw new ConfigError(`${source('metrics-buckets')}: expected 1 to 50 ascending positive numbers of seconds such as 0.1,0.3,1.2,5, got "${bucketsRaw}"`);
    }

    const servicesRaw = str('services');
    const services = servicesRaw === undefined ? undefined : servicesRaw.split(',').map((s) => s.trim()).filter(Boolean);

    const renderValues = fromArgs.get('render') ?? (env.BALANCER_RENDER ? env.BALANCER_RENDER.split(',') : []);
    const renders = renderValues.map((v) => parseRender(v.trim(), source('render')));

    const waitRaw = str('wait');
    const wait = waitRaw === undefined ? undefined : parseWait(waitRaw, source('wait'));

    const tls = parseTlsConfig({
      str, duration, source,
      repeat: (name) => fromArgs.get(name) ?? (env[BY_NAME.get(name)?.env ?? ''] ?? '').split(',').filter((v) => v.trim() !== ''),
      hostPort: parseHostPort,
      fail: (message) => { throw new ConfigError(message); },
    }, consul !== undefined);

    return {
      kind: 'config',
      consul,
      listen: parseHostPort(str('listen') ?? '0.0.0.0:8080', source('listen')),
      admin: parseHostPort(str('admin') ?? '127.0.0.1:8081', source('admin')),
      adminToken: str('admin-token'),
      adminTokenFile: str('admin-token-file'),
      stickySecret: str('sticky-secret'),
      scriptsKvPrefix: scriptsKvPrefix(bool('scripts-kv'), str('scripts-kv-prefix'), consul !== undefined, source),
      adminAllowedHosts: (str('admin-allowed-hosts') ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean),
      adminMaxUpstreams: int('admin-max-upstreams', 1000, 1),
      adminMaxServers: int('admin-max-servers', 1000, 1),
      mode,
      workers: int('workers', Math.max(1, facts.cores), 1),
      dumpFile: str('dump-file'),
      strongDependency: bool('strong-dependency'),
      startTimeoutMs: duration('start-timeout', 10_000),
      services,
      passingOnly: TRUE.has(passing.toLowerCase()),
      defaultLb: lb as Algorithm,
      localNode: str('local-node'),
      localZone: str('local-zone'),
      timeouts: {
        connectMs: duration('connect-timeout', 5_000),
        headersMs: duration('headers-timeout', 60_000),
        idleMs: duration('idle-timeout', 60_000),
        clientKeepAliveMs: duration('client-keepalive-timeout', 5_000),
        clientHeaderMs: positiveDuration('client-header-timeout', 10_000),
        clientBodyMs: duration('client-body-timeout', 60_000),
        requestMs: duration('request-timeout', 300_000),
        queueMs: duration('queue-timeout', 10_000),
        tunnelIdleMs: duration('tunnel-idle-timeout', 600_000),
      },
      drainTimeoutMs: duration('drain-timeout', 30_000),
      maxConnectionsPerServer: int('max-connections-per-server', 128, 1),
      engine: engine as Engine,
      maxHeadBytes: int('max-head-size', 16_384, 1_024),
      accessLog: bool('access-log'),
      trustForwarded: trustedRanges(str('trust-forwarded'), source('trust-forwarded')),
      underscoresInHeaders: bool('underscores-in-headers'),
      clientHalfClose: clientHalfClose(str('client-half-close'), source('client-half-close')),
      maxQueuePerServer: int('max-queue-per-server', 256, 0),
      upgradeProtocols: upgradeProtocols(str('upgrade-protocols'), source('upgrade-protocols')),
      logLevel: logLevel as LogLevel,
      reload: {
        template: str('template'),
        configOut: str('config-out'),
        renders,
        reloadCommand: str('reload-command'),
        wait,
      },
      tls,
      metrics: { prefix, bucketsSeconds, maxServersPerService: int('metrics-max-servers', 100, 1) },
      l4: parseL4Config({ str, duration, source, fail: (message) => { throw new ConfigError(message); } }, parseHostPort(str('listen') ?? '0.0.0.0:8080', source('listen')).host),
      http2: parseHttp2Config({ bool, int, byteCount, duration, str }),
    };
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
}

/** --scripts-kv / --scripts-kv-prefix: the prefix when on ("a/b/" form: no leading slash, one trailing). */
function scriptsKvPrefix(on: boolean, prefix: string | undefined, hasConsul: boolean, source: (name: string) => string): string | undefined {
  if (!on) {
    if (prefix !== undefined) throw new ConfigError(`${source('scripts-kv-prefix')}: needs --scripts-kv`);
    return undefined;
  }
  if (!hasConsul) throw new ConfigError(`${source('scripts-kv')}: needs Consul (not with --no-consul)`);
  const p = prefix ?? 'balancer/scripts/';
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/$/.test(p)) throw new ConfigError(`${source('scripts-kv-prefix')}: expected a KV prefix such as balancer/scripts/ (ending in /), got "${p}"`);
  return p;
}

/** --upgrade-protocols: tokens (RFC 9110 section 7.8), compared case-insensitively. */
function clientHalfClose(text: string | undefined, what: string): ClientHalfClose {
  if (text === undefined) return DEFAULT_CLIENT_HALF_CLOSE;
  const v = text.trim().toLowerCase();
  if (!(CLIENT_HALF_CLOSE as readonly string[]).includes(v)) throw new ConfigError(`${what}: expected ${CLIENT_HALF_CLOSE.join(' or ')}, got "${text}"`);
  return v as ClientHalfClose;
}

function upgradeProtocols(text: string | undefined, what: string): readonly string[] {
  if (text === undefined) return ['websocket'];
  const list = text.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const p of list) if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+(\/[!#$%&'*+\-.^_`|~0-9a-z]+)?$/.test(p)) throw new ConfigError(`${what}: "${p}" is not a protocol token`);
  return list;
}

/** --trust-forwarded: validated here so a typo stops the start instead of trusting nobody silently. */
function trustedRanges(text: string | undefined, what: string): readonly string[] {
  if (text === undefined) return [];
  try {
    return parseCidrList(text).map((r) => r.text);
  } catch (err) {
    if (err instanceof CidrError) throw new ConfigError(`${what}: ${err.message}`);
    throw err;
  }
}

/** "host:port", ":port", "port" or "[v6]:port". */
export function parseHostPort(text: string, what: string): HostPort {
  const t = text.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(t);
  if (v6) {
    host = v6[1];
    portText = v6[2];
  } else if (/^\d+$/.test(t)) {
    host = '0.0.0.0';
    portText = t;
  } else {
    const colon = t.lastIndexOf(':');
    if (colon < 0) throw new ConfigError(`${what}: expected host:port, got "${text}"`);
    host = t.slice(0, colon) || '0.0.0.0';
    portText = t.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new ConfigError(`${what}: bad port in "${text}"`);
  return { host, port: Number(portText) };
}

/** CONSUL_HTTP_ADDR forms: "host:port", "host", "http://host:port", "https://host:port". */
function consulWatch(text: string | undefined, consulAddr: string, source: (name: string) => string): ConsulWatchDesign {
  const v = (text ?? 'index').trim();
  if (v !== 'index' && v !== 'per-service') throw new ConfigError(`${source('consul-watch')}: expected index or per-service, got "${text}"`);
  // HTTP/2 to Consul exists only on its HTTPS listener (Go serves no h2c there)
  if (v === 'per-service' && !parseConsulUrl(consulAddr, source('consul')).startsWith('https:')) {
    throw new ConfigError(`${source('consul-watch')}: per-service needs HTTP/2, which a Consul agent serves only on its HTTPS listener; --consul is "${consulAddr}" (use https://host:8501, or --consul-watch index)`);
  }
  return v;
}

export function parseConsulUrl(text: string, what: string): string {
  const t = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `http://${t}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(`${what}: expected host:port or http(s)://host:port, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${what}: only http and https are supported, got "${text}"`);
  if (!url.hostname) throw new ConfigError(`${what}: no host in "${text}"`);
  const port = url.port || (url.protocol === 'https:' ? '443' : '8500');
  return `${url.protocol}//${url.hostname}:${port}`;
}

function parseRender(text: string, what: string): RenderSpec {
  // split on the last ':' so Windows-free relative paths like a/b.hbs:out/c.conf work
  const colon = text.lastIndexOf(':');
  if (colon <= 0 || colon === text.length - 1) throw new ConfigError(`${what}: expected <template>:<output>, got "${text}"`);
  return { template: text.slice(0, colon), output: text.slice(colon + 1) };
}

function parseWait(text: string, what: string): { minMs: number; maxMs: number } {
  const [minText, maxText] = text.split(':');
  const minMs = parseDurationMs(minText ?? '');
  // consul-template: "5s" alone means min 5s, max 4x min
  const maxMs = maxText === undefined ? (minMs === undefined ? undefined : minMs * 4) : parseDurationMs(maxText);
  if (minMs === undefined || maxMs === undefined) throw new ConfigError(`${what}: expected min:max durations such as 2s:10s, got "${text}"`);
  if (maxMs < minMs) throw new ConfigError(`${what}: max must not be below min in "${text}"`);
  if (maxMs > MAX_TIMER_MS) throw new ConfigError(`${what}: "${text}" is longer than a timer can wait (24 days)`);
  return { minMs, maxMs };
}
