// The routing data model shared by discovery, the pure table builder, the balancing algorithms,
// the proxy engine, the admin API, the dump file and the reload-mode renderer.
// Everything here is plain JSON-able data so a table can be sent to a worker by IPC, written to
// the dump file and compared by content hash. Tables are frozen after build and never mutated;
// round-robin positions, health and EWMA figures live beside the table, keyed by ServerSpec.id.

export type Algorithm = 'roundrobin' | 'wrr' | 'chash' | 'ewma' | 'local-first' | 'leastconn';
export const ALGORITHMS: readonly Algorithm[] = ['roundrobin', 'wrr', 'chash', 'ewma', 'local-first', 'leastconn'];

/** `proto=` tag: what the servers speak. h2 owns the meaning of http/h2/h2c/grpc, l4 of tcp/tcp+sni. */
export type UpstreamProtocol = 'http' | 'h2' | 'h2c' | 'grpc' | 'tcp' | 'tcp+sni';
export const UPSTREAM_PROTOCOLS: readonly UpstreamProtocol[] = ['http', 'h2', 'h2c', 'grpc', 'tcp', 'tcp+sni'];

/** Where a TCP service is served: a port of every worker, and for proto=tcp+sni the TLS server name. */
export interface TcpListen {
  readonly port: number;
  /** proto=tcp+sni: the ClientHello server name (lower case); absent for proto=tcp */
  readonly sni?: string;
}

export type HashSource = 'header' | 'cookie' | 'ip' | 'uri';
export interface HashKey {
  readonly source: HashSource;
  /** header or cookie name; unused for ip and uri */
  readonly name?: string;
}

export interface ServerSpec {
  /** Stable identity "<host>:<port>": the same instance in two tables keeps its pool and health. */
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** >= 1 */
  readonly weight: number;
  /** nginx max_fails: failures within failTimeoutMs that eject the server; 0 disables passive ejection. */
  readonly maxFails: number;
  /** nginx fail_timeout: the window for counting failures and the ejection time. */
  readonly failTimeoutMs: number;
  /** Administratively down: never picked. */
  readonly down: boolean;
  /** Takes traffic only when no primary server of the upstream is available. */
  readonly backup: boolean;
  /** Consul node name (local-first compares it with the balancer's own node). */
  readonly node?: string;
  /** Zone from service Meta "zone" (local-first falls back to zone before any). */
  readonly zone?: string;
  /** Consul service ID, when the server came from Consul. */
  readonly serviceId?: string;
  /** In the canary group of its upstream (its tags carry the upstream's canary tag); absent = stable. */
  readonly canary?: boolean;
}

export interface ActiveCheckSpec {
  /** grpc: grpc.health.v1.Health/Check over HTTP/2 (health/grpc-health.ts) */
  readonly type: 'http' | 'tcp' | 'grpc';
  /** HTTP path for type http. */
  readonly path: string;
  /** type grpc: the service name asked about; absent or '' = the server as a whole */
  readonly grpcService?: string;
  /** type grpc: TLS with ALPN h2 (the upstream is proto=h2) instead of h2c */
  readonly tls?: boolean;
  /** type grpc over TLS: the upstream's certificate checks (the same as its traffic's) */
  readonly serverTls?: UpstreamTlsSpec;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** consecutive successes that bring a down server up */
  readonly rise: number;
  /** consecutive failures that take an up server down */
  readonly fall: number;
  /** status codes counted as healthy for type http, e.g. [200, 204]; ranges expanded by the parser */
  readonly expectStatuses: readonly number[];
}

export interface RetrySpec {
  /** total attempts including the first, nginx proxy_next_upstream_tries (>= 1) */
  readonly tries: number;
  /** bound on all attempts together, nginx proxy_next_upstream_timeout; 0 = none */
  readonly timeoutMs: number;
  /** upstream statuses that count as a failed attempt, e.g. [502, 503, 504] */
  readonly onStatuses: readonly number[];
  /** retry non-idempotent methods too (nginx `non_idempotent`) */
  readonly nonIdempotent: boolean;
}

export interface UpstreamSpec {
  readonly name: string;
  readonly algorithm: Algorithm;
  /** required when algorithm is chash */
  readonly hashKey?: HashKey;
  readonly servers: readonly ServerSpec[];
  readonly check?: ActiveCheckSpec;
  readonly retry: RetrySpec;
  /** where the definition came from; admin-API upstreams win over Consul ones of the same name */
  readonly origin: 'consul' | 'admin' | 'config';
  /** canary split, sticky sessions, panic threshold (balancing/canary|sticky|panic); absent = none */
  readonly policy?: TrafficPolicy;
  /** `redirect-https` and `hsts=` tags (balancer/src/tls/https-policy.ts); absent = neither */
  readonly https?: HttpsPolicy;
  /** `proto=` tag; absent = http */
  readonly protocol?: UpstreamProtocol;
  /** proto=tcp|tcp+sni: the ports (and server names) from `urlprefix-[name]:<port>` tags, inside --tcp-ports */
  readonly listen?: readonly TcpListen[];
  /** `proxy_protocol=v1|v2`: a PROXY protocol header opens every upstream connection */
  readonly proxyProtocol?: 'v1' | 'v2';
  /** proto=h2: `tls_server_name=` / `tls_skip_verify=` tags; absent = verify against the server's address */
  readonly serverTls?: UpstreamTlsSpec;
}

/**
 * How the certificate of a TLS upstream (proto=h2) is checked. By default it must chain to a trusted
 * CA (--upstream-ca, else the system store) and name the server's address (an IP SAN for an IP).
 */
export interface UpstreamTlsSpec {
  /** sent as SNI and verified against the certificate instead of the server's address */
  readonly serverName?: string;
  /** true: any certificate is accepted (nginx's `proxy_ssl_verify off`, Consul's TLSSkipVerify) */
  readonly skipVerify?: boolean;
}

export interface HttpsPolicy {
  /** plain-HTTP requests get a 308 to the HTTPS listener */
  readonly redirect: boolean;
  /** Strict-Transport-Security value for HTTPS responses, e.g. "max-age=31536000" */
  readonly hstsHeader?: string;
}

/**
 * Canary split (ingress-nginx semantics). Evaluated header -> cookie -> weight: a header or cookie whose
 * value is `always` forces the canary group, `never` the stable one; a header matching headerValue or
 * headerPattern forces the canary; otherwise `weight` percent of clients land in the canary, and stay
 * (the balancer sets `bucketCookie` to the client's draw, so a client moves only when the weight moves).
 */
export interface CanaryPolicy {
  /** instance tag that puts a server in the canary group */
  readonly tag: string;
  /** 0-100: share of weight-decided clients sent to the canary group */
  readonly weight: number;
  /** lower-case request header name */
  readonly header?: string;
  readonly headerValue?: string;
  /** a JavaScript regular expression source, matched against the header value */
  readonly headerPattern?: string;
  readonly cookie?: string;
  /** the cookie carrying a weight-decided client's draw (0-9999) */
  readonly bucketCookie: string;
}

/** Session affinity: a cookie naming the server (opaque id), or a consistent hash on a header or the client IP. */
export interface StickyPolicy {
  readonly mode: 'cookie' | 'header' | 'ip';
  /** cookie name (mode cookie) or lower-case header name (mode header) */
  readonly name: string;
  /** Max-Age of the cookie; 0 = a session cookie */
  readonly ttlSeconds: number;
  readonly secure: boolean;
  readonly httpOnly: boolean;
  readonly sameSite?: 'Strict' | 'Lax' | 'None';
}

export interface TrafficPolicy {
  readonly canary?: CanaryPolicy;
  readonly sticky?: StickyPolicy;
  /** Envoy panic threshold: below this percentage of pickable servers, pick among all of them; 0 = off */
  readonly panicThresholdPercent?: number;
  /** `allow=` / `deny=` (fabio syntax): who may reach the service (balancer/src/policy/access-rules.ts) */
  readonly access?: AccessRules;
  /** `rate=` / `burst=` / `rate_by=`: token bucket (balancer/src/policy/rate-limit.ts) */
  readonly rateLimit?: RateLimitSpec;
}

/** Client address rules; deny wins over allow; with an allow list, an address in none of it is denied. */
export interface AccessRules {
  /** CIDR texts as given, validated ("10.0.0.0/8", "fe80::/10") */
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

/** A token bucket per key: `ratePerSecond` tokens a second, at most `burst` saved. */
export interface RateLimitSpec {
  readonly ratePerSecond: number;
  readonly burst: number;
  /** what a bucket is per: the client address, or a request header (HTTP only; TCP counts per address) */
  readonly by: { readonly source: 'ip' } | { readonly source: 'header'; readonly name: string };
}

/** A request matches a route when its Host equals `host` ('' = any host) and its path starts with `pathPrefix`. */
export interface Route {
  readonly host: string;
  readonly pathPrefix: string;
  readonly upstream: string;
}

export interface RouteTable {
  /** content hash of upstreams+routes: equal tables have equal versions */
  readonly version: string;
  readonly upstreams: Readonly<Record<string, UpstreamSpec>>;
  /** explicit routes (from urlprefix- tags); a service name used as Host is an implicit route */
  readonly routes: readonly Route[];
  /** request scripts (balancer/src/scripts), in run order; part of the version */
  readonly scripts?: readonly ScriptSpec[];
}

/** A request script as uploaded: it travels to the workers with the table and is compiled there. */
export interface ScriptSpec {
  readonly name: string;
  readonly source: string;
  /** sha256 of the source, 12 hex digits */
  readonly version: string;
  /** ISO time of the upload */
  readonly loadedAt: string;
  /** services it runs for; ['*'] = every request */
  readonly services: readonly string[];
  /** time budget of one hook call */
  readonly timeoutMs: number;
  /** consecutive failures after which a worker stops running it (until a new version) */
  readonly maxFailures: number;
  /** where it came from: absent = the admin API, 'kv' = Consul KV (--scripts-kv) */
  readonly origin?: 'kv';
}

/** One service instance as discovery sees it (from /v1/health/service/:name). */
export interface CatalogInstance {
  readonly serviceId: string;
  readonly service: string;
  readonly node: string;
  /** Service.Address, or Node.Address when the service has none */
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  /** aggregated check status: critical if any check is critical, warning if any warning, else passing */
  readonly status: 'passing' | 'warning' | 'critical';
  /** Node.Address, only when it differs from `address` (templates read it as NodeAddress) */
  readonly nodeAddress?: string;
  /** true when a node or service maintenance check made the instance critical (templates: Status "maintenance") */
  readonly maintenance?: true;
}

/** Everything discovery knows at one moment: service name -> instances. */
export interface CatalogSnapshot {
  readonly services: Readonly<Record<string, readonly CatalogInstance[]>>;
}
