// A client on a bare TCP socket, for tests that send what no HTTP client would (half a head, a
// trickled body, bytes after an upgrade), plus the two bounded waits those tests use.
import net from 'node:net';
import { until as pollUntil } from './poll.js';

export interface RawClient {
  readonly socket: net.Socket;
  /** everything received so far (latin1: bytes as they came) */
  text(): string;
  /** resolves when the connection closed (either side) */
  readonly closed: Promise<void>;
}

export function rawClient(port: number, host = '127.0.0.1'): RawClient {
  const socket = net.connect(port, host);
  let got = '';
  socket.on('data', (c: Buffer) => { got += c.toString('latin1'); });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { socket, text: () => got, closed };
}

/** Polls a condition every 20 ms until it holds, at most timeoutMs (poll.ts). */
export async function until(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  await pollUntil(what, probe, timeoutMs, 20);
}

/** p, or a rejection naming what did not happen within ms. */
export function withTimeout<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(timer));
}
