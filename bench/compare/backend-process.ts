// The upstream backends of the comparison, all in one process (forked by backend-pool.ts, IPC):
// loopback HTTP servers that answer 200 with their own id, count their hits and, when asked to watch a
// port, report the wall-clock time of its first hit (how fast traffic follows a Consul change).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { BackendReply, BackendRequest } from './backend-messages.js';

const hits = new Map<number, number>();
const watched = new Set<number>();
const servers: http.Server[] = [];

function send(msg: BackendReply): void {
  process.send?.(msg);
}

function openServer(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      const port = (req.socket.localPort ?? 0);
      hits.set(port, (hits.get(port) ?? 0) + 1);
      if (watched.delete(port)) send({ type: 'hit', port, at: performance.timeOrigin + performance.now() });
      const body = `backend-${port}\n`;
      // drain the request body (there is none for GET) before answering keeps keep-alive healthy
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    // the proxies keep upstream connections alive; do not be the side that closes them mid-run
    server.keepAliveTimeout = 120_000;
    server.headersTimeout = 125_000;
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      servers.push(server);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

process.on('message', (raw: unknown) => {
  const msg = raw as BackendRequest;
  if (msg.type === 'open') {
    void (async () => {
      const ports: number[] = [];
      for (let i = 0; i < Math.min(msg.count, 200); i++) ports.push(await openServer());
      send({ type: 'opened', id: msg.id, ports });
    })().catch((err: Error) => send({ type: 'error', id: msg.id, message: err.message }));
  } else if (msg.type === 'watch') {
    watched.add(msg.port);
    send({ type: 'watching', id: msg.id });
  } else if (msg.type === 'counts') {
    send({ type: 'counts', id: msg.id, hits: Object.fromEntries(hits) });
  }
});
// the harness went away: never outlive it
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
