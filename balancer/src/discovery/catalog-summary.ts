// The catalog summary: one answer naming every service with its instance count, so a catalog move no
// signal explains (a passing instance of a quiet service deregistered or registered) costs one request
// and a read of the services whose count differs, instead of a read of every service.
// Consul's /v1/internal/ui/services (the web UI's service list, Consul 1.9+; an internal endpoint, so
// anything unexpected, a 404 or 403 included, makes discovery fall back to a rescan) answers a list of
// { Name, InstanceCount, ChecksPassing, ... } per service, with the index of the whole catalog.
// Pure mapping, no I/O.

export const CATALOG_SUMMARY_PATH = '/v1/internal/ui/services';

export type SummaryParse = { readonly ok: true; readonly counts: ReadonlyMap<string, number> } | { readonly ok: false; readonly reason: string };

/** Instance counts per service name (only services of the default peer: peered ones have a PeerName). */
export function parseCatalogSummary(body: unknown): SummaryParse {
  if (!Array.isArray(body)) return { ok: false, reason: `summary is not a list (${body === null ? 'null' : typeof body})` };
  const counts = new Map<string, number>();
  for (const row of body as unknown[]) {
    if (typeof row !== 'object' || row === null) return { ok: false, reason: 'summary row is not an object' };
    const r = row as { Name?: unknown; InstanceCount?: unknown; PeerName?: unknown };
    if (typeof r.Name !== 'string' || typeof r.InstanceCount !== 'number' || !Number.isSafeInteger(r.InstanceCount)) {
      return { ok: false, reason: 'summary row without Name or InstanceCount' };
    }
    if (typeof r.PeerName === 'string' && r.PeerName !== '') continue;
    counts.set(r.Name, (counts.get(r.Name) ?? 0) + r.InstanceCount);
  }
  return { ok: true, counts };
}

/**
 * Services whose instance count in the summary differs from what discovery holds (`held`: name ->
 * instances in its last health answer, all kinds counted). Names the summary lacks are left to the
 * catalog signal (a service gone), names discovery does not follow are skipped.
 */
export function servicesWithOtherCounts(counts: ReadonlyMap<string, number>, held: ReadonlyMap<string, number>, follows: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (const [name, n] of counts) {
    if (!follows(name)) continue;
    if (held.get(name) !== n) out.push(name);
  }
  return out.sort();
}
