// The Docker event stream as a stream of hints. Reconnects with exponential backoff and jitter whenever
// the stream fails or ends, and reports every (re)connect so the caller can resync: events missed while
// disconnected are never replayed, a full re-read is the only safe recovery.
//
// A stream can also hang: open, silent, never closed (a stuck proxy, a wedged engine). Docker sends
// nothing while idle, so silence alone proves nothing. Every probe interval a short, closed-ended query
// (`since`/`until` over the time since the last probe) asks the engine what happened; an event the engine
// lists that the open stream never delivered, or a probe that fails, means the stream cannot be trusted:
// it is dropped and reconnected (which resyncs).
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { backoffDelay, sleep, type BackoffPolicy } from '../../../common/backoff.js';

// capped at 15 s like the original's reconnect pace; the resync after a reconnect catches up anyway
const EVENT_STREAM_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 15_000 };

export const WATCHED_ACTIONS = ['start', 'unpause', 'kill', 'die', 'stop', 'destroy', 'pause', 'health_status'] as const;

const STABLE_CONNECTION_MS = 5000;
const DEFAULT_PROBE_INTERVAL_MS = 30_000;
/** events younger than this at probe time may still be on their way through the open stream */
const DEFAULT_PROBE_LAG_MS = 2000;
/** one event line is small; a line this long is garbage and is dropped instead of growing the buffer */
const MAX_LINE_CHARS = 1024 * 1024;

export interface ContainerEvent {
  readonly containerId: string;
  /** 'start', 'die', 'health_status: healthy', ... */
  readonly action: string;
  readonly name?: string;
  readonly exitCode?: number;
  /** kill events: the signal number sent */
  readonly signal?: number;
  /** the engine's timestamp (ns since the epoch, as text) */
  readonly timeNano?: string;
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
  /** liveness probe period of an open stream (ms); 0 = off */
  readonly probeIntervalMs?: number;
  /** how old an event must be before the probe expects the stream to have delivered it (ms) */
  readonly probeLagMs?: number;
  /** injected clock (ms since the epoch), for tests */
  readonly now?: () => number;
}

/** Pure: one decoded event object -> a container hint, or undefined for anything else. */
export function toContainerEvent(raw: unknown): ContainerEvent | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const e = raw as { Type?: string; Action?: string; status?: string; id?: string; timeNano?: unknown; Actor?: { ID?: string; Attributes?: Record<string, string> } };
  if ((e.Type ?? 'container') !== 'container') return undefined;
  const containerId = e.Actor?.ID ?? e.id;
  const action = e.Action ?? e.status;
  if (typeof containerId !== 'string' || typeof action !== 'string' || !containerId || !action) return undefined;
  const attrs = e.Actor?.Attributes ?? {};
  const exit = attrs.exitCode !== undefined ? Number(attrs.exitCode) : undefined;
  const sig = attrs.signal !== undefined ? Number(attrs.signal) : undefined;
  const timeNano = typeof e.timeNano === 'number' || typeof e.timeNano === 'string' ? String(e.timeNano) : undefined;
  return {
    containerId,
    action,
    ...(typeof attrs.name === 'string' && attrs.name ? { name: attrs.name } : {}),
    ...(exit !== undefined && Number.isFinite(exit) ? { exitCode: exit } : {}),
    ...(sig !== undefined && Number.isInteger(sig) ? { signal: sig } : {}),
    ...(timeNano ? { timeNano } : {}),
  };
}

/** Identity of one event, to compare what the stream delivered with what a probe lists. */
function eventKey(e: ContainerEvent): string {
  return `${e.containerId}|${e.action}|${e.timeNano ?? ''}`;
}

const FILTERS = JSON.stringify({ type: ['container'], event: [...WATCHED_ACTIONS] });

/** Runs until signal aborts. Never throws. */
export async function watchContainerEvents(opts: EventWatchOptions): Promise<void> {
  const { docker, signal, logger } = opts;
  const policy = opts.backoff ?? EVENT_STREAM_BACKOFF;
  const now = opts.now ?? Date.now;
  let failures = 0;
  let connection = 0;
  while (!signal.aborted) {
    let stream: Readable | undefined;
    let prober: StreamProber | undefined;
    // One controller per connection: aborted by shutdown, or by the connect timer if no answer comes.
    const connectionAbort = new AbortController();
    const onParentAbort = () => connectionAbort.abort();
    signal.addEventListener('abort', onParentAbort, { once: true });
    try {
      const connectTimer = setTimeout(() => connectionAbort.abort(), opts.connectTimeoutMs ?? 10_000);
      const subscribedAt = now();
      try {
        stream = (await docker.getEvents({ filters: FILTERS, abortSignal: connectionAbort.signal } as object)) as unknown as Readable;
      } finally {
        clearTimeout(connectTimer);
      }
      if (connectionAbort.signal.aborted) throw Object.assign(new Error('connect timed out'), { code: 'ERR_DOCKER_EVENTS_TIMEOUT' });
      connection += 1;
      logger.info({ connection }, 'docker event stream connected');
      opts.onConnected(connection);
      const connectedAt = Date.now();
      const delivered = new Map<string, number>();
      const open = stream;
      prober = new StreamProber({
        docker, logger, now,
        intervalMs: opts.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
        lagMs: opts.probeLagMs ?? DEFAULT_PROBE_LAG_MS,
        windowStartMs: subscribedAt,
        delivered,
        signal: connectionAbort.signal,
        onUntrusted: (why) => {
          logger.warn({ connection, event: 'docker-events-hung', reason: why }, 'docker event stream is not delivering events; reconnecting');
          open.destroy();
        },
      });
      await consume(stream, (e) => {
        delivered.set(eventKey(e), now());
        opts.onEvent(e);
      }, signal);
      // Only a connection that lived a while resets the backoff: a stream that ends at once (a flapping
      // proxy) must not turn into a tight loop of reconnects and full resyncs.
      if (Date.now() - connectedAt >= STABLE_CONNECTION_MS) failures = 0;
      if (signal.aborted) break;
      logger.warn({ connection }, 'docker event stream ended');
    } catch (err) {
      if (signal.aborted) break;
      logger.warn({ err: { message: (err as Error).message, code: (err as { code?: string }).code }, failures }, 'docker event stream failed');
    } finally {
      prober?.stop();
      connectionAbort.abort();
      signal.removeEventListener('abort', onParentAbort);
      stream?.destroy();
    }
    const delay = backoffDelay(policy, failures, opts.random);
    failures += 1;
    await sleep(delay, signal);
  }
}

interface ProberOptions {
  readonly docker: Docker;
  readonly logger: Logger;
  readonly now: () => number;
  readonly intervalMs: number;
  readonly lagMs: number;
  readonly windowStartMs: number;
  /** keys of the events the open stream delivered, with their arrival time (the prober prunes it) */
  readonly delivered: Map<string, number>;
  readonly signal: AbortSignal;
  readonly onUntrusted: (why: string) => void;
}

/** Periodic closed-ended `since`/`until` queries compared with what the open stream delivered. */
class StreamProber {
  private timer: NodeJS.Timeout | undefined;
  private windowStartMs: number;
  private stopped = false;

  constructor(private readonly opts: ProberOptions) {
    this.windowStartMs = opts.windowStartMs;
    if (opts.intervalMs > 0) this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.probe(), this.opts.intervalMs);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    if (this.stopped || this.opts.signal.aborted) return;
    const until = this.opts.now() - this.opts.lagMs;
    if (until <= this.windowStartMs) return this.schedule();
    let listed: ContainerEvent[];
    try {
      listed = await listEvents(this.opts.docker, this.windowStartMs, until, this.opts.signal, Math.max(1000, Math.min(10_000, this.opts.intervalMs)));
    } catch (err) {
      if (this.stopped || this.opts.signal.aborted) return;
      this.opts.onUntrusted(`probe failed: ${(err as Error).message}`);
      return;
    }
    if (this.stopped || this.opts.signal.aborted) return;
    const missed = listed.filter((e) => !this.opts.delivered.has(eventKey(e)));
    if (missed.length > 0) {
      this.opts.onUntrusted(`${missed.length} event(s) since the last probe never arrived (first: ${missed[0].action} ${missed[0].containerId.slice(0, 12)})`);
      return;
    }
    // The window moves on (windows share their edge instant, so keep a minute of memory behind it).
    for (const [key, at] of this.opts.delivered) if (at < until - 60_000) this.opts.delivered.delete(key);
    this.windowStartMs = until;
    this.opts.logger.debug({ events: listed.length }, 'docker event stream probe ok');
    this.schedule();
  }
}

/** Docker's events between two instants (a request that ends by itself), bounded by timeoutMs. */
async function listEvents(docker: Docker, sinceMs: number, untilMs: number, parent: AbortSignal, timeoutMs: number): Promise<ContainerEvent[]> {
  const abort = new AbortController();
  const onParent = () => abort.abort();
  parent.addEventListener('abort', onParent, { once: true });
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  let stream: Readable | undefined;
  try {
    stream = (await docker.getEvents({
      since: (sinceMs / 1000).toFixed(3),
      until: (untilMs / 1000).toFixed(3),
      filters: FILTERS,
      abortSignal: abort.signal,
    } as object)) as unknown as Readable;
    const events: ContainerEvent[] = [];
    let ended = false;
    await consume(stream, (e) => events.push(e), abort.signal, () => (ended = true));
    if (!ended) throw Object.assign(new Error('events probe timed out'), { code: 'ERR_DOCKER_EVENTS_PROBE' });
    return events;
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', onParent);
    stream?.destroy();
  }
}

/** Reads newline-delimited JSON until the stream ends, errors or the signal aborts. */
function consume(stream: Readable, onEvent: (e: ContainerEvent) => void, signal: AbortSignal, onEnd?: () => void): Promise<void> {
  return new Promise((resolve) => {
    let buffer = '';
    // A multi-byte character may span two chunks: a streaming decoder keeps its first bytes until the rest arrive.
    const decoder = new StringDecoder('utf8');
    const finish = () => {
      stream.off('data', onData);
      stream.off('end', onStreamEnd);
      stream.off('close', finish);
      stream.off('error', finish);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    const onStreamEnd = () => {
      onEnd?.();
      finish();
    };
    const onData = (chunk: Buffer | string) => {
      buffer += typeof chunk === 'string' ? chunk : decoder.write(chunk);
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
      if (buffer.length > MAX_LINE_CHARS) buffer = '';
    };
    if (signal.aborted) return resolve();
    stream.on('data', onData);
    stream.once('end', onStreamEnd);
    stream.once('close', finish);
    stream.once('error', finish);
    signal.addEventListener('abort', finish, { once: true });
  });
}
