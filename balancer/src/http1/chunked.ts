// Chunked transfer coding (RFC 9112 section 7.1), decoded incrementally: chunk sizes in hex (bounded),
// chunk extensions parsed strictly and dropped, CRLF after each chunk enforced, trailer section
// parsed as field lines. Shared by the request and the response parser.
import { CR, HEX_VALUE, LF, TCHAR } from './chars.js';
import { http1Error, type Http1Error } from './errors.js';
import { parseFieldLines, type FieldsResult } from './fields.js';
import { MAX_CHUNK_LINE_BYTES } from './limits.js';

export interface ChunkSink {
  onChunkData(chunk: Buffer): void;
}

const enum S {
  Size, SizeLf, ExtName, ExtEq, ExtToken, ExtQuoted, ExtQuotedEsc, Data, DataCr, DataLf, Trailers, Done,
}

/** A chunk size above this many hex digits is refused before it can overflow (2^52). */
const MAX_SIZE_DIGITS = 13;

export class ChunkedDecoder {
  #state = S.Size;
  #size = 0;
  #digits = 0;
  #lineBytes = 0;
  #remaining = 0;
  #trailerBuf: Buffer | null = null;
  readonly #scratch: FieldsResult = { end: 0, error: undefined };
  error: Http1Error | undefined;
  /** trailer fields of the finished body (flat), empty when none */
  trailers: string[] = [];

  constructor(readonly maxTrailerBytes: number, readonly maxTrailers: number, readonly overflowStatus: number) {}

  reset(): void {
    this.#state = S.Size;
    this.#size = 0;
    this.#digits = 0;
    this.#lineBytes = 0;
    this.#remaining = 0;
    this.#trailerBuf = null;
    this.error = undefined;
    this.trailers = [];
  }

  get done(): boolean {
    return this.#state === S.Done;
  }

  /** Consume from `off`; returns the offset after what was used (the body may end before `buf` does), -1 on error. */
  execute(buf: Buffer, off: number, sink: ChunkSink): number {
    const len = buf.length;
    while (off < len) {
      switch (this.#state) {
        case S.Data: {
          const n = Math.min(this.#remaining, len - off);
          sink.onChunkData(buf.subarray(off, off + n));
          off += n;
          this.#remaining -= n;
          if (this.#remaining === 0) this.#state = S.DataCr;
          continue;
        }
        case S.Trailers:
          return this.#trailers(buf, off);
        case S.Done:
          return off;
        default:
          break;
      }
      const c = buf[off++];
      if (++this.#lineBytes > MAX_CHUNK_LINE_BYTES && this.#state !== S.DataCr && this.#state !== S.DataLf) {
        return this.#fail(400, 'HPE_CHUNK_EXTENSIONS_OVERFLOW', 'chunk-size line too long');
      }
      switch (this.#state) {
        case S.Size: {
          const h = HEX_VALUE[c];
          if (h >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) return this.#fail(400, 'HPE_INVALID_CHUNK_SIZE', 'chunk size too large');
            this.#size = this.#size * 16 + h;
            continue;
          }
          if (this.#digits === 0) return this.#fail(400, 'HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
          if (c === CR) { this.#state = S.SizeLf; continue; }
          if (c === 0x3b /* ; */) { this.#state = S.ExtName; continue; }
          return this.#fail(400, 'HPE_INVALID_CHUNK_SIZE', 'invalid character after the chunk size');
        }
        case S.ExtName:
          if (TCHAR[c] === 1) { this.#state = S.ExtEq; continue; }
          return this.#fail(400, 'HPE_STRICT', 'invalid chunk extension name');
        case S.ExtEq:
          if (TCHAR[c] === 1) continue;
          if (c === 0x3d /* = */) { this.#state = S.ExtToken; this.#digits = -1; continue; }
          if (c === 0x3b) { this.#state = S.ExtName; continue; }
          if (c === CR) { this.#state = S.SizeLf; continue; }
          return this.#fail(400, 'HPE_STRICT', 'invalid character in a chunk extension');
        case S.ExtToken:
          // #digits -1: nothing of the value seen yet (a quoted string may start)
          if (this.#digits === -1 && c === 0x22 /* " */) { this.#state = S.ExtQuoted; continue; }
          if (this.#digits !== -3 && TCHAR[c] === 1) { this.#digits = -2; continue; }
          if (this.#digits !== -1 && c === 0x3b) { this.#state = S.ExtName; continue; }
          if (this.#digits !== -1 && c === CR) { this.#state = S.SizeLf; continue; }
          return this.#fail(400, 'HPE_STRICT', 'invalid chunk extension value');
        case S.ExtQuoted:
          if (c === 0x22) { this.#state = S.ExtToken; this.#digits = -3; continue; }
          if (c === 0x5c /* \ */) { this.#state = S.ExtQuotedEsc; continue; }
          if (c === 0x09 || (c >= 0x20 && c !== 0x7f)) continue;
          return this.#fail(400, 'HPE_STRICT', 'invalid character in a quoted chunk extension');
        case S.ExtQuotedEsc:
          if (c === 0x09 || (c >= 0x20 && c !== 0x7f)) { this.#state = S.ExtQuoted; continue; }
          return this.#fail(400, 'HPE_STRICT', 'invalid quoted-pair in a chunk extension');
        case S.SizeLf:
          if (c !== LF) return this.#fail(400, 'HPE_STRICT', 'expected LF after the chunk size line');
          this.#lineBytes = 0;
          this.#digits = 0;
          if (this.#size === 0) { this.#state = S.Trailers; this.#trailerBuf = null; continue; }
          this.#remaining = this.#size;
          this.#size = 0;
          this.#state = S.Data;
          continue;
        case S.DataCr:
          if (c !== CR) return this.#fail(400, 'HPE_STRICT', 'expected CRLF after chunk data');
          this.#state = S.DataLf;
          continue;
        case S.DataLf:
          if (c !== LF) return this.#fail(400, 'HPE_STRICT', 'expected CRLF after chunk data');
          this.#state = S.Size;
          this.#lineBytes = 0;
          continue;
        default:
          return this.#fail(400, 'HPE_INTERNAL', 'chunked decoder in an impossible state');
      }
    }
    return off;
  }

  /** Trailer section: an empty line, or field lines and an empty line. */
  #trailers(buf: Buffer, off: number): number {
    const prev = this.#trailerBuf;
    const data = prev === null ? buf.subarray(off) : Buffer.concat([prev, buf.subarray(off)]);
    const prevLen = prev === null ? 0 : prev.length;
    let end = -1;
    if (data.length >= 2 && data[0] === CR && data[1] === LF) end = 2;
    else if (data.length >= 1 && data[0] === LF) return this.#fail(400, 'HPE_STRICT', 'LF without CR after the last chunk');
    else if (data.length >= 2 && data[0] === CR) return this.#fail(400, 'HPE_STRICT', 'bare CR after the last chunk');
    else {
      const i = data.indexOf('\r\n\r\n', Math.max(0, prevLen - 3), 'latin1');
      if (i >= 0) end = i + 4;
    }
    if (end < 0) {
      if (data.length > this.maxTrailerBytes) return this.#fail(this.overflowStatus, 'HPE_HEADER_OVERFLOW', 'trailer section too large');
      this.#trailerBuf = Buffer.from(data);
      return buf.length;
    }
    if (end > this.maxTrailerBytes) return this.#fail(this.overflowStatus, 'HPE_HEADER_OVERFLOW', 'trailer section too large');
    if (end > 2) {
      const r = parseFieldLines(data.toString('latin1', 0, end), 0, this.trailers, this.maxTrailers, this.overflowStatus, this.#scratch);
      if (r.error !== undefined) { this.error = r.error; return -1; }
      // framing fields in a trailer section are a smuggling attempt (llhttp refuses them too)
      for (let i = 0; i < this.trailers.length; i += 2) {
        const name = this.trailers[i].toLowerCase();
        if (name === 'content-length' || name === 'transfer-encoding') return this.#fail(this.overflowStatus === 431 ? 400 : this.overflowStatus, 'HPE_INVALID_CONTENT_LENGTH', `${name} in a trailer section`);
      }
    }
    this.#trailerBuf = null;
    this.#state = S.Done;
    return off + (end - prevLen);
  }

  #fail(status: number, code: string, reason: string): number {
    this.error = http1Error(status, code, reason);
    return -1;
  }
}
