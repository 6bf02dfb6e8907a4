// Which HTTP/2 session a service's blocking query rides on, and which services to (re)query: pure
// arithmetic over plain data, no sockets (the shell in watch.ts does the I/O).
//
// One session is one TCP connection, the unit Consul's http_max_conns_per_client counts; a session
// carries at most the peer's SETTINGS_MAX_CONCURRENT_STREAMS streams (250 on Consul's HTTPS listener,
// see README.md). Sessions are filled first, not spread: connections are the budget shared by every
// client on the host, streams are nearly free.

/** One open (or opening) session as the scheduler sees it. */
export interface SessionLoad {
  /** streams open on it now (blocking queries and short reads) */
  readonly streams: number;
  /** the peer's SETTINGS_MAX_CONCURRENT_STREAMS (until its SETTINGS arrive: the assumed value) */
  readonly maxStreams: number;
  /** false once it got GOAWAY, an error or a close: no new stream goes there */
  readonly usable: boolean;
}

/**
 * Streams per session left to short reads (the catalog/services watch, polls of services past the
 * budget): a blocking query may take a session's streams up to maxStreams - SHORT_READ_HEADROOM, so a
 * short read always finds a stream while each session is full of held queries.
 */
export const SHORT_READ_HEADROOM = 2;

export type SessionPick =
  | { readonly kind: 'use'; readonly index: number }
  /** no usable session has room and fewer than maxSessions are open: open one more */
  | { readonly kind: 'open' }
  /** every session the budget allows is full for this kind of stream */
  | { readonly kind: 'full' };

/**
 * Where the next stream goes: the usable session with the most streams that still has room for it
 * (fill first), else a new session while the budget allows, else full. `blocking`: a held query,
 * which leaves SHORT_READ_HEADROOM streams per session to short reads.
 */
export function pickSession(sessions: readonly SessionLoad[], maxSessions: number, blocking: boolean): SessionPick {
  let best = -1;
  for (let i = 0; i < sessions.length; i++) {
    const s = sessions[i];
    if (!s.usable) continue;
    const limit = blocking ? s.maxStreams - SHORT_READ_HEADROOM : s.maxStreams;
    if (s.streams >= limit) continue;
    if (best < 0 || s.streams > sessions[best].streams) best = i;
  }
  if (best >= 0) return { kind: 'use', index: best };
  const open = sessions.filter((s) => s.usable).length;
  return open < Math.max(0, Math.floor(maxSessions)) ? { kind: 'open' } : { kind: 'full' };
}

/** Blocking queries `sessions` sessions of `maxStreams` streams each can hold (the short-read headroom kept). */
export function blockingCapacity(sessions: number, maxStreams: number): number {
  return Math.max(0, Math.floor(sessions)) * Math.max(0, maxStreams - SHORT_READ_HEADROOM);
}

/** Sessions needed to hold one blocking query per service, or the budget if that is fewer. */
export function sessionsFor(services: number, maxStreams: number, maxSessions: number): number {
  const per = Math.max(1, maxStreams - SHORT_READ_HEADROOM);
  return Math.min(Math.max(1, Math.ceil(services / per)), Math.max(1, Math.floor(maxSessions)));
}

/**
 * The services to start and stop watching when the catalog's names change: each watched name has one
 * query loop; a name gone from /v1/catalog/services stops its loop and leaves the table.
 */
export function planWatches(names: ReadonlySet<string>, watched: ReadonlySet<string>): { readonly start: string[]; readonly stop: string[] } {
  const start: string[] = [];
  const stop: string[] = [];
  for (const n of names) if (!watched.has(n)) start.push(n);
  for (const n of watched) if (!names.has(n)) stop.push(n);
  return { start: start.sort(), stop: stop.sort() };
}

/**
 * The pause between two polls of one service past the budget: pollMs, stretched so that all polled
 * services together send at most maxPollsPerSec (the agent's and the primary's cost stays bounded
 * however far past the budget the catalog grows; each polled service is then read every
 * polled / maxPollsPerSec seconds).
 */
export function pollPause(polled: number, pollMs: number, maxPollsPerSec: number): number {
  if (!(maxPollsPerSec > 0)) return Math.max(0, pollMs);
  return Math.max(0, pollMs, Math.ceil((Math.max(0, polled) * 1000) / maxPollsPerSec));
}

/** What one service's query loop does next, from what its last query did. */
export type NextQuery =
  /** a blocking query from this index (0: a plain read, the first one or after a reset) */
  | { readonly kind: 'block'; readonly index: number; readonly afterMs: number }
  /** no held stream was to be had (past the budget): a plain read after this pause */
  | { readonly kind: 'poll'; readonly afterMs: number };

export interface QueryOutcome {
  /** the index the query was sent with */
  readonly sentIndex: number;
  /** the answer's X-Consul-Index (after blocking-query.ts nextIndex); undefined: the query failed */
  readonly answeredIndex?: number;
  /** failures in a row before this outcome */
  readonly failuresInRow: number;
  /** ms since this query started (the rate limit counts from the start) */
  readonly elapsedMs: number;
  /** the minimum time between the starts of two queries of one service */
  readonly minIntervalMs: number;
  /** the delay a failure backs off for (the caller's jittered backoff of failuresInRow) */
  readonly backoffMs: number;
  /** no blocking stream was granted: this service is polled */
  readonly overflow: boolean;
  /** the pause between two polls of an overflowed service */
  readonly pollMs: number;
}

/**
 * The next query of one service's loop. An answer re-arms at its index, no sooner than the rate limit
 * allows (an index that does not move answers at once: without the limit that would be a hot loop); a
 * failure starts over from index 0 after its backoff (the agent may have restarted with a new index
 * space); a service past the budget polls.
 */
export function nextQuery(o: QueryOutcome): NextQuery {
  if (o.answeredIndex === undefined) {
    return o.overflow ? { kind: 'poll', afterMs: Math.max(o.backoffMs, o.pollMs) } : { kind: 'block', index: 0, afterMs: Math.max(0, o.backoffMs) };
  }
  if (o.overflow) return { kind: 'poll', afterMs: Math.max(0, o.pollMs) };
  const wait = Math.max(0, o.minIntervalMs - o.elapsedMs);
  return { kind: 'block', index: o.answeredIndex, afterMs: wait };
}

/** plain reads in flight, at least (a slow agent) and at most (one burst of first reads) */
export const PLAIN_READS_MIN = 32;
export const PLAIN_READS_MAX = 4096;

/**
 * Plain reads allowed in flight (read-gate.ts): as many as the agent answered in a quarter of the read
 * deadline at its latest rate, so a read admitted now is answered well inside its deadline however slow
 * the agent is; between PLAIN_READS_MIN and PLAIN_READS_MAX. An agent that answers as fast as it is asked
 * (the reads wait on round trips, not on the agent) lets the limit grow by deadline/4 per second
 * measured: from 32 to 4,096 in a few seconds. `answered`: plain reads answered in the last `windowMs`.
 */
export function plainReadLimit(answered: number, windowMs: number, readTimeoutMs: number): number {
  if (!(windowMs > 0)) return PLAIN_READS_MIN;
  const perSec = (Math.max(0, answered) * 1000) / windowMs;
  const limit = Math.floor((perSec * Math.max(0, readTimeoutMs)) / 4 / 1000);
  return Math.min(PLAIN_READS_MAX, Math.max(PLAIN_READS_MIN, limit));
}
