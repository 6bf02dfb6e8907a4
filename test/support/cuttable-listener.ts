// A listener tests can cut the way a dead peer or a partition does (listener closed, every open
// connection destroyed) and restore on the same port. Shared by the Consul double and the TCP gate;
// node builtins only, since the double also runs inside a bare container.
import type net from 'node:net';

export interface CuttableListener {
  readonly port: number;
  /** close the listener and destroy every open connection; no-op when already cut */
  cut(): Promise<void>;
  /** listen again on the same host and port; no-op while listening */
  restore(): Promise<void>;
  readonly listening: boolean;
}

export async function listenCuttable(server: net.Server, host: string, port: number): Promise<CuttableListener> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const listen = (p: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, host, () => {
        server.off('error', reject);
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : p);
      });
    });
  const bound = await listen(port);
  let listening = true;
  return {
    port: bound,
    get listening() {
      return listening;
    },
    async cut() {
      if (!listening) return;
      listening = false;
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      sockets.clear();
      await done;
    },
    async restore() {
      if (listening) return;
      await listen(bound);
      listening = true;
    },
  };
}
