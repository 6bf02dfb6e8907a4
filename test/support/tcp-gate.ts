// A TCP forwarder on 127.0.0.1:<ephemeral> to a target, whose outage() cuts connectivity the way a
// dead agent or a network partition does, and restore() brings it back on the same port.
import net from 'node:net';

export interface TcpGate {
  readonly host: string;
  readonly port: number;
  /** "127.0.0.1:<port>" */
  readonly addr: string;
  /** close the listener and destroy every piped socket (both sides); new connections are refused */
  outage(): Promise<void>;
  /** listen again on the same port */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpGate(target: { host: string; port: number }, opts: { host?: string; port?: number; connectTimeoutMs?: number } = {}): Promise<TcpGate> {
  const host = opts.host ?? '127.0.0.1';
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer((client) => {
    track(client);
    client.pause();
    const upstream = net.connect({ host: target.host, port: target.port });
    track(upstream);
    const connectTimer = setTimeout(() => upstream.destroy(new Error('gate: upstream connect timeout')), connectTimeoutMs);
    upstream.once('connect', () => {
      clearTimeout(connectTimer);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    // Either side failing ends the pair abruptly, as a reset connection would.
    const teardown = () => {
      clearTimeout(connectTimer);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', teardown);
    upstream.on('close', teardown);
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });

  const port = await listen(opts.port ?? 0);
  let open = true;
  let closed = false;
  const outage = async () => {
    if (!open) return;
    open = false;
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    sockets.clear();
    await done;
  };
  return {
    host,
    port,
    addr: `${host}:${port}`,
    outage,
    async restore() {
      if (closed || open) return;
      await listen(port);
      open = true;
    },
    async close() {
      closed = true;
      await outage();
    },
  };
}
