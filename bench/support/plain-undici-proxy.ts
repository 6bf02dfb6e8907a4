// Baseline for the proxy benchmark: the least a node:http server + undici Pool.dispatch proxy can do
// (no routing, no picking, no health, no header rewriting beyond dropping Connection). It shows how
// much of our per-request cost is the stack itself and how much is the balancer's features.
// usage: node dist/bench/support/plain-undici-proxy.js <listenPort> <targetUrl>
import http from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const [portArg, target] = process.argv.slice(2);
const pool = new Pool(target, { connections: 128, pipelining: 1 });

class Relay implements Dispatcher.DispatchHandler {
  constructor(private readonly res: http.ServerResponse) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    // backpressure: a slow client pauses the upstream body until the response drains
    this.res.on('drain', resume);
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1');
      if (name.length === 10 && name.toLowerCase() === 'connection') continue;
      headers.push(name, raw[i + 1].toString('latin1'));
    }
    this.res.writeHead(status, headers);
    return true;
  }
  onData(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }
  onComplete(): void {
    this.res.end();
  }
  onError(): void {
    if (!this.res.headersSent) this.res.writeHead(502);
    this.res.end();
  }
}

http.createServer((req, res) => {
  pool.dispatch({
    path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
    headers: ['host', req.headers.host ?? '', 'x-forwarded-for', req.socket.remoteAddress ?? '',
      ...(req.headers['content-length'] !== undefined ? ['content-length', req.headers['content-length']] : [])],
    body: req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0' ? req : null,
  }, new Relay(res));
}).listen(Number(portArg), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
