// An HTTP proxy in front of a Consul agent (the double or a real one) that answers chosen requests
// itself with an error status, so a test can make the agent fail one record (a 500 for one service ID,
// a 429, a 403) while everything else passes through untouched. Loopback only.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultRule {
  /** matched against "<METHOD> <path>" and the request body */
  readonly match: (request: { method: string; path: string; body: string }) => boolean;
  readonly status: number;
  /** also close the connection after answering (Consul 1.9+ does so with its 429) */
  readonly close?: boolean;
  /** the answer body (text/plain, as Consul sends its errors); default "injected <status>" */
  readonly body?: string;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  rules: FaultRule[];
  /** requests answered by a rule, and all requests seen */
  readonly counts: { faulted: number; total: number };
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const counts = { faulted: 0, total: 0 };
  const proxy: FaultProxy = {
    host: '127.0.0.1', port: 0, url: '', rules: [], counts,
    close: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const request = { method: req.method ?? 'GET', path: req.url ?? '/', body: body.toString('utf8') };
      counts.total += 1;
      const rule = proxy.rules.find((r) => r.match(request));
      if (rule) {
        counts.faulted += 1;
        res.writeHead(rule.status, { 'Content-Type': 'text/plain', ...(rule.close ? { Connection: 'close' } : {}) });
        res.end(rule.body ?? `injected ${rule.status}`);
        return;
      }
      const headers = { ...req.headers, host: `${target.host}:${target.port}` };
      const up = http.request({ host: target.host, port: target.port, method: req.method, path: req.url, headers, timeout: 30_000 }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.on('timeout', () => up.destroy());
      up.end(body);
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(proxy, {
    port,
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  });
  return proxy;
}
