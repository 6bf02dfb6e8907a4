// Bind a front's server: a bind error rejects; once listening, a later server error is logged, never
// thrown (one listener's trouble must not take the worker down).
import type { AddressInfo, Server } from 'node:net';
import type pino from 'pino';

export function listenOn(server: Server, host: string, port: number, log: pino.Logger): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      server.on('error', (err) => log.error({ err }, 'proxy listener error'));
      resolve(server.address() as AddressInfo);
    });
  });
}
