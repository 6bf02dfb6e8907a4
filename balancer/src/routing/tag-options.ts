// Per-service options read from Consul tags, and the defaults a table is built with.
// Pure: parse failures become warning strings, never exceptions, so one bad tag cannot
// take a whole service (or table) out.
import type { ActiveCheckSpec, Algorithm, HashKey, RetrySpec } from './types.js';

export interface TableDefaults {
  readonly algorithm: Algorithm;
  readonly hashKey?: HashKey;
  /** nginx max_fails, default 1 */
  readonly maxFails: number;
  /** nginx fail_timeout, default 10 s */
  readonly failTimeoutMs: number;
  readonly retry: RetrySpec;
  readonly check?: ActiveCheckSpec;
  /** true: only 'passing' instances; false: 'warning' ones too (only 'critical' dropped) */
  readonly passingOnly: boolean;
}

export const DEFAULT_TABLE_DEFAULTS: TableDefaults = Object.freeze({
  algorithm: 'roundrobin',
  maxFails: 1,
  failTimeoutMs: 10_000,
  retry: Object.freeze({ tries: 3, timeoutMs: 0, onStatuses: Object.freeze([502, 503, 504]), nonIdempotent: false }),
  passingOnly: true,
});

/** Service-level options found in tags; undefined = not set by any tag. */
export interface ServiceTagOptions {
  algorithm?: Algorithm;
  hashKey?: HashKey;
  maxFails?: number;
  failTimeoutMs?: number;
  retries?: number;
  check?: ActiveCheckSpec;
}

/** Instance-level options found in one instance's tags. */
export interface InstanceTagOptions {
  weight?: number;
  backup: boolean;
  down: boolean;
}

export function parseServiceTags(
  service: string,
  tags: readonly string[],
  defaults: TableDefaults,
  warnings: string[],
): ServiceTagOptions {
  void service; void tags; void defaults; void warnings;
  return {};
}

export function parseInstanceTags(service: string, tags: readonly string[], warnings: string[]): InstanceTagOptions {
  void service; void tags; void warnings;
  return { backup: false, down: false };
}

/** "10s", "500ms", "2m", "1h", or a bare number of seconds (nginx). Undefined when malformed. */
export function parseDurationMs(text: string): number | undefined {
  void text;
  return undefined;
}
