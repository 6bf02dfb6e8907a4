// Where a service is reachable: published host address, container address on a Docker network, or a
// per-container override. Pure: host name resolution (registrator's fallback for 0.0.0.0) is the caller's.
import { checkHost } from '../../../common/host-port.js';
import type { ContainerView } from './container-view.js';

/** Label naming the Docker network whose container IP to register (implies internal addressing). */
export const NETWORK_LABEL = 'registrator.network';
/** Label forcing the service address of every port of the container. */
export const IP_LABEL = 'registrator.ip';

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

export function isWildcardHostIp(ip: string): boolean {
  return WILDCARDS.has(ip);
}

/** An address text Consul can use: non-empty, no whitespace or slash. */
export function isUsableAddress(text: string): boolean {
  return /^[^\s/]+$/.test(text);
}

export type ContainerIpResult =
  | { readonly ok: true; readonly ip: string }
  | { readonly ok: false; readonly key: string; readonly value: string; readonly reason: string };

/**
 * The container's IP: on the network named by the registrator.network label, else on the network of its
 * network mode, else on the first network (by name) that has an IP.
 */
export function containerIp(c: ContainerView): ContainerIpResult {
  const wanted = c.labels[NETWORK_LABEL];
  if (wanted !== undefined && wanted !== '') {
    const ip = c.networks[wanted]?.IPAddress;
    if (ip) return { ok: true, ip };
    return {
      ok: false, key: NETWORK_LABEL, value: wanted,
      reason: `container has no IP on Docker network "${wanted}" (networks: ${Object.keys(c.networks).join(', ') || 'none'})`,
    };
  }
  const byMode = c.networks[c.networkMode === 'default' ? 'bridge' : c.networkMode]?.IPAddress;
  if (byMode) return { ok: true, ip: byMode };
  for (const name of Object.keys(c.networks).sort()) {
    const ip = c.networks[name]?.IPAddress;
    if (ip) return { ok: true, ip };
  }
  return {
    ok: false, key: 'NetworkSettings.Networks', value: c.networkMode,
    reason: 'container has no IP address on any Docker network (internal addressing impossible)',
  };
}

/** The per-container address override: registrator.ip label, then the -useIpFromLabel label (CIDR suffix cut). */
export function addressOverride(
  c: ContainerView,
  useIpFromLabel: string | undefined,
): { address?: string; problem?: { key: string; value: string; reason: string } } {
  const candidates: Array<[string, string | undefined]> = [[IP_LABEL, c.labels[IP_LABEL]]];
  if (useIpFromLabel) candidates.push([useIpFromLabel, c.labels[useIpFromLabel]]);
  for (const [key, raw] of candidates) {
    if (raw === undefined || raw === '') continue;
    // a CIDR prefix length ("10.0.0.7/24", as some IPAM labels carry) is cut; any other "/" is refused below
    const address = raw.trim().replace(/\/\d{1,3}$/, '');
    // a bare host (IPv4, IPv6, DNS name): "10.0.0.1:8080" would reach the balancer as a broken address
    const host = checkHost(address);
    if (!host.ok) return { problem: { key, value: raw, reason: `not a bare IP address or host name: ${host.reason}` } };
    return { address: host.host };
  }
  return {};
}
