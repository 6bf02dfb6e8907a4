// Pure mapping of Consul's /v1/health/service/<name> answer to CatalogInstance records.
import type { CatalogInstance } from '../routing/types.js';

/** The parts of one /v1/health/service entry we read (Consul sends more). */
export interface HealthEntry {
  readonly Node?: { readonly Node?: string; readonly Address?: string };
  readonly Service?: {
    readonly ID?: string;
    readonly Service?: string;
    readonly Address?: string;
    readonly Port?: number;
    readonly Tags?: readonly string[] | null;
    readonly Meta?: Readonly<Record<string, string>> | null;
  };
  readonly Checks?: readonly { readonly Status?: string }[] | null;
}

export function aggregateStatus(checks: readonly { readonly Status?: string }[] | null | undefined): CatalogInstance['status'] {
  let warning = false;
  for (const c of checks ?? []) {
    if (c.Status === 'critical') return 'critical';
    if (c.Status === 'warning') warning = true;
    else if (c.Status !== 'passing') return 'critical'; // maintenance and unknown states take the instance out
  }
  return warning ? 'warning' : 'passing';
}

/** Entries without a usable address or port are skipped: they cannot be proxied to. */
export function toInstances(service: string, entries: unknown): CatalogInstance[] {
  if (!Array.isArray(entries)) return [];
  const out: CatalogInstance[] = [];
  for (const e of entries as HealthEntry[]) {
    const svc = e?.Service;
    const port = svc?.Port;
    const address = svc?.Address || e?.Node?.Address || '';
    if (!svc || typeof port !== 'number' || port <= 0 || port > 65535 || !address) continue;
    out.push({
      serviceId: svc.ID ?? `${address}:${port}`,
      service: svc.Service ?? service,
      node: e.Node?.Node ?? '',
      address,
      port,
      tags: [...(svc.Tags ?? [])],
      meta: { ...(svc.Meta ?? {}) },
      status: aggregateStatus(e.Checks),
    });
  }
  out.sort((a, b) => (a.serviceId < b.serviceId ? -1 : a.serviceId > b.serviceId ? 1 : a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return out;
}
