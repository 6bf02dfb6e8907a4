// Follows one Consul KV prefix with blocking queries (the shared blockingFetch: index reset rules,
// bounded wait and deadline) and hands the whole prefix, decoded, to onChange whenever its content
// changed: a return is no proof of change. A missing prefix (404) is an empty one. Failures back
// off with jitter and the loop recovers; it ends when the signal aborts.
import { backoffDelay, DEFAULT_BACKOFF, sleep } from '../../../common/backoff.js';
import { blockingFetch, type ConsulEndpoint } from '../discovery/blocking-query.js';
import { watchSlot, type WatchSlot } from '../discovery/watch-slot.js';

export interface KvPrefixWatchOptions {
  readonly endpoint: ConsulEndpoint;
  /** e.g. "balancer/policy/" */
  readonly prefix: string;
  readonly waitMs: number;
  readonly minQueryIntervalMs: number;
  /** key (without the prefix) -> value text, for the whole prefix */
  readonly onChange: (entries: Readonly<Record<string, string>>) => void;
  readonly onError?: (err: Error, consecutive: number) => void;
  readonly random?: () => number;
  /** the watcher's way through the primary's connection budget (blocking on a reserved slot, or polling); default: blocking */
  readonly slot?: WatchSlot;
}

interface KvEntry {
  readonly Key?: unknown;
  readonly Value?: unknown;
}

/** The decoded entries of a recurse answer, keys relative to the prefix; folders and the prefix itself left out. */
export function decodeKvEntries(prefix: string, body: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(body)) return out;
  for (const e of body as KvEntry[]) {
    if (typeof e?.Key !== 'string' || !e.Key.startsWith(prefix)) continue;
    const key = e.Key.slice(prefix.length);
    if (key === '' || key.endsWith('/')) continue;
    out[key] = typeof e.Value === 'string' ? Buffer.from(e.Value, 'base64').toString('utf8') : '';
  }
  return out;
}

export async function watchKvPrefix(opts: KvPrefixWatchOptions, signal: AbortSignal): Promise<void> {
  const path = `/v1/kv/${opts.prefix.split('/').map(encodeURIComponent).join('/')}`;
  let index = 0;
  let failures = 0;
  let last: string | undefined;
  let lastStart = -Infinity;
  const slot = opts.slot ?? watchSlot(undefined);
  while (!signal.aborted) {
    const gap = lastStart + opts.minQueryIntervalMs - Date.now();
    if (gap > 0) await sleep(gap, signal);
    if (signal.aborted) break;
    lastStart = Date.now();
    try {
      const answer = await slot.query(signal, index, (c) => blockingFetch(opts.endpoint, path, { recurse: '' }, { index: c.index, waitMs: opts.waitMs, signal, timeoutMs: c.timeoutMs }));
      if (answer.status !== 200 && answer.status !== 404) throw new Error(`GET ${answer.pathname} -> ${answer.status}: ${answer.text.slice(0, 200)}`);
      index = answer.index;
      failures = 0;
      const entries = answer.status === 404 ? {} : decodeKvEntries(opts.prefix, JSON.parse(answer.text));
      const text = JSON.stringify(Object.keys(entries).sort().map((k) => [k, entries[k]]));
      if (text !== last) {
        last = text;
        opts.onChange(entries);
      }
    } catch (err) {
      if (signal.aborted) break;
      failures++;
      index = 0;
      opts.onError?.(err as Error, failures);
      await sleep(backoffDelay(DEFAULT_BACKOFF, failures - 1, opts.random), signal);
    }
  }
}
