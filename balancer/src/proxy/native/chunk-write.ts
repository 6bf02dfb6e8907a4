// One chunk of a chunked body onto a socket: size line, the data (the received Buffer itself, not
// copied) and its CRLF corked into one writev, instead of three socket writes (three syscalls when the
// socket is writable at once).
import type net from 'node:net';
import { chunkHeader } from '../../http1/serialize.js';

export function writeChunk(socket: net.Socket, chunk: Buffer): boolean {
  socket.cork();
  socket.write(chunkHeader(chunk.length), 'latin1');
  socket.write(chunk);
  const ok = socket.write('\r\n', 'latin1');
  socket.uncork();
  return ok;
}
