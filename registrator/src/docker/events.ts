// The Docker event stream as a stream of hints. Reconnects with exponential backoff and jitter whenever
// the stream fails or ends, and reports every (re)connect so the caller can resync: events missed while
// disconnected are never replayed, a full re-read is the only safe recovery.
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { backoffDelay, sleep, type BackoffPolicy } from '../../../common/backoff.js';

// capped at 15 s like the original's reconnect pace; the resync after a reconnect catches up anyway
const EVENT_STREAM_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 15_000 };

export const WATCHED_ACTIONS = ['start', 'unpause', 'die', 'stop', 'destroy', 'pause', 'health_status'] as const;

const STABLE_CONNECTION_MS = 5000;

export interface ContainerEvent {
  readonly containerId: string;
  /** 'start', 'die', 'health_status: healthy', ... */
  readonly action: string;
  readonly name?: string;
  readonly exitCode?: number;
}

export interface EventWatchOptions {
  readonly docker: Docker;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly onEvent: (e: ContainerEvent) => void;
  /** called after each successful (re)connect, before any event of that connection is delivered */
  readonly onConnected: (connection: number) => void;
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
  /** how long a connection attempt may take (ms) */
  readonly connectTimeoutMs?: number;
}

/** Pure: one decoded event object -> a container hint, or undefined for anything else. */
export function toContainerEvent(raw: unknown): ContainerEvent | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const e = raw as { Type?: string; Action?: string; status?: string; id?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
  if ((e.Type ?? 'container') !== 'container') return undefined;
  const containerId = e.Actor?.ID ?? e.id;
  const action = e.Action ?? e.status;
  if (!containerId || !action) return undefined;
  const attrs = e.Actor?.Attributes ?? {};
  const exit = attrs.exitCode !== undefined ? Number(attrs.exitCode) : undefined;
  return { containerId, action, ...(attrs.name ? { name: attrs.name } : {}), ...(exit !== undefined && Number.isFinite(exit) ? { exitCode: exit } : {}) };
}

/** Runs until signal aborts. Never throws. */
export async function watchContainerEvents(opts: EventWatchOptions): Promise<void> {
  const { docker, signal, logger } = opts;
  const policy = opts.backoff ?? EVENT_STREAM_BACKOFF;
  let failures = 0;
  let connection = 0;
  while (!signal.aborted) {
    let stream: Readable | undefined;
    // One controller per connection: aborted by shutdown, or by the connect timer if no answer comes.
    const connectionAbort = new AbortController();
    const onParentAbort = () => connectionAbort.abort();
    signal.addEventListener('abort', onParentAbort, { once: true });
    try {
      const connectTimer = setTimeout(() => connectionAbort.abort(), opts.connectTimeoutMs ?? 10_000);
      try {
        stream = (await docker.getEvents({
          filters: JSON.stringify({ type: ['container'], event: [...WATCHED_ACTIONS] }),
          abortSignal: connectionAbort.signal,
        } as object)) as unknown as Readable;
      } finally {
        clearTimeout(connectTimer);
      }
      if (connectionAbort.signal.aborted) throw Object.assign(new Error('connect timed out'), { code: 'ERR_DOCKER_EVENTS_TIMEOUT' });
      connection += 1;
      logger.info({ connection }, 'docker event stream connected');
      opts.onConnected(connection);
      const connectedAt = Date.now();
      await consume(stream, opts.onEvent, signal);
      // Only a connection that lived a while resets the backoff: a stream that ends at once (a flapping
      // proxy) must not turn into a tight loop of reconnects and full resyncs.
      if (Date.now() - connectedAt >= STABLE_CONNECTION_MS) failures = 0;
      if (signal.aborted) break;
      logger.warn({ connection }, 'docker event stream ended');
    } catch (err) {
      if (signal.aborted) break;
      logger.warn({ err: { message: (err as Error).message, code: (err as { code?: string }).code }, failures }, 'docker event stream failed');
    } finally {
      signal.removeEventListener('abort', onParentAbort);
      stream?.destroy();
    }
    const delay = backoffDelay(policy, failures, opts.random);
    failures += 1;
    await sleep(delay, signal);
  }
}

/** Reads newline-delimited JSON until the stream ends, errors or the signal aborts. */
function consume(stream: Readable, onEvent: (e: ContainerEvent) => void, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    let buffer = '';
    const finish = () => {
      stream.off('data', onData);
      stream.off('end', finish);
      stream.off('close', finish);
      stream.off('error', finish);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const onData = (chunk: Buffer | string) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue;
        }
        const event = toContainerEvent(parsed);
        if (event) onEvent(event);
      }
    };
    stream.on('data', onData);
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
    signal.addEventListener('abort', finish, { once: true });
  });
}
