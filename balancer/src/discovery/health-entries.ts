// Pure mapping of Consul's /v1/health/service/<name> answer to CatalogInstance records, validated one
// instance at a time: a malformed instance (Address: 123, Tags: [1], Port: 1.5, ...) is skipped with a
// warning naming it and its siblings are kept; an answer that is not a list at all is "unusable", and
// the caller keeps that service's last good instances.
import { checkHost, checkPort, quoteForReason } from '../../../common/host-port.js';
import type { CatalogInstance } from '../routing/types.js';

/** The parts of one /v1/health/service entry we read (Consul sends more). */
export interface HealthEntry {
  readonly Node?: { readonly Node?: string; readonly Address?: string };
  readonly Service?: {
    readonly Kind?: string;
    readonly ID?: string;
    readonly Service?: string;
    readonly Address?: string;
    readonly Port?: number;
    readonly Tags?: readonly string[] | null;
    readonly Meta?: Readonly<Record<string, string>> | null;
  };
  readonly Checks?: readonly { readonly CheckID?: string; readonly Status?: string }[] | null;
}

const NODE_MAINTENANCE = '_node_maintenance';
const SERVICE_MAINTENANCE = '_service_maintenance:';

/**
 * Critical if any check is critical, or is a maintenance check (node or service maintenance takes the
 * instance out at once, whatever its other checks say), or has an unknown status; else warning if any
 * is warning; else passing.
 */
export function aggregateStatus(checks: readonly { readonly CheckID?: string; readonly Status?: string }[] | null | undefined): CatalogInstance['status'] {
  let warning = false;
  for (const c of Array.isArray(checks) ? checks : []) {
    const id = typeof c?.CheckID === 'string' ? c.CheckID : '';
    if (id === NODE_MAINTENANCE || id.startsWith(SERVICE_MAINTENANCE)) return 'critical';
    if (c?.Status === 'critical') return 'critical';
    if (c?.Status === 'warning') warning = true;
    else if (c?.Status !== 'passing') return 'critical'; // maintenance and unknown states take the instance out
  }
  return warning ? 'warning' : 'passing';
}

/** A node or service maintenance check is present (Consul adds it as critical). */
export function inMaintenance(checks: readonly { readonly CheckID?: string }[] | null | undefined): boolean {
  for (const c of Array.isArray(checks) ? checks : []) {
    const id = typeof c?.CheckID === 'string' ? c.CheckID : '';
    if (id === NODE_MAINTENANCE || id.startsWith(SERVICE_MAINTENANCE)) return true;
  }
  return false;
}

/** Registrations that are not a typical service: Connect sidecars and gateways are never proxied to. */
const SKIPPED_KINDS = new Set(['connect-proxy', 'mesh-gateway', 'terminating-gateway', 'ingress-gateway', 'api-gateway']);

export interface HealthAnswer {
  readonly instances: CatalogInstance[];
  readonly warnings: string[];
  /** false when the answer as a whole cannot be read (not a list): keep the last good instances */
  readonly usable: boolean;
}

export function parseHealthAnswer(service: string, entries: unknown): HealthAnswer {
  const warnings: string[] = [];
  if (!Array.isArray(entries)) {
    return { instances: [], warnings: [`service ${service}: health answer is not a list (${entries === null ? 'null' : typeof entries}), keeping its last good instances`], usable: false };
  }
  const out: CatalogInstance[] = [];
  entries.forEach((e: unknown, i: number) => {
    const inst = toInstance(service, e, i, warnings);
    if (inst) out.push(inst);
  });
  out.sort((a, b) => (a.serviceId < b.serviceId ? -1 : a.serviceId > b.serviceId ? 1 : a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { instances: out, warnings, usable: true };
}

/** Entries without a usable address or port are skipped: they cannot be proxied to. */
export function toInstances(service: string, entries: unknown): CatalogInstance[] {
  return parseHealthAnswer(service, entries).instances;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function toInstance(service: string, e: unknown, i: number, warnings: string[]): CatalogInstance | undefined {
  const entry = isRecord(e) ? e : undefined;
  const svc = entry && isRecord(entry.Service) ? entry.Service : undefined;
  const nodeRec = entry && isRecord(entry.Node) ? entry.Node : undefined;
  const rawId = svc?.ID;
  const name = `service ${service} instance ${typeof rawId === 'string' && rawId ? quoteForReason(rawId) : `#${i}`}`;
  if (!svc) {
    warnings.push(`${name}: entry has no Service object, skipped`);
    return undefined;
  }
  if (typeof svc.Kind === 'string' && SKIPPED_KINDS.has(svc.Kind)) return undefined; // not an error: a sidecar
  if (rawId !== undefined && typeof rawId !== 'string') {
    warnings.push(`${name}: ID is not a string, skipped`);
    return undefined;
  }
  // Port 0 / missing: a service registered without a port (nothing to proxy to), skipped quietly
  if (svc.Port === undefined || svc.Port === null || svc.Port === 0) return undefined;
  const port = typeof svc.Port === 'number' ? checkPort(svc.Port) : { ok: false as const, reason: `port must be a number, got ${typeof svc.Port}` };
  if (!port.ok) {
    warnings.push(`${name}: ${port.reason}, skipped`);
    return undefined;
  }
  const serviceAddress = svc.Address;
  const nodeAddress = nodeRec?.Address;
  if (serviceAddress !== undefined && serviceAddress !== null && typeof serviceAddress !== 'string') {
    warnings.push(`${name}: Address must be a string, got ${typeof serviceAddress}, skipped`);
    return undefined;
  }
  const addressText = serviceAddress || (typeof nodeAddress === 'string' ? nodeAddress : '');
  if (!addressText) return undefined; // no address at all: nothing to proxy to
  const host = checkHost(addressText);
  if (!host.ok) {
    warnings.push(`${name}: ${host.reason}, skipped`);
    return undefined;
  }
  const tagsRaw = svc.Tags;
  if (tagsRaw !== undefined && tagsRaw !== null && (!Array.isArray(tagsRaw) || tagsRaw.some((t) => typeof t !== 'string'))) {
    warnings.push(`${name}: Tags must be a list of strings, skipped`);
    return undefined;
  }
  const meta: Record<string, string> = {};
  if (isRecord(svc.Meta)) {
    for (const [k, v] of Object.entries(svc.Meta)) {
      if (typeof v === 'string') meta[k] = v;
      else warnings.push(`${name}: Meta ${quoteForReason(k)} is not a string, ignored`);
    }
  }
  const node = typeof nodeRec?.Node === 'string' ? nodeRec.Node : '';
  const checks = Array.isArray(entry?.Checks) ? (entry.Checks as { CheckID?: string; Status?: string }[]) : [];
  const address = host.kind === 'ipv6' ? host.host : addressText;
  const nodeAddressText = typeof nodeAddress === 'string' ? nodeAddress : '';
  return {
    serviceId: typeof rawId === 'string' && rawId ? rawId : `${addressText}:${port.port}`,
    service: typeof svc.Service === 'string' ? svc.Service : service,
    node,
    address,
    port: port.port,
    tags: [...((tagsRaw as string[] | null | undefined) ?? [])],
    meta,
    status: aggregateStatus(checks),
    // the renderer's views need these two; absent in the common case so dynamic mode stays lean
    ...(nodeAddressText && nodeAddressText !== address ? { nodeAddress: nodeAddressText } : {}),
    ...(inMaintenance(checks) ? { maintenance: true as const } : {}),
  };
}

const RAFT_INDEX_FIELDS = ['CreateIndex', 'ModifyIndex'] as const;

/**
 * Every raft index a /v1/health/service answer names: CreateIndex and ModifyIndex of each instance's
 * Node, Service and Checks. Each index is one Consul write; an index named here was a write to this
 * service (or its node) that the answer already reflects, so a catalog move at that index is explained.
 */
export function answerIndexes(entries: unknown): number[] {
  const out: number[] = [];
  if (!Array.isArray(entries)) return out;
  const add = (o: unknown) => {
    if (!isRecord(o)) return;
    for (const f of RAFT_INDEX_FIELDS) {
      const v = o[f];
      if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) out.push(v);
    }
  };
  for (const e of entries) {
    if (!isRecord(e)) continue;
    add(e.Node);
    add(e.Service);
    if (Array.isArray(e.Checks)) for (const c of e.Checks) add(c);
  }
  return out;
}
