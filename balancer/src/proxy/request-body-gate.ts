// The request body between the client and the upstream transport, whatever the engine. Its job is
// that a slow client costs a client socket, never an upstream connection:
//   - the body is read into memory up to GATE_BYTES (or to its end, the common small POST) BEFORE the
//     request is dispatched, so a body that trickles in (1 byte every few seconds) holds no upstream
//     connection while it trickles; a larger body streams on from there with backpressure both ways;
//   - a client body idle timeout (no byte for clientBodyMs) and a total limit (the whole body within
//     requestMs of the head) bound how long any body may take, in the gate and while streaming.
// A body that ended inside the gate is kept whole until the exchange is over, so a try that failed
// (connect refused) can be followed by another one with the same bytes.
// Timeouts and failures are reported to the exchange (GateEvents) and, once a transport reads the
// body, to the transport's sink as an error, which aborts that upstream request.
// The two limits are one deadline field on the worker's body clock (deadline-sweep.ts), moved by
// field stores: no timer is armed, refreshed or cleared per request or per chunk.
import type { DeadlineSweep, Expiring } from './deadline-sweep.js';
import type { BodySink, BodySource } from './transport.js';

/** Bytes read before the upstream is involved. A body of at most this size costs no upstream time. */
export const GATE_BYTES = 64 * 1024;

export type BodyTimeoutKind = 'client_body_timeout' | 'request_timeout';

export interface GateEvents {
  /** the body is complete or GATE_BYTES are in hand: the request may go upstream */
  onBodyReady(): void;
  /** the client was too slow; the body is failed from here on */
  onBodyTimeout(kind: BodyTimeoutKind): void;
  /** the client side failed (connection gone) before the body was ready */
  onBodyFailed(err: Error): void;
}

export interface GateOptions {
  /** the clock that owns the idle and total deadlines (one per worker: ProxyContext.bodyClock) */
  readonly clock: DeadlineSweep;
  /** max gap between two body chunks; 0 = none */
  readonly idleMs: number;
  /** the whole body within this long of the gate's creation; 0 = none */
  readonly totalMs: number;
  /** override GATE_BYTES (tests) */
  readonly gateBytes?: number;
  /**
   * ready this long after the head even when the body goes on (gRPC streams: a bidirectional call
   * waits for an answer before it sends more); a body that ended by then is still replayable
   */
  readonly readyAfterMs?: number;
}

const TIMEOUT_CODES: Record<BodyTimeoutKind, string> = {
  client_body_timeout: 'ERR_CLIENT_BODY_TIMEOUT',
  request_timeout: 'ERR_REQUEST_TIMEOUT',
};

/** Is this transport error one of ours (the client was too slow), not the server's fault? */
export function isClientBodyTimeout(code: string): boolean {
  return code === TIMEOUT_CODES.client_body_timeout || code === TIMEOUT_CODES.request_timeout;
}

export class GatedBody implements BodySource, BodySink, Expiring {
  readonly #source: BodySource;
  readonly #events: GateEvents;
  readonly #limit: number;
  readonly #idleMs: number;
  #chunks: Buffer[] = [];
  /** next chunk to hand out; chunks before it are kept only while the body is replayable */
  #next = 0;
  #buffered = 0;
  /** the whole body ended inside the gate: every try gets all of it */
  #replayable = false;
  #ready = false;
  #ended = false;
  #error: Error | undefined;
  #sink: BodySink | undefined;
  #consumed = false;
  /** the transport asked for a pause */
  #sinkPaused = false;
  #draining = false;
  /** the gate asked its source to pause (and has not resumed it since) */
  #sourcePaused = false;
  #endSent = false;
  readonly #clock: DeadlineSweep;
  /** Expiring: the earlier of #idleAt and #totalAt (epoch ms, 0 = none) */
  deadline = 0;
  #idleAt = 0;
  #totalAt = 0;
  #onClock = false;
  /** the exchange is over: nothing may put the gate back on the clock */
  #disposed = false;
  #readyTimer: NodeJS.Timeout | undefined;

  constructor(source: BodySource, events: GateEvents, opts: GateOptions) {
    this.#source = source;
    this.#events = events;
    this.#limit = opts.gateBytes ?? GATE_BYTES;
    this.#idleMs = opts.idleMs;
    this.#clock = opts.clock;
    if (opts.totalMs > 0) this.#totalAt = opts.clock.now() + opts.totalMs;
    this.#startIdleTimer();
    // not a deadline: gRPC's "go upstream now", after the caller's stack (readyAfterMs 0)
    if (opts.readyAfterMs !== undefined) this.#readyTimer = setTimeout(onReadyTimer, opts.readyAfterMs, this);
    source.setSink(this);
  }

  // ---- BodySource, for the transport ----

  get consumed(): boolean {
    return this.#consumed && !this.#replayable;
  }

  get failed(): boolean {
    // once the body ended, the client side closing its stream (node destroys a read request) is no failure
    return this.#error !== undefined || (!this.#ended && this.#source.failed);
  }

  /** The whole body as one Buffer when it all arrived in the gate (send head + body in one write). */
  wholeBody(): Buffer | undefined {
    if (!this.#replayable || this.#error !== undefined) return undefined;
    this.#consumed = true;
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks, this.#buffered)];
    return this.#chunks[0];
  }

  setSink(sink: BodySink): void {
    this.#sink = sink;
    this.#consumed = true;
    if (this.#error !== undefined) { sink.onBodyError(this.#error); return; }
    if (this.#replayable) { this.#next = 0; this.#endSent = false; this.#sinkPaused = false; }
    this.#drain();
  }

  pause(): void {
    this.#sinkPaused = true;
    this.#pauseSource();
  }

  resume(): void {
    this.#sinkPaused = false;
    this.#drain();
  }

  /** The exchange is over (answered, failed or abandoned): no timer may fire any more. */
  dispose(): void {
    this.#disposed = true;
    this.#clearTimers();
    this.#chunks = [];
    this.#next = 0;
  }

  // ---- BodySink, fed by the client side ----

  onBodyData(chunk: Buffer): boolean {
    if (this.#idleAt !== 0) this.#setIdleAt(this.#clock.now() + this.#idleMs);
    if (this.#error !== undefined) return false;
    const sink = this.#sink;
    if (sink !== undefined && this.#next === this.#chunks.length && !this.#sinkPaused) {
      if (sink.onBodyData(chunk)) return true;
      this.#sinkPaused = true;
      this.#stopIdleTimer();
      return false;
    }
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (sink !== undefined) {
      // a sink that said stop (or chunks still ahead of this one): hold the client, or it would flow
      // on into this queue without bound while the upstream reads nothing; resume() lets it go again
      this.#pauseSource();
      return false;
    }
    if (this.#buffered >= this.#limit) {
      // the gate is full: hold the client until a transport reads
      this.#pauseSource();
      if (!this.#ready) { this.#ready = true; this.#events.onBodyReady(); }
      // a transport may have read it all inside onBodyReady (an idle pooled connection) and resumed
      // the source: false now would make the client side pause again, with nothing left to resume it
      return !this.#sourcePaused;
    }
    return true;
  }

  onBodyEnd(): void {
    this.#ended = true;
    this.#clearTimers();
    if (!this.#ready) {
      this.#ready = true;
      this.#replayable = true;
      this.#events.onBodyReady();
      return;
    }
    if (this.#sink === undefined) this.#replayable = true; // every byte is still in hand
    else this.#drain();
  }

  onBodyError(err: Error): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    this.#clearTimers();
    if (this.#sink !== undefined) this.#sink.onBodyError(err);
    else if (!this.#ready) this.#events.onBodyFailed(err);
  }

  // ---- internals ----

  /** Expiring: the clock saw the deadline pass */
  expire(now: number): void {
    if (this.#totalAt !== 0 && this.#totalAt <= now) this.timedOut('request_timeout');
    else if (this.#idleAt !== 0 && this.#idleAt <= now) this.timedOut('client_body_timeout');
    else this.#setDeadline();
  }

  readyNow(): void {
    this.#readyTimer = undefined;
    if (this.#ready || this.#error !== undefined) return;
    this.#ready = true;
    this.#events.onBodyReady();
  }

  timedOut(kind: BodyTimeoutKind): void {
    if (this.#error !== undefined || this.#ended) return;
    this.#error = Object.assign(new Error(`client sent the request body too slowly (${kind})`), { code: TIMEOUT_CODES[kind] });
    this.#clearTimers();
    this.#sourcePaused = true;
    this.#source.pause();
    this.#chunks = [];
    this.#next = 0;
    this.#buffered = 0;
    // the exchange first (it answers 408 or cuts), then the transport's request is aborted
    this.#events.onBodyTimeout(kind);
    this.#sink?.onBodyError(this.#error);
  }

  #clearTimers(): void {
    this.#idleAt = 0;
    this.#totalAt = 0;
    this.deadline = 0;
    if (this.#onClock) { this.#onClock = false; this.#clock.delete(this); }
    if (this.#readyTimer !== undefined) { clearTimeout(this.#readyTimer); this.#readyTimer = undefined; }
  }

  // the idle timeout counts only while we read (nginx client_body_timeout): a gate waiting for a
  // transport, or an upstream that reads slowly, is not the client's slowness
  #startIdleTimer(): void {
    if (this.#idleMs <= 0 || this.#ended || this.#error !== undefined || this.#disposed) { this.#setDeadline(); return; }
    this.#setIdleAt(this.#clock.now() + this.#idleMs);
  }

  #stopIdleTimer(): void {
    if (this.#idleAt !== 0) this.#setIdleAt(0);
  }

  #setIdleAt(at: number): void {
    this.#idleAt = at;
    this.#setDeadline();
  }

  /** the earlier of the two limits (a member of the clock from the first limit until #clearTimers) */
  #setDeadline(): void {
    const idle = this.#idleAt;
    const total = this.#totalAt;
    this.deadline = idle === 0 ? total : total === 0 || idle < total ? idle : total;
    if (this.deadline !== 0 && !this.#onClock) { this.#onClock = true; this.#clock.add(this); }
  }

  #pauseSource(): void {
    this.#stopIdleTimer();
    this.#sourcePaused = true;
    this.#source.pause();
  }

  #resumeSource(): void {
    this.#startIdleTimer();
    this.#sourcePaused = false;
    this.#source.resume();
  }

  /** Hand buffered chunks to the sink while it accepts them; then live data flows, or the end. */
  #drain(): void {
    const sink = this.#sink;
    if (sink === undefined || this.#draining || this.#error !== undefined) return;
    this.#draining = true;
    try {
      while (this.#next < this.#chunks.length && !this.#sinkPaused) {
        const chunk = this.#chunks[this.#next++];
        if (!sink.onBodyData(chunk)) this.#sinkPaused = true;
      }
      if (!this.#replayable && this.#next === this.#chunks.length) {
        // streamed on: what went out is gone
        this.#chunks = [];
        this.#next = 0;
        this.#buffered = 0;
      }
    } finally {
      this.#draining = false;
    }
    if (this.#next < this.#chunks.length || this.#sinkPaused) return;
    if (this.#ended) {
      if (!this.#endSent) { this.#endSent = true; sink.onBodyEnd(); }
    } else this.#resumeSource();
  }
}

function onReadyTimer(gate: GatedBody): void {
  gate.readyNow();
}
