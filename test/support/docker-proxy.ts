// A TCP proxy on 127.0.0.1:<ephemeral> in front of the Docker engine's Unix socket, so a test can break
// the registrator's Docker connection (event stream included) and bring it back: outage() closes the
// listener and destroys every piped connection, restore() listens again on the same port.
import net from 'node:net';

export interface DockerProxy {
  /** tcp://127.0.0.1:<port>: pass as -docker-host */
  readonly dockerHost: string;
  readonly port: number;
  outage(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

function engineSocketPath(): string {
  const host = process.env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  return '/var/run/docker.sock';
}

export async function startDockerProxy(socketPath = engineSocketPath()): Promise<DockerProxy> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer((client) => {
    track(client);
    const upstream = net.connect({ path: socketPath });
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const teardown = () => {
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
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  const port = await listen(0);
  let open = true;
  const outage = async () => {
    if (!open) return;
    open = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    sockets.clear();
    await closed;
  };
  return {
    dockerHost: `tcp://127.0.0.1:${port}`,
    port,
    outage,
    async restore() {
      if (open) return;
      await listen(port);
      open = true;
    },
    close: outage,
  };
}
