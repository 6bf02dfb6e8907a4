// The smallest loopback backend for balancer tests: answers every request with its name once the
// request body has been read (support/upstreams.ts startBackend has slow, failing and counting ones).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface NamedBackendOptions {
  /** the server's keep-alive timeout (node's default 5 s) */
  readonly keepAliveTimeoutMs?: number;
  /** the status of an answer by request target; default 200 */
  readonly statusFor?: (url: string) => number;
}

export async function startNamedBackend(name: string, opts: NamedBackendOptions = {}): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (opts.statusFor) res.statusCode = opts.statusFor(req.url ?? '/');
      res.end(name);
    });
  });
  if (opts.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}
