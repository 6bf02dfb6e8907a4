// The HTTP/2 sessions to one HTTPS Consul agent: at most `maxSessions` connections (each one slot of
// the shared ConsulBudget when there is one, so KV watches and renders stay inside --consul-max-conns),
// each carrying up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS streams. Which session a stream goes
// on is stream-schedule.ts pickSession; this file only opens, counts and closes.
import http2 from 'node:http2';
import type pino from 'pino';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../../../../common/backoff.js';
import type { ConsulBudget } from '../consul-budget.js';
import { pickSession, type SessionLoad } from './stream-schedule.js';

/**
 * assumed until a peer's SETTINGS arrive: node's own default (peerMaxConcurrentStreams); after that,
 * a new session assumes what the last one announced (the same agent)
 */
const ASSUMED_MAX_STREAMS = 100;

export interface PooledSession extends SessionLoad {
  readonly session: http2.ClientHttp2Session;
  readonly id: number;
}

interface Entry {
  session: http2.ClientHttp2Session;
  id: number;
  streams: number;
  maxStreams: number;
  usable: boolean;
  connected: boolean;
}

export type Acquired = { readonly kind: 'session'; readonly session: http2.ClientHttp2Session; readonly release: () => void } | { readonly kind: 'full' } | { readonly kind: 'unavailable'; readonly retryInMs: number };

export interface SessionPoolOptions {
  readonly baseUrl: string;
  /** PEM CA(s) for the agent's certificate; default node's store */
  readonly ca?: string;
  readonly maxSessions: number;
  readonly budget?: ConsulBudget;
  readonly logger: pino.Logger;
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
  readonly now?: () => number;
}

export interface SessionPoolStats {
  /** sessions open (connected or connecting) */
  readonly sessions: number;
  readonly streams: number;
  /** the smallest SETTINGS_MAX_CONCURRENT_STREAMS a connected peer announced (0: none yet) */
  readonly peerMaxStreams: number;
  readonly opened: number;
  readonly failedConnects: number;
}

export class SessionPool {
  readonly #opts: SessionPoolOptions;
  readonly #entries: Entry[] = [];
  /** callers waiting for a stream, first come first served (a Set iterates in insertion order) */
  readonly #waiters = new Set<() => void>();
  #nextId = 1;
  #opened = 0;
  #failedConnects = 0;
  #connectFailuresInRow = 0;
  #pausedUntil = 0;
  #closed = false;
  #learnedMaxStreams = ASSUMED_MAX_STREAMS;

  constructor(opts: SessionPoolOptions) {
    this.#opts = opts;
  }

  /** A stream slot: on the fullest session with room, on a new one while the budget allows, else full. */
  acquire(blocking: boolean): Acquired {
    if (this.#closed) return { kind: 'unavailable', retryInMs: 1_000 };
    const now = (this.#opts.now ?? Date.now)();
    for (;;) {
      const pick = pickSession(this.#entries, this.#opts.maxSessions, blocking);
      if (pick.kind === 'use') {
        const e = this.#entries[pick.index];
        e.streams++;
        let released = false;
        return {
          kind: 'session',
          session: e.session,
          release: () => {
            if (released) return;
            released = true;
            e.streams--;
            // one stream freed: one waiter (waking all of them made every release cost one acquire
            // per waiting service: past the budget, ~1,000 of them, the primary's whole CPU)
            this.#wakeOne();
          },
        };
      }
      if (pick.kind === 'full') return { kind: 'full' };
      // a connect failed lately: the agent is down or refusing; every caller backs off, not connects
      if (now < this.#pausedUntil) return { kind: 'unavailable', retryInMs: this.#pausedUntil - now };
      if (!this.#open()) return { kind: 'full' };
    }
  }

  /** Resolves when a stream is released or a session closes (or after ms), for a caller that found none. */
  waitForSlot(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }

  stats(): SessionPoolStats {
    const connected = this.#entries.filter((e) => e.connected);
    return {
      sessions: this.#entries.length,
      streams: this.#entries.reduce((n, e) => n + e.streams, 0),
      peerMaxStreams: connected.length ? Math.min(...connected.map((e) => e.maxStreams)) : 0,
      opened: this.#opened,
      failedConnects: this.#failedConnects,
    };
  }

  close(): void {
    this.#closed = true;
    for (const e of [...this.#entries]) e.session.destroy();
    this.#wake();
  }

  #open(): boolean {
    // a session is one connection: one slot of the shared budget, or none at all
    if (this.#opts.budget && this.#opts.budget.reserve(1) !== 1) return false;
    const session = http2.connect(this.#opts.baseUrl, { settings: { enablePush: false }, ...(this.#opts.ca ? { ca: this.#opts.ca } : {}) });
    const entry: Entry = { session, id: this.#nextId++, streams: 0, maxStreams: this.#learnedMaxStreams, usable: true, connected: false };
    this.#entries.push(entry);
    this.#opened++;
    const log = this.#opts.logger;
    session.on('connect', () => {
      entry.connected = true;
      this.#connectFailuresInRow = 0;
      if (session.alpnProtocol !== 'h2') log.warn({ alpn: session.alpnProtocol }, 'consul agent did not negotiate h2');
    });
    session.on('remoteSettings', (s) => {
      if (typeof s.maxConcurrentStreams === 'number' && s.maxConcurrentStreams > 0) {
        entry.maxStreams = s.maxConcurrentStreams;
        this.#learnedMaxStreams = s.maxConcurrentStreams;
      }
      this.#wake();
    });
    session.on('goaway', () => {
      entry.usable = false; // streams open on it finish; new ones go elsewhere
    });
    session.on('error', (err: Error & { code?: string }) => {
      log[entry.connected ? 'warn' : 'debug']({ err: err.message, code: err.code, session: entry.id }, 'consul HTTP/2 session failed');
    });
    session.once('close', () => {
      entry.usable = false;
      const i = this.#entries.indexOf(entry);
      if (i >= 0) this.#entries.splice(i, 1);
      this.#opts.budget?.release(1);
      if (!entry.connected && !this.#closed) {
        this.#failedConnects++;
        const delay = backoffDelay(this.#opts.backoff ?? DEFAULT_BACKOFF, this.#connectFailuresInRow++, this.#opts.random);
        this.#pausedUntil = (this.#opts.now ?? Date.now)() + delay;
      }
      this.#wake();
    });
    return true;
  }

  /** capacity changed (settings, a close): every waiter looks again */
  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  #wakeOne(): void {
    const first = this.#waiters.values().next();
    if (!first.done) first.value();
  }
}
