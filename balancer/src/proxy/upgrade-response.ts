// Pure pieces of the Upgrade pass-through: which Upgrade requests are allowed, the upstream's response
// head, and where the body of a non-101 answer ends (so the tunnel can relay it as a normal response
// and close, instead of tunnelling whatever the client sends next to a server that never upgraded).

/** Upstream response heads above this are refused (as the request side's default head limit). */
export const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;

/** Is every protocol named by an Upgrade header value (`websocket`, `h2c, foo/2`) allowed? */
export function upgradeAllowed(value: string | undefined, allowed: readonly string[]): boolean {
  if (value === undefined) return false;
  const tokens = value.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '');
  if (tokens.length === 0) return false;
  // `websocket/13` names the protocol websocket; the allow list names protocols
  return tokens.every((t) => allowed.includes(t) || allowed.includes(t.split('/')[0]));
}

export interface ResponseHead {
  readonly status: number;
  /** the status line as received, without CRLF */
  readonly statusLine: string;
  /** flat [name, value, ...] as received (latin1) */
  readonly headers: string[];
  /** bytes of the head including the final CRLFCRLF */
  readonly length: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * The response head at the start of `buf`: undefined while incomplete, an Error when malformed or
 * too large. Strict: CRLF line ends, no obs-fold, token header names, no space before the colon.
 */
export function parseResponseHead(buf: Buffer): ResponseHead | Error | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return buf.length > MAX_RESPONSE_HEAD_BYTES ? new Error('upstream response head too large') : undefined;
  if (end + 4 > MAX_RESPONSE_HEAD_BYTES) return new Error('upstream response head too large');
  const text = buf.toString('latin1', 0, end);
  const lines = text.split('\r\n');
  const statusLine = lines[0];
  const m = /^HTTP\/1\.[01] (\d{3})(?: [\t\x20-\x7e\x80-\xff]*)?$/.exec(statusLine);
  if (m === null) return new Error(`bad upstream status line ${JSON.stringify(statusLine.slice(0, 80))}`);
  const headers: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    if (colon <= 0) return new Error(`bad upstream header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return new Error(`bad upstream header name ${JSON.stringify(name.slice(0, 80))}`);
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) return new Error(`bad upstream header value for ${name}`);
    headers.push(name, value);
  }
  return { status: Number(m[1]), statusLine, headers, length: end + 4 };
}

/** How the body of a (non-101) response is delimited (RFC 9112 section 6.3). */
export type BodyFraming =
  | { readonly kind: 'none' }
  | { readonly kind: 'length'; readonly length: number }
  | { readonly kind: 'chunked' }
  | { readonly kind: 'close' }
  | { readonly kind: 'invalid'; readonly reason: string };

export function responseFraming(method: string, head: ResponseHead): BodyFraming {
  const s = head.status;
  if (method === 'HEAD' || (s >= 100 && s < 200) || s === 204 || s === 304) return { kind: 'none' };
  let te: string | undefined;
  let cl: string | undefined;
  for (let i = 0; i < head.headers.length; i += 2) {
    const n = head.headers[i].toLowerCase();
    if (n === 'transfer-encoding') te = te === undefined ? head.headers[i + 1] : `${te}, ${head.headers[i + 1]}`;
    else if (n === 'content-length') {
      if (cl !== undefined && cl !== head.headers[i + 1]) return { kind: 'invalid', reason: 'conflicting Content-Length' };
      cl = head.headers[i + 1];
    }
  }
  if (te !== undefined) {
    if (cl !== undefined) return { kind: 'invalid', reason: 'Content-Length with Transfer-Encoding' };
    const codings = te.split(',').map((c) => c.trim().toLowerCase());
    return codings[codings.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  if (cl !== undefined) {
    if (!/^\d{1,15}$/.test(cl)) return { kind: 'invalid', reason: `bad Content-Length ${JSON.stringify(cl)}` };
    return { kind: 'length', length: Number(cl) };
  }
  return { kind: 'close' };
}

/**
 * Finds the end of a chunked body fed in pieces: feed() returns the number of bytes of `chunk` that
 * belong to the body (the rest follows it), -1 while the end is not reached, or throws on bad framing.
 */
export class ChunkedEnd {
  #state: 'size' | 'ext' | 'sizeLf' | 'data' | 'dataCr' | 'dataLf' | 'trailer' | 'trailerLf' | 'trailerLine' | 'done' = 'size';
  #size = 0;
  #digits = 0;
  #left = 0;
  /** characters in the current trailer line */
  #lineLen = 0;

  feed(chunk: Buffer): number {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      switch (this.#state) {
        case 'size': {
          const v = c >= 48 && c <= 57 ? c - 48 : (c | 0x20) >= 97 && (c | 0x20) <= 102 ? (c | 0x20) - 87 : -1;
          if (v >= 0) {
            if (++this.#digits > 12) throw new Error('chunk size too large');
            this.#size = this.#size * 16 + v;
          } else if (this.#digits > 0 && (c === 59 /* ; */ || c === 32 || c === 9)) this.#state = 'ext';
          else if (this.#digits > 0 && c === 13) this.#state = 'sizeLf';
          else throw new Error('bad chunk size');
          break;
        }
        case 'ext':
          if (c === 13) this.#state = 'sizeLf';
          else if (c === 10) throw new Error('bare LF in chunk extension');
          break;
        case 'sizeLf':
          if (c !== 10) throw new Error('bad chunk size line end');
          if (this.#size === 0) { this.#state = 'trailer'; this.#lineLen = 0; }
          else { this.#state = 'data'; this.#left = this.#size; }
          this.#size = 0;
          this.#digits = 0;
          break;
        case 'data': {
          const take = Math.min(this.#left, chunk.length - i);
          this.#left -= take;
          i += take - 1;
          if (this.#left === 0) this.#state = 'dataCr';
          break;
        }
        case 'dataCr':
          if (c !== 13) throw new Error('chunk data not followed by CRLF');
          this.#state = 'dataLf';
          break;
        case 'dataLf':
          if (c !== 10) throw new Error('chunk data not followed by CRLF');
          this.#state = 'size';
          break;
        case 'trailer':
        case 'trailerLine':
          if (c === 13) this.#state = 'trailerLf';
          else if (c === 10) throw new Error('bare LF in trailer');
          else { this.#state = 'trailerLine'; this.#lineLen++; }
          break;
        case 'trailerLf':
          if (c !== 10) throw new Error('bad trailer line end');
          if (this.#lineLen === 0) { this.#state = 'done'; return i + 1; }
          this.#state = 'trailer';
          this.#lineLen = 0;
          break;
        case 'done':
          return i;
      }
    }
    return this.#state === 'done' ? 0 : -1;
  }
}
