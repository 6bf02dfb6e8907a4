// TLS client helpers for tests: one handshake (which certificate, ALPN, resumption), HTTPS requests
// over a keep-alive agent, and a log sink that collects pino lines.
import https from 'node:https';
import tls from 'node:tls';
import { Writable } from 'node:stream';
import { until as pollUntil } from './poll.js';

export interface HandshakeResult {
  readonly fingerprint: string;
  /** issuer of the leaf as one line, e.g. "CN=Pebble Intermediate CA 1a2b3c" */
  readonly issuer: string;
  readonly protocol: string | null;
  readonly alpn: string | false;
  readonly reused: boolean;
  readonly session?: Buffer;
}

export function handshake(port: number, servername: string | undefined, opts: tls.ConnectionOptions = {}, host = '127.0.0.1'): Promise<HandshakeResult> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = tls.connect({ host, port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...opts });
    const timer = setTimeout(() => socket.destroy(new Error('handshake timeout')), 5_000);
    socket.on('session', (s: Buffer) => (session = s));
    socket.once('secureConnect', () => {
      const result = {
        fingerprint: socket.getPeerCertificate().fingerprint256,
        issuer: Object.entries(socket.getPeerCertificate().issuer ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(', '),
        protocol: socket.getProtocol(),
        alpn: socket.alpnProtocol ?? false,
        reused: socket.isSessionReused(),
      };
      // TLS 1.3 tickets arrive after the handshake: wait for one briefly
      const finish = () => {
        clearTimeout(timer);
        session ??= socket.getSession();
        socket.end();
        resolve({ ...result, session });
      };
      if (session || result.protocol !== 'TLSv1.3') finish();
      else socket.once('session', () => setImmediate(finish)).setTimeout(1000, finish);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export interface TicketsResult {
  readonly reused: boolean;
  /** every session ticket this connection received, oldest first */
  readonly tickets: readonly Buffer[];
}

/**
 * One connection offering `session`, as a client that uses each ticket once: sends a `Connection: close`
 * request and reads until the server closes, so every ticket sent after the handshake is counted.
 */
export function ticketsOf(port: number, servername: string, session: Buffer | undefined, opts: tls.ConnectionOptions = {}, hostHeader = servername): Promise<TicketsResult> {
  return new Promise((resolve, reject) => {
    const tickets: Buffer[] = [];
    let reused = false;
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], session, ...opts }, () => {
      reused = socket.isSessionReused();
      socket.write(`GET / HTTP/1.1\r\nHost: ${hostHeader}\r\nConnection: close\r\n\r\n`);
    });
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 5 s')), 5_000);
    socket.on('session', (t: Buffer) => tickets.push(t));
    socket.on('data', () => undefined);
    socket.once('error', (err) => { clearTimeout(timer); reject(err); });
    socket.once('close', () => { clearTimeout(timer); resolve({ reused, tickets }); });
  });
}

/** `count` connections after a first full one, each offering the newest ticket the previous one got: 'resumed+<tickets>' or 'full+<tickets>' each. */
export async function ticketChain(ports: readonly number[], servername: string, count: number, opts: tls.ConnectionOptions = {}, hostHeader = servername): Promise<string[]> {
  const first = await ticketsOf(ports[0], servername, undefined, opts, hostHeader);
  if (first.tickets.length === 0) throw new Error('the first (full) handshake issued no ticket');
  let ticket = first.tickets.at(-1);
  const seen: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = await ticketsOf(ports[i % ports.length], servername, ticket, opts, hostHeader);
    seen.push(`${r.reused ? 'resumed' : 'full'}+${r.tickets.length}`);
    ticket = r.tickets.at(-1);
  }
  return seen;
}

export interface HttpsAnswer {
  readonly status: number;
  readonly body: string;
  readonly fingerprint: string;
  readonly socket: tls.TLSSocket;
}

export function httpsGet(port: number, servername: string, hostHeader: string, agent: https.Agent | false, path = '/', host = '127.0.0.1'): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port, path, servername, agent, rejectUnauthorized: false, headers: { host: hostHeader }, timeout: 5_000 }, (res) => {
      let body = '';
      // a keep-alive agent takes the socket back at 'end'
      const socket = res.socket as tls.TLSSocket;
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint, socket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A pino destination keeping every line (assertions on warnings; proof that no key is logged). */
export class LogSink extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const l of chunk.toString('utf8').split('\n')) if (l) this.lines.push(l);
    cb();
  }
  text(): string {
    return this.lines.join('\n');
  }
  /** parsed lines matching all given fields */
  find(fields: Record<string, unknown>): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => Object.entries(fields).every(([k, v]) => o[k] === v));
  }
}

/** poll.ts `until` with this file's defaults (5 s, every 10 ms) */
export function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5_000, stepMs = 10): Promise<T> {
  return pollUntil(what, probe, timeoutMs, stepMs);
}
