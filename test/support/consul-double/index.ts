// Consul HTTP API test double: an agent on a server node plus a catalog of several nodes (datacenter
// "dc1") on node:http, following Consul's source (see README.md "What is modelled"). Every option's
// default is a real agent's default. Test fixture, never shipped. Builtins only, so cli.ts can run
// inside a container with just node.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { listenCuttable } from '../cuttable-listener.js';
import { CheckRunner } from './check-runner.js';
import { CoordinateBatcher, DEFAULT_NOISE, IndexNoise, type NoiseOptions } from './noise.js';
import { createHandler } from './router.js';
import { ConsulState, type CatalogNode } from './state.js';

export interface ConsulDoubleOptions {
  /** listen address; default 127.0.0.1 */
  host?: string;
  /** default 0 (ephemeral) */
  port?: number;
  /** node name in catalog answers; default "consul-double" */
  nodeName?: string;
  /** node address in catalog answers; default 127.0.0.1 */
  nodeAddress?: string;
  /** default "dc1" */
  datacenter?: string;
  /** execute HTTP/TCP checks at their Interval; default false (they keep their initial status) */
  runChecks?: boolean;
  /** how often DeregisterCriticalServiceAfter is enforced; default 30 s (agent.go CheckReapInterval) */
  reapIntervalMs?: number;
  /**
   * DeregisterCriticalServiceAfter floor; default 60 s (agent.go CheckDeregisterIntervalMin). A test that
   * needs a fast reaper asks for both explicitly and says why.
   */
  deregisterCriticalMinMs?: number;
  /** check_update_interval: output-only results reach the catalog up to this late; default 5 min (0: at once) */
  checkUpdateIntervalMs?: number;
  /** enable_script_checks; default false: script/docker checks from the HTTP API are refused with a 500 */
  enableScriptChecks?: boolean;
  /** writes no catalog answer names (KV, coordinates); default DEFAULT_NOISE (1 KV write/s, coordinates); false: none */
  noise?: Partial<NoiseOptions> | false;
  /** [0, 1) source for Go map order and staggers; default Math.random */
  random?: () => number;
  /**
   * Consul's limits.http_max_conns_per_client (default 200): concurrent connections one client IP may
   * hold. Beyond it, Consul 1.9+ writes a raw `HTTP/1.1 429 Too Many Requests` and closes at once.
   */
  httpMaxConnsPerClient?: number;
  /**
   * Serve HTTPS too (Consul's `ports.https` listener, beside `ports.http`). agent/agent.go listenHTTP wraps
   * the listener in tls.NewListener and setupHTTPS calls http2.ConfigureServer(server, nil): HTTP/2 by
   * ALPN beside HTTP/1.1, with x/net/http2's defaults, 250 concurrent streams per connection
   * (defaultMaxStreams). http_max_conns_per_client still counts connections (connlimit sees net.Conns).
   */
  tls?: { readonly cert: string; readonly key: string };
  /** port of the HTTPS listener; default 0 (ephemeral) */
  httpsPort?: number;
}

/** Connection and request figures of the double (benchmarks, budget assertions). */
export interface ConsulDoubleStats {
  /** connections open now, all clients */
  readonly open: number;
  /** highest number of connections open at once from one client IP since start or resetStats() */
  readonly peakPerClient: number;
  /** connections refused with 429 since start or resetStats() */
  readonly rejected: number;
  /** HTTP requests answered since start or resetStats() */
  readonly requests: number;
  /** bytes sent (headers and bodies) since start or resetStats() */
  readonly bytes: number;
  /** the same figures per client IP (a benchmark's own client can bind 127.0.0.2 to be counted apart) */
  readonly peakByClient: Readonly<Record<string, number>>;
  readonly requestsByClient: Readonly<Record<string, number>>;
  readonly bytesByClient: Readonly<Record<string, number>>;
  /**
   * each client's requests by kind and endpoint (requestKind), e.g. "blocking /v1/health/service": a
   * benchmark tells what its requests per change are made of (held queries re-armed, polls, first reads)
   */
  readonly requestKindsByClient: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/**
 * A request's kind for the stats: `blocking` (a GET with a non-zero `index`: a held query or its
 * re-arm), `read` (a GET without one: a first read, a poll) or `write` (any other method), then its
 * endpoint, the path's first three segments (a service or key name left out), e.g. "read /v1/kv/balancer".
 */
export function requestKind(method: string | undefined, url: string | undefined): string {
  const [pathname, query = ''] = (url ?? '').split('?', 2);
  const kind = method !== 'GET' ? 'write' : /(^|&)index=0*[1-9]/.test(query) ? 'blocking' : 'read';
  return `${kind} ${pathname.split('/').slice(0, 4).join('/')}`;
}

export interface ConsulDouble {
  readonly host: string;
  readonly port: number;
  /** http://host:port */
  readonly url: string;
  /** with `tls`: Consul's HTTPS listener (HTTP/2 by ALPN), https://host:httpsPort */
  readonly httpsUrl?: string;
  readonly httpsPort?: number;
  /** close the listener and every open connection (in-flight blocking queries fail); state is kept */
  stop(): Promise<void>;
  /** listen again on the same host:port */
  start(): Promise<void>;
  /** delay every answer by ms (a slow agent) */
  setLatency(ms: number): void;
  /** stop for good: listener, connections and timers */
  close(): Promise<void>;
  /** the in-memory store, for assertions a real agent could not offer */
  readonly state: ConsulState;
  /** change http_max_conns_per_client at run time (open connections are not closed) */
  setMaxConnsPerClient(n: number): void;
  stats(): ConsulDoubleStats;
  /** peak, rejected, requests and bytes start over (open stays) */
  resetStats(): void;
  /** simulate a cluster without a leader: /v1/status/leader answers "", reads and writes 500 "No cluster leader" */
  setLeader(present: boolean): void;
  /** a serf member joins (leader.go handleAliveMember): its node with a passing serfHealth */
  nodeJoin(node: CatalogNode): void;
  /** serfHealth critical (handleFailedMember); false for an unknown node */
  nodeFail(node: string): boolean;
  /** serfHealth passing again */
  nodeRecover(node: string): boolean;
  /** graceful leave (handleLeftMember): the node and all its services and checks at one index */
  nodeLeave(node: string): boolean;
  /** change the KV noise rate (writes/s; 0 stops) */
  setNoiseRate(kvWritesPerSec: number): void;
}

export const DEFAULT_HTTP_MAX_CONNS_PER_CLIENT = 200;
/** x/net/http2 server.go defaultMaxStreams, what http2.ConfigureServer(server, nil) leaves in place */
export const GO_HTTP2_MAX_CONCURRENT_STREAMS = 250;
const clientIp = (s: net.Socket): string => (s.remoteAddress ?? '').replace(/^::ffff:/, '');
const TOO_MANY = 'HTTP/1.1 429 Too Many Requests\r\n\r\n';

export async function startConsulDouble(opts: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  const host = opts.host ?? '127.0.0.1';
  const state = new ConsulState({
    nodeName: opts.nodeName ?? 'consul-double',
    nodeAddress: opts.nodeAddress ?? '127.0.0.1',
    datacenter: opts.datacenter ?? 'dc1',
    nodeId: randomUUID(),
  });
  const random = opts.random ?? Math.random;
  const runner = new CheckRunner(state, {
    runChecks: opts.runChecks ?? false,
    reapIntervalMs: opts.reapIntervalMs ?? 30_000,
    deregisterCriticalMinMs: opts.deregisterCriticalMinMs ?? 60_000,
    checkUpdateIntervalMs: opts.checkUpdateIntervalMs ?? 5 * 60_000,
    random,
  });
  const coordinates = new CoordinateBatcher(state);
  const noise = new IndexNoise(state, coordinates, opts.noise === false ? { kvWritesPerSec: 0, coordinates: false } : { ...DEFAULT_NOISE, ...opts.noise });
  let latencyMs = 0;
  let leader = true;
  const handler = createHandler({
    state, runner, latencyMs: () => latencyMs, hasLeader: () => leader, enableScriptChecks: opts.enableScriptChecks ?? false,
    coordinateUpdate: (node, coord) => coordinates.update(node, coord), random,
  });
  let maxPerClient = opts.httpMaxConnsPerClient ?? DEFAULT_HTTP_MAX_CONNS_PER_CLIENT;
  const perClient = new Map<string, number>();
  let open = 0;
  let peakPerClient = 0;
  let rejected = 0;
  let requests = 0;
  /** bytes of connections closed since the last reset, plus the open ones' counters below */
  let bytesClosed = 0;
  const sockets = new Map<net.Socket, number>(); // open socket -> its bytesWritten at the last reset
  const bytes = () => {
    let n = bytesClosed;
    for (const [s, base] of sockets) n += s.bytesWritten - base;
    return n;
  };
  const peakBy = new Map<string, number>();
  const requestsBy = new Map<string, number>();
  const kindsBy = new Map<string, Map<string, number>>();
  const bytesClosedBy = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);
  const statsNow = (): ConsulDoubleStats => {
    const bytesBy = new Map(bytesClosedBy);
    for (const [s, base] of sockets) add(bytesBy, clientIp(s), s.bytesWritten - base);
    return {
      open, peakPerClient, rejected, requests, bytes: bytes(),
      peakByClient: Object.fromEntries(peakBy), requestsByClient: Object.fromEntries(requestsBy), bytesByClient: Object.fromEntries(bytesBy),
      requestKindsByClient: Object.fromEntries([...kindsBy].map(([ip, k]) => [ip, Object.fromEntries(k)])),
    };
  };
  const resetStats = () => {
    let current = 0;
    peakBy.clear();
    for (const [ip, v] of perClient) {
      current = Math.max(current, v);
      peakBy.set(ip, v);
    }
    peakPerClient = current;
    rejected = 0;
    requests = 0;
    bytesClosed = 0;
    requestsBy.clear();
    kindsBy.clear();
    bytesClosedBy.clear();
    for (const sock of sockets.keys()) sockets.set(sock, sock.bytesWritten);
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    // not Consul's API: figures for a benchmark that runs the double as its own process
    if (req.url === '/_double/stats' || req.url === '/_double/stats?reset') {
      const body = JSON.stringify(statsNow());
      if (req.url.endsWith('?reset')) resetStats();
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    requests++;
    const ip = clientIp(req.socket);
    add(requestsBy, ip, 1);
    const kinds = kindsBy.get(ip) ?? new Map<string, number>();
    add(kinds, requestKind(req.method, req.url), 1);
    kindsBy.set(ip, kinds);
    handler(req, res);
  };
  const server = http.createServer(onRequest);
  // ports.https beside ports.http, as an agent with both has: one handler, one connection limiter
  // (agent.go keeps one httpConnLimiter for every listener); the HTTP/2 compatibility API hands the
  // handler request/response objects of the same shape
  const secure = opts.tls
    ? http2.createSecureServer({ cert: opts.tls.cert, key: opts.tls.key, allowHTTP1: true, settings: { maxConcurrentStreams: GO_HTTP2_MAX_CONCURRENT_STREAMS } },
      onRequest as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void)
    : undefined;
  // Like Consul's connlimit: counted per client IP at accept time, before any byte is read. A refused
  // socket never reaches the HTTP parser (node's own connection listeners are called only for the
  // accepted ones), so a request it carried is not answered.
  const limitConnections = (srv: net.Server) => {
    const httpListeners = srv.listeners('connection') as ((s: net.Socket) => void)[];
    srv.removeAllListeners('connection');
    srv.on('connection', (socket: net.Socket) => {
      const ip = clientIp(socket);
      const n = (perClient.get(ip) ?? 0) + 1;
      if (maxPerClient > 0 && n > maxPerClient) {
        rejected++;
        socket.on('error', () => undefined);
        socket.end(TOO_MANY);
        return;
      }
      for (const l of httpListeners) l.call(srv, socket);
      perClient.set(ip, n);
      open++;
      sockets.set(socket, 0);
      if (n > peakPerClient) peakPerClient = n;
      if (n > (peakBy.get(ip) ?? 0)) peakBy.set(ip, n);
      socket.once('close', () => {
        open--;
        bytesClosed += socket.bytesWritten - (sockets.get(socket) ?? 0);
        add(bytesClosedBy, ip, socket.bytesWritten - (sockets.get(socket) ?? 0));
        sockets.delete(socket);
        const left = (perClient.get(ip) ?? 1) - 1;
        if (left <= 0) perClient.delete(ip);
        else perClient.set(ip, left);
      });
    });
  };
  limitConnections(server);
  if (secure) limitConnections(secure as unknown as net.Server);
  // Blocking queries last up to 10m + jitter; node's default request timeouts would cut them.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 30_000;
  // Go's http2 server has no idle timeout unless http.Server.IdleTimeout is set (Consul sets none)
  secure?.setTimeout(0);
  const listener = await listenCuttable(server, host, opts.port ?? 0);
  const port = listener.port;
  const secureListener = secure ? await listenCuttable(secure as unknown as net.Server, host, opts.httpsPort ?? 0) : undefined;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  let closed = false;
  const stop = async () => {
    await Promise.all([listener.cut(), secureListener?.cut()]);
  };

  return {
    host,
    port,
    url: `http://${hostInUrl}:${port}`,
    ...(secureListener ? { httpsPort: secureListener.port, httpsUrl: `https://${hostInUrl}:${secureListener.port}` } : {}),
    state,
    stop,
    async start() {
      if (closed) throw Object.assign(new Error('consul double is closed'), { code: 'ERR_CONSUL_DOUBLE_CLOSED' });
      await listener.restore();
      await secureListener?.restore();
    },
    setLatency(ms: number) {
      latencyMs = Math.max(0, ms);
    },
    setMaxConnsPerClient(n: number) {
      maxPerClient = Math.max(0, Math.floor(n));
    },
    stats: statsNow,
    resetStats,
    setLeader(present: boolean) {
      leader = present;
    },
    nodeJoin: (node) => state.nodeJoin(node),
    nodeFail: (node) => state.nodeFail(node),
    nodeRecover: (node) => state.nodeRecover(node),
    nodeLeave: (node) => state.nodeLeave(node),
    setNoiseRate: (n) => noise.setKvRate(n),
    async close() {
      if (closed) return;
      closed = true;
      runner.close();
      noise.close();
      coordinates.close();
      await stop();
    },
  };
}

export { ConsulState } from './state.js';
export type { Registration, ServiceDef, CheckDef, CheckStatus } from './registration.js';
