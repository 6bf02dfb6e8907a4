// Content hash of a routing table: equal content gives an equal version regardless of the order in
// which upstreams, object keys or routes were produced (servers are sorted by the producers).
import { createHash } from 'node:crypto';
import type { Route, UpstreamSpec } from './types.js';

/**
 * Version of a table: a hash over one hash per upstream (cached on the frozen spec, so an unchanged
 * upstream is never serialized again) combined independently of order, plus the routes' hash. A change
 * to one service costs that service's serialization, not the catalog's.
 */
export function tableVersion(upstreams: Readonly<Record<string, UpstreamSpec>>, routes: readonly Route[]): string {
  const acc = Buffer.alloc(20);
  for (const name of Object.keys(upstreams)) xorInto(acc, upstreamDigest(name, upstreams[name]));
  return versionFrom(acc, routesHash(routes));
}

/** The version from an accumulator of upstreamDigest()s and the routes' hash (incremental builders). */
export function versionFrom(acc: Buffer, routesDigest: string): string {
  return createHash('sha1').update(acc).update(routesDigest).digest('hex');
}

export function routesHash(routes: readonly Route[]): string {
  const sortedRoutes = [...routes].sort(compareRoutes);
  return createHash('sha1').update(canonicalJson(sortedRoutes)).digest('hex');
}

const specHashes = new WeakMap<object, string>();

/** sha1 of one upstream spec's canonical JSON, cached per (frozen) object. */
export function upstreamHash(spec: UpstreamSpec): string {
  let h = specHashes.get(spec);
  if (h === undefined) {
    h = createHash('sha1').update(canonicalJson(spec)).digest('hex');
    if (Object.isFrozen(spec)) specHashes.set(spec, h);
  }
  return h;
}

/** One upstream's contribution to the table version (name and content). */
export function upstreamDigest(name: string, spec: UpstreamSpec): Buffer {
  return createHash('sha1').update(name).update('\u0000').update(upstreamHash(spec)).digest();
}

export function xorInto(acc: Buffer, digest: Buffer): void {
  for (let i = 0; i < acc.length; i++) acc[i] ^= digest[i];
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
