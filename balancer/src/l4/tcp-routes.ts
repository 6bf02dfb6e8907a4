// The TCP part of a routing table (pure): which service each port serves, and on an SNI port which
// service each TLS server name reaches. Built from the TCP upstreams of a table whenever one of them
// changes; a worker opens exactly the ports this names. Rules:
// - a port is claimed by the services whose `listen` names it; services are visited in name order and
//   the first claim wins (a later one is a warning), as HTTP routes do;
// - a port with any proto=tcp+sni route is an SNI port: a plain proto=tcp claim on it is refused
//   (peeking for a ClientHello would stall server-first protocols such as SMTP or MySQL);
// - a plain proto=tcp claim of a --tls-listen port is refused (l4/tcp-tags.ts tlsPortWarning);
// - the port range is checked again here (defence in depth: an admin upstream has no builder warning).
import type { UpstreamSpec } from '../routing/types.js';
import { inPortRange, type PortRange } from '../routing/tag-options.js';
import { tlsPortWarning } from './tcp-tags.js';

export interface TcpPortRoute {
  readonly port: number;
  /** proto=tcp: the one service of the port */
  readonly service?: string;
  /** proto=tcp+sni: server name -> service (exact names; "*.example.com" entries match one label) */
  readonly byName?: ReadonlyMap<string, string>;
}

export interface TcpRouteTable {
  readonly ports: ReadonlyMap<number, TcpPortRoute>;
  readonly warnings: readonly string[];
}

export const EMPTY_TCP_ROUTES: TcpRouteTable = Object.freeze({ ports: new Map(), warnings: [] });

/** `upstreams`: the table's (or, for the nginx template, what the tags say: render/helpers.ts tcpRoutes) */
export function buildTcpRoutes(upstreams: Iterable<Pick<UpstreamSpec, 'name' | 'protocol' | 'listen'>>, allowed: PortRange | undefined,
  tlsPorts: readonly number[] = []): TcpRouteTable {
  const warnings: string[] = [];
  const sorted = [...upstreams].filter((u) => u.listen !== undefined && u.listen.length > 0).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const sniPorts = new Set<number>();
  for (const u of sorted) if (u.protocol === 'tcp+sni') for (const l of u.listen!) if (l.sni !== undefined) sniPorts.add(l.port);
  const plain = new Map<number, string>();
  const named = new Map<number, Map<string, string>>();
  for (const u of sorted) {
    for (const l of u.listen!) {
      if (!inPortRange(allowed, l.port)) {
        warnings.push(`service ${u.name}: port ${l.port} is outside --tcp-ports, not served`);
        continue;
      }
      if (u.protocol === 'tcp+sni' && l.sni !== undefined) {
        let names = named.get(l.port);
        if (!names) named.set(l.port, (names = new Map()));
        const kept = names.get(l.sni);
        if (kept === undefined) names.set(l.sni, u.name);
        else if (kept !== u.name) warnings.push(`tcp port ${l.port} name ${l.sni}: claimed by ${kept} and ${u.name}; ${kept} keeps it`);
      } else if (u.protocol === 'tcp' && l.sni === undefined) {
        if (tlsPorts.includes(l.port)) warnings.push(tlsPortWarning(u.name, l.port));
        else if (sniPorts.has(l.port)) warnings.push(`service ${u.name}: tcp port ${l.port} routes by server name (proto=tcp+sni), plain proto=tcp claim refused`);
        else if (!plain.has(l.port)) plain.set(l.port, u.name);
        else if (plain.get(l.port) !== u.name) warnings.push(`tcp port ${l.port}: claimed by ${plain.get(l.port)} and ${u.name}; ${plain.get(l.port)} keeps it`);
      }
    }
  }
  const ports = new Map<number, TcpPortRoute>();
  for (const [port, service] of plain) ports.set(port, Object.freeze({ port, service }));
  for (const [port, byName] of named) ports.set(port, Object.freeze({ port, byName }));
  return Object.freeze({ ports, warnings });
}

/** The service a server name reaches on an SNI port: the exact name, else "*.<parent>" (one label). */
export function serviceForName(route: TcpPortRoute, serverName: string | undefined): string | undefined {
  if (route.service !== undefined) return route.service;
  if (serverName === undefined || route.byName === undefined) return undefined;
  const name = serverName.toLowerCase();
  const exact = route.byName.get(name);
  if (exact !== undefined) return exact;
  const dot = name.indexOf('.');
  return dot > 0 ? route.byName.get(`*${name.slice(dot)}`) : undefined;
}
