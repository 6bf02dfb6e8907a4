// The TCP side of one worker: the ports the TCP route table names (opened and closed as it changes,
// only inside --tcp-ports), and every relayed connection. Per connection: the port's service is
// looked up in the route table current at accept (an SNI port first reads the ClientHello's name),
// the access rules and rate limit are asked, a server is picked with the service's picker (its
// algorithm, health and panic rules) and connected with retry, then bytes are relayed untouched.
// A table swap leaves open connections on their server; a connection whose server left the table
// gets the drain timeout, then closes (it is spared if the server comes back in time).
import net, { type Server, type Socket } from 'node:net';
import type pino from 'pino';
import type { PeerHealth } from '../health/peer-health.js';
import type { Picker } from '../balancing/types.js';
import type { RouteTable, ServerSpec, UpstreamSpec } from '../routing/types.js';
import { upstreamOf } from '../routing/table-upstreams.js';
import { clientAddress, clientOriginOf } from '../proxy/client-origin.js';
import { inPortRange, type PortRange } from '../routing/tag-options.js';
import { EMPTY_TCP_ROUTES, serviceForName, type TcpPortRoute, type TcpRouteTable } from './tcp-routes.js';
import { connectWithRetry } from './tcp-connect.js';
import { startRelay, type Relay, type RelayEnd } from './tcp-relay.js';
import { encodeV1, encodeV2 } from './proxy-protocol.js';

/** What a worker's TCP side reads from the runtime: the current table and its pickers. */
export interface TcpTableView {
  readonly table: RouteTable;
  readonly pickers: ReadonlyMap<string, Picker>;
}

/** The verdict of the access rules and rate limit for a new connection (policy/*). */
export type AdmitVerdict = 'ok' | 'denied' | 'limited';

/** One finished TCP connection, for the access log and metrics. */
export interface TcpConnectionEnd extends RelayEnd {
  readonly service: string;
  readonly port: number;
  readonly client: string;
  readonly server?: string;
  readonly durationMs: number;
  /** connect attempts made (0: none was made) */
  readonly attempts: number;
  /** why nothing was relayed, when so */
  readonly refused?: 'no-route' | 'no-server' | 'all-failed' | 'denied' | 'limited' | 'bad-hello' | 'client-gone';
}

export interface TcpServiceSetOptions {
  readonly host: string;
  readonly allowed: PortRange | undefined;
  readonly idleMs: number;
  readonly drainMs: number;
  readonly connectMs: number;
  readonly log: pino.Logger;
  readonly now: () => number;
  readonly health: PeerHealth;
  readonly view: () => TcpTableView;
  /** access rules and rate limit; absent = everyone, unlimited */
  readonly admit?: (upstream: UpstreamSpec, clientIp: string) => AdmitVerdict;
  /** reads the TLS server name of an SNI port's connection (balancer/src/l4/sni-peek.ts); absent = SNI ports refuse */
  readonly readServerName?: (socket: Socket) => Promise<string | undefined>;
  /** the client address to use (PROXY protocol header from a trusted peer); absent = the socket's */
  readonly clientOf?: (socket: Socket) => Promise<{ readonly address: string; readonly port?: number } | undefined>;
  /** --tls-listen ports: the TLS listener owns them and passes tcp+sni names through (servePassthrough); never opened here */
  readonly tlsPorts?: readonly number[];
  readonly onConnectionEnd?: (end: TcpConnectionEnd) => void;
  readonly onConnectionOpen?: (service: string) => void;
}

interface OpenConnection {
  readonly service: string;
  readonly serverId: string;
  readonly relay: Relay;
  drainTimer?: NodeJS.Timeout;
}

/** the client port a PROXY header carried, by socket */
const clientPorts = new WeakMap<Socket, number>();

function clientPortOf(socket: Socket): number {
  return clientPorts.get(socket) ?? socket.remotePort ?? 0;
}

export class TcpServiceSet {
  #routes: TcpRouteTable = EMPTY_TCP_ROUTES;
  readonly #servers = new Map<number, Server>();
  readonly #open = new Set<OpenConnection>();
  /** client sockets accepted and not yet relaying (name read, rules, connect) */
  readonly #pending = new Set<Socket>();
  #stopped = false;

  constructor(private readonly opts: TcpServiceSetOptions) {}

  /** open connections (relaying) */
  get openConnections(): number {
    return this.#open.size + this.#pending.size;
  }

  get ports(): number[] {
    return [...this.#servers.keys()].sort((a, b) => a - b);
  }

  /** The new route table (and table): ports opened and closed, connections to departed servers drained. */
  apply(routes: TcpRouteTable, table: RouteTable): void {
    if (routes !== this.#routes) {
      this.#routes = routes;
      if (!this.#stopped) this.#syncPorts();
    }
    this.#drainDeparted(table);
  }

  /** Whether a --tls-listen port has tcp+sni names (only then does the TLS listener read the hello). */
  hasPassthroughNames(port: number): boolean {
    return (this.#routes.ports.get(port)?.byName?.size ?? 0) > 0;
  }

  /** The tcp+sni service a server name reaches on a port, if any. */
  passthroughServiceFor(port: number, serverName: string): string | undefined {
    const route = this.#routes.ports.get(port);
    return route?.byName === undefined ? undefined : serviceForName(route, serverName);
  }

  /**
   * A socket the TLS listener of a --tls-listen port accepted and did not terminate (its ClientHello
   * read and put back): relayed untouched to the service of `serverName`, as on a tcp+sni port.
   */
  servePassthrough(port: number, socket: Socket, serverName: string): void {
    this.#accept(port, socket, serverName);
  }

  /** Listening addresses of the open ports (tests). */
  async listening(): Promise<void> {
    await Promise.all([...this.#servers.values()].map((s) => (s.listening ? undefined : new Promise<void>((resolve) => {
      s.once('listening', () => resolve());
      s.once('close', () => resolve());
    }))));
  }

  /** Stop accepting on every port; open connections go on. */
  stopListening(): void {
    this.#stopped = true;
    for (const [port, server] of this.#servers) {
      server.close();
      this.#servers.delete(port);
    }
  }

  /** Close every connection now. */
  closeAll(): void {
    this.stopListening();
    for (const c of this.#open) c.relay.close('shutdown');
    for (const s of this.#pending) s.destroy();
  }

  #syncPorts(): void {
    const wanted = new Set<number>();
    const tlsPorts = new Set(this.opts.tlsPorts ?? []);
    // the TLS listener owns its ports (a plain claim of one was refused with the route table's warning)
    for (const port of this.#routes.ports.keys()) if (inPortRange(this.opts.allowed, port) && !tlsPorts.has(port)) wanted.add(port);
    for (const [port, server] of this.#servers) {
      if (wanted.has(port)) continue;
      server.close(); // open connections keep going
      this.#servers.delete(port);
      this.opts.log.info({ port }, 'tcp port closed');
    }
    for (const port of wanted) {
      if (this.#servers.has(port)) continue;
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.#accept(port, socket));
      server.on('error', (err) => {
        this.opts.log.warn({ port, err: (err as NodeJS.ErrnoException).code ?? err.message }, 'tcp port could not be opened');
        if (this.#servers.get(port) === server) this.#servers.delete(port);
      });
      server.listen({ host: this.opts.host, port }, () => this.opts.log.info({ port, host: this.opts.host }, 'tcp port open'));
      this.#servers.set(port, server);
    }
  }

  #drainDeparted(table: RouteTable): void {
    for (const c of this.#open) {
      const still = upstreamOf(table, c.service)?.servers.some((s) => s.id === c.serverId) === true;
      if (still && c.drainTimer !== undefined) {
        clearTimeout(c.drainTimer);
        c.drainTimer = undefined;
      } else if (!still && c.drainTimer === undefined) {
        c.drainTimer = setTimeout(() => c.relay.close('drained'), this.opts.drainMs);
        c.drainTimer.unref?.();
      }
    }
  }

  /** `serverName`: already read (TLS passthrough on a --tls-listen port) */
  #accept(port: number, socket: Socket, serverName?: string): void {
    const t0 = this.opts.now();
    socket.on('error', () => undefined); // a reset before the relay starts: handled by 'close'
    this.#pending.add(socket);
    const gone = new AbortController();
    socket.once('close', () => {
      this.#pending.delete(socket);
      gone.abort();
    });
    void this.#serve(port, socket, t0, gone.signal, serverName).catch((err) => {
      this.opts.log.error({ port, err }, 'tcp connection failed');
      socket.destroy();
    });
  }

  async #serve(port: number, socket: Socket, t0: number, gone: AbortSignal, knownName?: string): Promise<void> {
    const o = this.opts;
    let client = clientAddress(socket.remoteAddress);
    const finish = (service: string, fields: Partial<TcpConnectionEnd> & Pick<TcpConnectionEnd, 'reason'>) => {
      o.onConnectionEnd?.({ service, port, client, durationMs: o.now() - t0, attempts: 0, bytesIn: socket.bytesRead, bytesOut: socket.bytesWritten, ...fields });
    };
    const refuse = (service: string, refused: NonNullable<TcpConnectionEnd['refused']>, attempts = 0) => {
      socket.destroy();
      finish(service, { reason: 'closed', refused, attempts });
    };
    if (o.clientOf && knownName === undefined) {
      const fromHeader = await o.clientOf(socket);
      if (fromHeader === undefined) return refuse('', 'bad-hello');
      client = fromHeader.address;
      if (fromHeader.port !== undefined) clientPorts.set(socket, fromHeader.port);
    } else if (knownName !== undefined) {
      // from the TLS listener: its accept gate read any PROXY header (--proxy-protocol-from) already
      const origin = clientOriginOf(socket);
      client = origin.address;
      if (origin.carried) clientPorts.set(socket, origin.port);
    }
    const route: TcpPortRoute | undefined = this.#routes.ports.get(port);
    if (route === undefined) return refuse('', 'no-route');
    let serviceName = route.service;
    if (serviceName === undefined) {
      if (knownName === undefined && !o.readServerName) return refuse('', 'no-route');
      const name = knownName ?? await o.readServerName!(socket);
      if (name === undefined) return refuse('', 'bad-hello');
      serviceName = serviceForName(this.#routes.ports.get(port) ?? route, name);
      if (serviceName === undefined) return refuse('', 'no-route');
    }
    if (gone.aborted) return refuse(serviceName, 'client-gone');
    const view = o.view();
    const upstream = upstreamOf(view.table, serviceName);
    const picker = view.pickers.get(serviceName);
    if (upstream === undefined || picker === undefined) return refuse(serviceName, 'no-route');
    const verdict = o.admit?.(upstream, client) ?? 'ok';
    if (verdict !== 'ok') return refuse(serviceName, verdict);
    const req = { clientIp: client, headers: {}, url: '' };
    const outcome = await connectWithRetry({
      pick: (tried) => picker.pick(req, tried),
      onAttemptStart: (s) => o.health.onAttemptStart(s.id, o.now()),
      onAttemptFailed: (f) => o.health.onAttemptEnd(f.server.id, { ok: false, latencyMs: f.ms, error: `connect: ${f.error}` }, o.now()),
    }, upstream.retry.tries, o.connectMs, gone, o.now);
    if (!outcome.ok) return refuse(serviceName, outcome.reason, outcome.attempts);
    if (gone.aborted || socket.destroyed) {
      outcome.socket.destroy();
      o.health.onAttemptEnd(outcome.server.id, { ok: true, latencyMs: outcome.connectMs }, o.now());
      return finish(serviceName, { reason: 'closed', refused: 'client-gone', attempts: outcome.attempts, server: outcome.server.id });
    }
    if (upstream.proxyProtocol !== undefined) {
      // the backend learns the client's address first (proxy_protocol=v1|v2), before any relayed byte
      const addresses = { source: client, sourcePort: clientPortOf(socket), destination: clientAddress(socket.localAddress), destinationPort: socket.localPort ?? port };
      outcome.socket.write(upstream.proxyProtocol === 'v1' ? encodeV1(addresses) : encodeV2(addresses));
    }
    this.#relay(serviceName, port, socket, outcome.socket, outcome.server, client, t0, outcome.attempts, outcome.connectMs);
  }

  #relay(service: string, port: number, socket: Socket, upstream: Socket, server: ServerSpec, client: string, t0: number, attempts: number, connectMs: number): void {
    const o = this.opts;
    this.#pending.delete(socket);
    const conn: OpenConnection = {
      service, serverId: server.id,
      relay: startRelay(socket, upstream, o.idleMs, (end) => {
        this.#open.delete(conn);
        if (conn.drainTimer !== undefined) clearTimeout(conn.drainTimer);
        // the attempt (counted as in flight for leastconn while open) ends with the connection
        o.health.onAttemptEnd(server.id, { ok: true, latencyMs: connectMs }, o.now());
        o.onConnectionEnd?.({ ...end, service, port, client, server: server.id, durationMs: o.now() - t0, attempts });
      }),
    };
    this.#open.add(conn);
    o.onConnectionOpen?.(service);
    socket.resume();
    // a server that left the table while we were connecting: drained like the others
    const table = o.view().table;
    if (upstreamOf(table, service)?.servers.some((s) => s.id === server.id) !== true) {
      conn.drainTimer = setTimeout(() => conn.relay.close('drained'), o.drainMs);
    }
  }
}
