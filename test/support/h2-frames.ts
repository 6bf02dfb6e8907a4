// HTTP/2 frames written by hand (RFC 9113 section 4-6; HPACK literals without Huffman, RFC 7541
// section 6.2.2) and read back, for tests that send what no well-behaved client library would:
// connection headers, resets in a loop, CONTINUATION without end, SETTINGS/PING/empty-DATA floods.
import net from 'node:net';
import { CLIENT_PREFACE } from '../../balancer/src/proxy/http2/client-preface.js';

export const FRAME = { data: 0, headers: 1, rstStream: 3, settings: 4, ping: 6, goaway: 7, windowUpdate: 8, continuation: 9 } as const;
export const FLAG = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

function hpackInt(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let v = value - max;
  while (v >= 128) { out.push((v % 128) + 128); v = Math.floor(v / 128); }
  out.push(v);
  return Buffer.from(out);
}

function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(bytes.length, 7, 0), bytes]);
}

/** A header block of literal fields without indexing (new names): any name, any value, in order. */
export function headerBlock(fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(fields.flatMap(([n, v]) => [Buffer.from([0]), hpackString(n), hpackString(v)]));
}

export function settingsFrame(settings: readonly (readonly [number, number])[] = []): Buffer {
  const p = Buffer.alloc(6 * settings.length);
  settings.forEach(([id, v], i) => { p.writeUInt16BE(id, i * 6); p.writeUInt32BE(v, i * 6 + 2); });
  return frame(FRAME.settings, 0, 0, p);
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.rstStream, 0, streamId, p);
}

export function requestHeaders(streamId: number, authority: string, path = '/', extra: readonly (readonly [string, string])[] = [], endStream = true): Buffer {
  const block = headerBlock([[':method', 'GET'], [':scheme', 'http'], [':authority', authority], [':path', path], ...extra]);
  return frame(FRAME.headers, FLAG.endHeaders | (endStream ? FLAG.endStream : 0), streamId, block);
}

export interface ReadFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** A raw client connection: the preface and an empty SETTINGS are sent; frames read are collected. */
export class RawH2Client {
  readonly frames: ReadFrame[] = [];
  closed = false;
  #buf = Buffer.alloc(0);
  readonly socket: net.Socket;

  constructor(port: number, socket?: net.Socket) {
    this.socket = socket ?? net.connect(port, '127.0.0.1');
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => { this.closed = true; });
    this.socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      while (this.#buf.length >= 9) {
        const len = this.#buf.readUIntBE(0, 3);
        if (this.#buf.length < 9 + len) break;
        this.frames.push({ type: this.#buf[3], flags: this.#buf[4], streamId: this.#buf.readUInt32BE(5) & 0x7fffffff, payload: this.#buf.subarray(9, 9 + len) });
        this.#buf = this.#buf.subarray(9 + len);
      }
    });
    this.socket.write(Buffer.concat([CLIENT_PREFACE, settingsFrame()]));
  }

  write(b: Buffer): boolean {
    return this.socket.destroyed ? false : this.socket.write(b);
  }

  /** The GOAWAY frame's error code, if one came. */
  goawayCode(): number | undefined {
    const f = this.frames.find((x) => x.type === FRAME.goaway);
    return f === undefined ? undefined : f.payload.readUInt32BE(4);
  }

  /** RST_STREAM code for a stream, if one came. */
  resetCode(streamId: number): number | undefined {
    const f = this.frames.find((x) => x.type === FRAME.rstStream && x.streamId === streamId);
    return f === undefined ? undefined : f.payload.readUInt32BE(0);
  }

  /** a HEADERS frame came back on this stream (an answer) */
  answered(streamId: number): boolean {
    return this.frames.some((x) => x.type === FRAME.headers && x.streamId === streamId);
  }

  close(): void {
    this.socket.destroy();
  }
}
