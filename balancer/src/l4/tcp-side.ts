// Wiring of a worker's TCP side into its runtime (proxy/proxy-runtime.ts): the service set, the
// route follower, the access log line per connection. Undefined without --tcp-ports.
import type { PeerHealth } from '../health/peer-health.js';
import type { ProxyContext } from '../proxy/proxy-context.js';
import type { RouteTable } from '../routing/types.js';
import type { WorkerRuntimeOptions } from '../worker/runtime.js';
import { DEFAULT_HELLO_TIMEOUT_MS, DEFAULT_TCP_DRAIN_MS, DEFAULT_TCP_IDLE_MS } from './l4-config.js';
import { peekFirstBytes } from '../proxy/accept-peek.js';
import { MAX_HELLO_BYTES, readClientHello } from './client-hello.js';
import { decodeProxyHeader, V2_MAX_BYTES } from './proxy-protocol.js';
import { CidrMatcher, parseCidrList } from '../proxy/cidr.js';
import { clientAddress } from '../proxy/client-origin.js';
import { TcpRouteFollower } from './tcp-route-follower.js';
import { TcpServiceSet, type TcpConnectionEnd } from './tcp-service-set.js';
import type { TlsPassthrough } from '../tls/worker-tls.js';

export interface TcpSide {
  readonly set: TcpServiceSet;
  /** tcp+sni names on --tls-listen ports, for the TLS listener (tls/worker-tls.ts) */
  readonly passthrough: TlsPassthrough;
  follow(table: RouteTable, delta?: ReadonlySet<string>): void;
}

export function createTcpSide(opts: WorkerRuntimeOptions, ctx: ProxyContext, health: PeerHealth, now: () => number): TcpSide | undefined {
  const l4 = opts.l4;
  if (l4?.tcpPorts === undefined) return undefined;
  const tcpLog = opts.logger.child({ component: 'tcp' });
  const access = ctx.accessLog;
  const observer = ctx.observer;
  const follower = new TcpRouteFollower(l4.tcpPorts, opts.tlsPorts);
  const trustedSenders = new CidrMatcher(parseCidrList(l4.proxyProtocolFrom ?? []));
  // --proxy-protocol-from: those peers must open with a PROXY header (v1/v2), whose address is the client's;
  // from anyone else nothing is read (their first bytes are the protocol's own)
  const clientOf = trustedSenders.empty ? undefined : async (socket: import('node:net').Socket) => {
    const peer = clientAddress(socket.remoteAddress);
    if (!trustedSenders.has(peer)) return { address: peer };
    const r = await peekFirstBytes(socket, (bytes) => {
      const v = decodeProxyHeader(bytes);
      if (v.state !== 'done') return v;
      const value = v.header.kind === 'proxy' ? { address: clientAddress(v.header.addresses.source), port: v.header.addresses.sourcePort } : { address: peer };
      return { state: 'done', value, consumed: v.length };
    }, { maxBytes: V2_MAX_BYTES, timeoutMs: l4.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS });
    if (!r.ok) tcpLog.debug({ peer, reason: r.reason }, 'PROXY protocol header missing or malformed, closed');
    return r.ok ? r.value : undefined;
  };
  const set = new TcpServiceSet({
    host: l4.tcpHost,
    allowed: l4.tcpPorts,
    idleMs: l4.idleMs ?? DEFAULT_TCP_IDLE_MS,
    drainMs: l4.drainMs ?? DEFAULT_TCP_DRAIN_MS,
    connectMs: opts.timeouts.connectMs,
    log: tcpLog,
    now,
    health,
    view: () => ctx.current,
    clientOf,
    admit: ctx.guard === undefined ? undefined : (upstream, clientIp) => {
      const v = ctx.guard!.check(upstream, clientIp);
      return v.ok ? 'ok' : v.status === 403 ? 'denied' : 'limited';
    },
    readServerName: async (socket) => {
      const r = await peekFirstBytes(socket, (bytes) => {
        const v = readClientHello(bytes);
        return v.state === 'done' ? { state: 'done', value: v.serverName } : v;
      }, { maxBytes: MAX_HELLO_BYTES + 64, timeoutMs: l4.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS });
      if (!r.ok) tcpLog.debug({ client: socket.remoteAddress, reason: r.reason }, 'no usable TLS ClientHello, closed');
      return r.ok ? r.value : undefined;
    },
    tlsPorts: opts.tlsPorts,
    onConnectionEnd: (end: TcpConnectionEnd) => {
      access?.info(end, 'tcp connection');
      // connects that failed: all of them, or all but the one that relayed (metrics/edge-metrics.ts)
      const connectErrors = end.server !== undefined ? Math.max(0, end.attempts - 1) : end.attempts;
      observer?.tcpEnded?.(end.service, end.refused ?? 'relayed', end.bytesIn, end.bytesOut, end.durationMs, connectErrors, end.refused === undefined);
    },
    onConnectionOpen: observer?.tcpOpened === undefined ? undefined : (service) => observer.tcpOpened!(service),
  });
  const passthrough: TlsPassthrough = {
    helloTimeoutMs: l4.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
    hasNames: (port) => set.hasPassthroughNames(port),
    serviceFor: (port, name) => set.passthroughServiceFor(port, name),
    relay: (port, socket, name) => set.servePassthrough(port, socket, name),
  };
  let lastWarnings = '';
  return {
    set,
    passthrough,
    follow(table, delta) {
      if (!follower.follow(table, delta)) {
        set.apply(follower.routes, table);
        return;
      }
      const w = follower.routes.warnings.join('\n');
      if (w !== lastWarnings && w !== '') tcpLog.warn({ warnings: follower.routes.warnings }, 'tcp routes');
      lastWarnings = w;
      set.apply(follower.routes, table);
    },
  };
}
