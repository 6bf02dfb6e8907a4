// Pure mapping of the shared catalog (what discovery keeps per service) to what templates see:
// consul-template's HealthService and CatalogSnapshot shapes, in a stable order so unchanged data
// renders identically. The tag of `service "tag.name"` filters here, as Consul's ?tag= would.
import type { CatalogInstance } from '../routing/types.js';
import type { ServiceInstanceView, ServiceSummaryView } from './dependencies.js';

export function instanceViews(instances: readonly CatalogInstance[] | undefined, tag?: string): ServiceInstanceView[] {
  const out: ServiceInstanceView[] = [];
  for (const i of instances ?? []) {
    if (tag !== undefined && !i.tags.includes(tag)) continue;
    out.push(Object.freeze({
      ID: i.serviceId,
      Name: i.service,
      Node: i.node,
      NodeAddress: i.nodeAddress ?? i.address,
      Address: i.address,
      Port: i.port,
      Tags: Object.freeze([...i.tags]),
      Meta: Object.freeze({ ...i.meta }),
      Status: i.maintenance ? 'maintenance' : i.status,
    }));
  }
  return out.sort((a, b) => (a.Node < b.Node ? -1 : a.Node > b.Node ? 1 : a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0));
}

/** The `services` list: every catalog name with its tags (sorted), as /v1/catalog/services gives them. */
export function summaryViews(names: Iterable<string>, tagsOf: (name: string) => readonly string[]): ServiceSummaryView[] {
  return [...names]
    .sort()
    .map((Name) => Object.freeze({ Name, Tags: Object.freeze([...tagsOf(Name)].sort()) }));
}
