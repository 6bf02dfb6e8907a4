// Content hash of a routing table: equal content gives an equal version regardless of the order in
// which upstreams, object keys or routes were produced (servers are sorted by the producers).
import { createHash } from 'node:crypto';
import type { Route, UpstreamSpec } from './types.js';

export function tableVersion(upstreams: Readonly<Record<string, UpstreamSpec>>, routes: readonly Route[]): string {
  const sortedRoutes = [...routes].sort(compareRoutes);
  return createHash('sha1').update(canonicalJson({ upstreams, routes: sortedRoutes })).digest('hex');
}

export function compareRoutes(a: Route, b: Route): number {
  return cmp(a.host, b.host) || cmp(a.pathPrefix, b.pathPrefix) || cmp(a.upstream, b.upstream);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** JSON with object keys sorted and undefined fields dropped, so the text depends on content only. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    // children are visited even when the parent is already frozen: a frozen shell may hold mutable parts
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}
