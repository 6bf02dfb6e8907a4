// Loopback test backends for the proxy tests: HTTP servers that answer with their own id and can
// be made slow, made to fail with a status or killed; a minimal WebSocket echo server and client
// (handshake with node:crypto, unfragmented text frames only).
import http from 'node:http';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { RetrySpec, ServerSpec, UpstreamSpec } from '../../balancer/src/routing/types.js';
import pino from 'pino';
import { request } from 'undici';
import { createWorkerRuntime } from '../../balancer/src/proxy/proxy-runtime.js';
import type { WorkerRuntime, WorkerRuntimeOptions } from '../../balancer/src/worker/runtime.js';

export interface Backend {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** requests that reached this backend (any path except /health) */
  readonly requests: number;
  /** remote ports of the proxy's sockets, one per request, to tell keep-alive reuse */
  readonly remotePorts: number[];
  /** headers of the last request */
  readonly lastHeaders: http.IncomingHttpHeaders | undefined;
  /** request targets as received, in order (any path except /health) */
  readonly urls: string[];
  /** requests whose client went away before the answer was complete */
  readonly aborted: number;
  /** request bodies received completely: bytes each */
  readonly bodies: number[];
  /** sockets open on this backend right now */
  readonly connections: number;
  /** sockets accepted since start (probes included) */
  readonly accepted: number;
  /** delay every answer by this many ms */
  delayMs: number;
  /** answer every request with this status (except /health) */
  failStatus: number | undefined;
  /** status of GET /health */
  healthStatus: number;
  spec(overrides?: Partial<ServerSpec>): ServerSpec;
  /** close the listener and destroy every socket, like a crashed process */
  kill(): Promise<void>;
}

/**
 * Paths: `/sleep/<ms>` answers after ms; `/stall` sends headers and a first chunk, then nothing; `/headers` answers the request headers as JSON; `/health`
 * answers `healthStatus`; anything else answers `<id>` (text). A request body is counted as it
 * streams (never held) and the answer is `{"id","bytes"}`.
 */
export async function startBackend(id: string): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  const state = {
    id, host: '127.0.0.1', port: 0, requests: 0, remotePorts: [] as number[], lastHeaders: undefined as http.IncomingHttpHeaders | undefined, urls: [] as string[],
    aborted: 0, accepted: 0, bodies: [] as number[], delayMs: 0, failStatus: undefined as number | undefined, healthStatus: 200,
  };
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/health') {
      res.writeHead(state.healthStatus, { 'content-type': 'text/plain' });
      res.end('health');
      return;
    }
    state.requests++;
    state.urls.push(url);
    state.remotePorts.push(req.socket.remotePort ?? 0);
    state.lastHeaders = req.headers;
    let bytes = 0;
    let ended = false;
    req.on('data', (chunk: Buffer) => { bytes += chunk.length; });
    res.on('close', () => { if (!res.writableFinished) state.aborted++; });
    const answer = (): void => {
      if (res.destroyed) return;
      const common = { 'x-backend-id': id };
      if (state.failStatus !== undefined) {
        res.writeHead(state.failStatus, { ...common, 'content-type': 'text/plain' });
        res.end(`${id} failing`);
      } else if (url === '/stall') {
        res.writeHead(200, { ...common, 'content-type': 'text/plain' });
        res.write('partial');
      } else if (url === '/headers') {
        res.writeHead(200, { ...common, 'content-type': 'application/json' });
        res.end(JSON.stringify(req.headers));
      } else if (req.method === 'POST' || req.method === 'PUT' || bytes > 0) {
        res.writeHead(200, { ...common, 'content-type': 'application/json' });
        res.end(JSON.stringify({ id, bytes }));
      } else {
        res.writeHead(200, { ...common, 'content-type': 'text/plain', 'keep-alive': 'timeout=30', 'x-hop': 'drop-me', connection: 'keep-alive, x-hop' });
        res.end(id);
      }
    };
    const sleep = /^\/sleep\/(\d+)/.exec(url);
    const delay = sleep ? Number(sleep[1]) : state.delayMs;
    req.on('end', () => {
      ended = true;
      state.bodies.push(bytes);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
    req.on('error', () => undefined);
    void ended;
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (s: net.Socket) => { state.accepted++; sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  // a getter, not a copied value (Object.assign would read it once)
  Object.defineProperty(state, 'connections', { get: () => sockets.size, enumerable: true });
  const backend: Backend = Object.assign(state as typeof state & { readonly connections: number }, {
    spec(overrides: Partial<ServerSpec> = {}): ServerSpec {
      return {
        id: `127.0.0.1:${state.port}`, host: '127.0.0.1', port: state.port, weight: 1, maxFails: 1, failTimeoutMs: 10_000,
        down: false, backup: false, ...overrides,
      };
    },
    kill(): Promise<void> {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  });
  return backend;
}

export async function startBackends(n: number, prefix = 'b'): Promise<Backend[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startBackend(`${prefix}${i}`)));
}

// ---- WebSocket (RFC 6455): just enough for a text echo ----

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC11B65';

export function websocketAccept(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** Encode one unfragmented text frame; clients must mask, servers must not. */
export function encodeTextFrame(text: string, mask: boolean): Buffer {
  const payload = Buffer.from(text);
  const len = payload.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (mask ? 4 : 0));
  head[0] = 0x81;
  head[1] = (mask ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  if (lenBytes === 2) head.writeUInt16BE(len, 2);
  else if (lenBytes === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + lenBytes);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, masked]);
}

/** Decode the first complete frame in `buf`: undefined when incomplete. */
export function decodeFrame(buf: Buffer): { opcode: number; text: string; size: number } | undefined {
  if (buf.length < 2) return undefined;
  const opcode = buf[0] & 0x0f;
  const masked = (buf[1] & 0x80) !== 0;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) { if (buf.length < 4) return undefined; len = buf.readUInt16BE(2); off = 4; }
  else if (len === 127) { if (buf.length < 10) return undefined; len = Number(buf.readBigUInt64BE(2)); off = 10; }
  const maskKey = masked ? buf.subarray(off, off + 4) : undefined;
  if (masked) off += 4;
  if (buf.length < off + len) return undefined;
  const payload = Buffer.from(buf.subarray(off, off + len));
  if (maskKey) for (let i = 0; i < len; i++) payload[i] ^= maskKey[i & 3];
  return { opcode, text: payload.toString(), size: off + len };
}

export interface WebSocketEchoBackend {
  readonly port: number;
  readonly upgrades: number;
  /** the headers of the last upgrade request */
  readonly lastHeaders: http.IncomingHttpHeaders | undefined;
  /** upgraded sockets open right now */
  readonly openSockets: number;
  spec(): ServerSpec;
  close(): Promise<void>;
}

/** Echoes every text frame back prefixed with "echo:". */
export async function startWebSocketEcho(): Promise<WebSocketEchoBackend> {
  const sockets = new Set<net.Socket>();
  const state = { port: 0, upgrades: 0, lastHeaders: undefined as http.IncomingHttpHeaders | undefined };
  const server = http.createServer((_req, res) => { res.writeHead(426); res.end(); });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    state.upgrades++;
    state.lastHeaders = req.headers;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // the proxy's end of the tunnel closed: so does this one (upgraded sockets are half-open otherwise)
    socket.once('end', () => socket.destroy());
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n`);
    let buf = head;
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (let frame = decodeFrame(buf); frame !== undefined; frame = decodeFrame(buf)) {
        buf = buf.subarray(frame.size);
        if (frame.opcode === 0x8) { socket.end(Buffer.from([0x88, 0x00])); return; }
        if (frame.opcode === 0x1) socket.write(encodeTextFrame(`echo:${frame.text}`, false));
      }
    };
    socket.on('data', onData);
    if (head.length > 0) onData(Buffer.alloc(0));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  Object.defineProperty(state, 'openSockets', { get: () => sockets.size, enumerable: true });
  return Object.assign(state as typeof state & { readonly openSockets: number }, {
    spec(): ServerSpec {
      return { id: `127.0.0.1:${state.port}`, host: '127.0.0.1', port: state.port, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false };
    },
    close(): Promise<void> {
      return new Promise<void>((resolve) => { server.close(() => resolve()); for (const s of sockets) s.destroy(); });
    },
  });
}

export interface WebSocketClient {
  readonly responseHead: string;
  send(text: string): void;
  /** next text frame, or rejects after timeoutMs */
  receive(timeoutMs?: number): Promise<string>;
  close(): void;
}

/** Open a WebSocket through `port` with the given Host header; resolves after the 101. */
export function connectWebSocket(port: number, host: string, path = '/', timeoutMs = 5_000): Promise<WebSocketClient> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('websocket handshake timeout')); }, timeoutMs);
    let buf = Buffer.alloc(0);
    const frames: string[] = [];
    const waiters: Array<(text: string) => void> = [];
    let opened = false;
    socket.on('error', (err) => { clearTimeout(timer); if (!opened) reject(err); });
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!opened) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        clearTimeout(timer);
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(websocketAccept(key))) {
          socket.destroy();
          reject(new Error(`websocket handshake refused: ${head.split('\r\n')[0]}`));
          return;
        }
        opened = true;
        resolve({
          responseHead: head,
          send: (text) => socket.write(encodeTextFrame(text, true)),
          receive: (ms = 5_000) => new Promise<string>((res, rej) => {
            const queued = frames.shift();
            if (queued !== undefined) { res(queued); return; }
            const t = setTimeout(() => rej(new Error('websocket receive timeout')), ms);
            waiters.push((text) => { clearTimeout(t); res(text); });
          }),
          close: () => socket.destroy(),
        });
      }
      for (let frame = decodeFrame(buf); frame !== undefined; frame = decodeFrame(buf)) {
        buf = buf.subarray(frame.size);
        if (frame.opcode !== 0x1) continue;
        const waiter = waiters.shift();
        if (waiter) waiter(frame.text);
        else frames.push(frame.text);
      }
    });
  });
}

// ---- harness for the in-process worker runtime ----


export const DEFAULT_RETRY: RetrySpec = { tries: 3, timeoutMs: 0, onStatuses: [502, 503, 504], nonIdempotent: false };

export function upstreamSpec(name: string, servers: readonly ServerSpec[], extra: Partial<UpstreamSpec> = {}): UpstreamSpec {
  return { name, algorithm: 'roundrobin', servers, retry: DEFAULT_RETRY, origin: 'config', ...extra };
}

export interface RunningProxy {
  readonly runtime: WorkerRuntime;
  readonly port: number;
  /** GET (or other method) through the proxy with the given Host header */
  fetch(host: string, path?: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }>;
}

export async function startProxy(overrides: Partial<WorkerRuntimeOptions> = {}): Promise<RunningProxy> {
  const runtime = createWorkerRuntime({
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    timeouts: { connectMs: 1_000, headersMs: 5_000, idleMs: 5_000, clientKeepAliveMs: 5_000 },
    maxConnectionsPerServer: 16,
    accessLog: false,
    ...overrides,
  });
  const addr = await runtime.listen('127.0.0.1', 0);
  return {
    runtime,
    port: addr.port,
    async fetch(host, path = '/', init = {}) {
      const res = await request(`http://127.0.0.1:${addr.port}${path}`, {
        method: (init.method ?? 'GET') as 'GET', headers: { host, ...init.headers }, body: init.body,
        headersTimeout: 10_000, bodyTimeout: 10_000,
      });
      return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
    },
  };
}
