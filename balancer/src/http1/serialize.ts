// Head serializers. Inputs are field lists that already passed a parser of this folder or were built
// by the proxy itself (no CR/LF/NUL can be in them), so serializing is plain concatenation.
import { STATUS_CODES } from 'node:http';

/** `METHOD path HTTP/1.1` + fields + the framing line(s) (e.g. 'content-length: 5\r\n') + CRLF. */
export function serializeRequestHead(method: string, path: string, fields: readonly string[], framing: string): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return `${head}${framing}\r\n`;
}

/** `HTTP/1.1 status reason` + fields + framing + CRLF; reason from the status when not given. */
export function serializeResponseHead(status: number, reason: string | undefined, fields: readonly string[], framing: string): string {
  let head = `HTTP/1.1 ${status} ${reason ?? STATUS_CODES[status] ?? ''}\r\n`;
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return `${head}${framing}\r\n`;
}

/** Trailer section after the last chunk: `0` CRLF fields CRLF. */
export function serializeLastChunk(trailers: readonly string[] | undefined): string {
  if (trailers === undefined || trailers.length === 0) return '0\r\n\r\n';
  let out = '0\r\n';
  for (let i = 0; i < trailers.length; i += 2) out += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
  return `${out}\r\n`;
}

/** A chunk-size line for `n` bytes of data. */
export function chunkHeader(n: number): string {
  return `${n.toString(16)}\r\n`;
}

/** A complete error answer the connection writes itself (parse errors, 100 Continue, ...). */
export function simpleResponse(status: number, contentType: string, body: string, close: boolean): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`;
}
