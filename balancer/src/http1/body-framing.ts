// Message body framing (RFC 9112 section 6), shared by the request and the response parser: a body
// is Content-Length delimited, chunked (with trailers), or runs until the peer closes (responses
// only). The parser that read the head says which; bytes beyond the body are left to the caller.
import { ChunkedDecoder, type ChunkSink } from './chunked.js';
import type { Http1Error } from './errors.js';

export interface FramedBodySink {
  /** a slice of the input buffer: copy it if it must outlive the call */
  onBody(chunk: Buffer): void;
}

const enum Kind { Length, Chunked, UntilClose }

export class BodyFraming implements ChunkSink {
  #kind = Kind.Length;
  #remaining = 0;
  #sink: FramedBodySink | null = null;
  readonly #chunked: ChunkedDecoder;
  /** the body ended (never for a body that runs until close: see untilClose) */
  done = false;

  /** trailer section limits and the status a too-large one answers (431 for requests, 502 for responses) */
  constructor(maxTrailerBytes: number, maxTrailers: number, overflowStatus: number) {
    this.#chunked = new ChunkedDecoder(maxTrailerBytes, maxTrailers, overflowStatus);
  }

  /** a Content-Length body of n > 0 bytes */
  startLength(n: number): void {
    this.#kind = Kind.Length;
    this.#remaining = n;
    this.done = false;
  }

  startChunked(): void {
    this.#kind = Kind.Chunked;
    this.#chunked.reset();
    this.done = false;
  }

  /** a response body delimited by the connection's end */
  startUntilClose(): void {
    this.#kind = Kind.UntilClose;
    this.done = false;
  }

  get untilClose(): boolean {
    return this.#kind === Kind.UntilClose && !this.done;
  }

  /** the chunked decoder's error after execute() returned -1 */
  get error(): Http1Error | undefined {
    return this.#chunked.error;
  }

  /** trailer fields of a finished chunked body (flat), empty otherwise */
  get trailers(): string[] {
    return this.#kind === Kind.Chunked ? this.#chunked.trailers : [];
  }

  /** Consume body bytes from `off`: the offset after what was used (then see `done`), -1 on a framing error. */
  execute(buf: Buffer, off: number, sink: FramedBodySink): number {
    switch (this.#kind) {
      case Kind.Length: {
        const n = Math.min(this.#remaining, buf.length - off);
        this.#remaining -= n;
        sink.onBody(buf.subarray(off, off + n));
        if (this.#remaining === 0) this.done = true;
        return off + n;
      }
      case Kind.Chunked: {
        this.#sink = sink;
        const end = this.#chunked.execute(buf, off, this);
        this.#sink = null;
        if (end >= 0 && this.#chunked.done) this.done = true;
        return end;
      }
      default:
        sink.onBody(off === 0 ? buf : buf.subarray(off));
        return buf.length;
    }
  }

  /** the peer closed: a body that runs until close is complete now */
  endOfInput(): void {
    if (this.#kind === Kind.UntilClose) this.done = true;
  }

  onChunkData(chunk: Buffer): void {
    this.#sink?.onBody(chunk);
  }
}
