// The TCP side of a service's tags (pure): `proto=tcp` + `urlprefix-:<port>` and `proto=tcp+sni` +
// `urlprefix-<name>:<port>`, fabio's spelling; fabio's in-tag option form `urlprefix-:6379 proto=tcp`
// is read too. A port outside --tcp-ports is a warning for that service and is not served: a
// container's tag cannot open a port the operator did not allow.
import type { TcpListen, UpstreamProtocol } from '../routing/types.js';
import { inPortRange, type PortRange } from '../routing/tag-options.js';

const URLPREFIX = 'urlprefix-';
/** an exact DNS name, or one leading wildcard label ("*.example.com") */
const SERVER_NAME = /^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MAX_NAME = 253;

export type TcpProtocol = 'tcp' | 'tcp+sni';

export function isTcpProtocol(p: UpstreamProtocol | undefined): p is TcpProtocol {
  return p === 'tcp' || p === 'tcp+sni';
}

/** fabio's in-tag option: the first `urlprefix-... proto=tcp|tcp+sni` of the service, if any. */
export function protocolFromUrlprefixOptions(instancesTags: readonly (readonly string[])[]): TcpProtocol | undefined {
  for (const tags of instancesTags) {
    for (const tag of tags) {
      if (!tag.startsWith(URLPREFIX)) continue;
      const m = /\sproto=(tcp\+sni|tcp)(?:\s|$)/.exec(tag);
      if (m) return m[1] as TcpProtocol;
    }
  }
  return undefined;
}

/** The listens of a TCP service from its `urlprefix-` tags (all instances), sorted by port then name. */
export function tcpListensOf(
  service: string,
  protocol: TcpProtocol,
  instancesTags: readonly (readonly string[])[],
  allowed: PortRange | undefined,
  warnings: string[],
  tlsPorts: readonly number[] = [],
): TcpListen[] {
  const out = new Map<string, TcpListen>();
  const seen = new Set<string>();
  for (const tags of instancesTags) {
    for (const tag of tags) {
      if (!tag.startsWith(URLPREFIX) || seen.has(tag)) continue;
      seen.add(tag);
      const listen = parseTcpUrlprefix(service, protocol, tag, warnings);
      if (listen === undefined) continue;
      if (!inPortRange(allowed, listen.port)) {
        warnings.push(`service ${service}: tag "${tag}" not served: port ${listen.port} is outside --tcp-ports (${allowed ? `${allowed.from}-${allowed.to}` : 'none allowed'})`);
        continue;
      }
      if (protocol === 'tcp' && tlsPorts.includes(listen.port)) {
        warnings.push(tlsPortWarning(service, listen.port));
        continue;
      }
      out.set(`${listen.port}\u0000${listen.sni ?? ''}`, listen);
    }
  }
  return [...out.values()].sort((a, b) => a.port - b.port || cmp(a.sni ?? '', b.sni ?? ''));
}

/**
 * A plain proto=tcp claim of a --tls-listen port: refused. TLS terminates there for the HTTP services,
 * and serving raw TCP on it would need a first-bytes guess (a ClientHello or not) that stalls
 * server-first protocols; only proto=tcp+sni names, read from the hello, are passed through.
 */
export function tlsPortWarning(service: string, port: number): string {
  return `service ${service}: proto=tcp port ${port} is a --tls-listen port, not served (TLS terminates there; only proto=tcp+sni names are passed through)`;
}

/** `urlprefix-:<port>` (tcp) or `urlprefix-<name>:<port>` (tcp+sni); undefined + a warning when malformed. */
export function parseTcpUrlprefix(service: string, protocol: TcpProtocol, tag: string, warnings: string[]): TcpListen | undefined {
  const parts = tag.slice(URLPREFIX.length).trim().split(/\s+/);
  const spec = parts[0] ?? '';
  for (const opt of parts.slice(1)) {
    if (opt !== `proto=${protocol}`) warnings.push(`service ${service}: tag "${tag}": route option "${opt}" not supported, ignored`);
  }
  const bad = (why: string): undefined => {
    warnings.push(`service ${service}: tag "${tag}" ignored: ${why}`);
    return undefined;
  };
  const colon = spec.lastIndexOf(':');
  if (colon < 0) return bad(protocol === 'tcp' ? 'expected urlprefix-:<port>' : 'expected urlprefix-<server name>:<port>');
  const portText = spec.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return bad(`bad port "${portText.slice(0, 20)}"`);
  const port = Number(portText);
  const name = spec.slice(0, colon).toLowerCase();
  if (protocol === 'tcp') {
    if (name !== '') return bad('proto=tcp routes by port only: expected urlprefix-:<port> (use proto=tcp+sni to route by server name)');
    return { port };
  }
  if (name === '' || name.length > MAX_NAME || !SERVER_NAME.test(name)) return bad(`bad server name "${name.slice(0, 80)}"`);
  return { port, sni: name };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
