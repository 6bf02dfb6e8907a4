// A loopback TCP port free a moment ago, for servers that must be told their port before they
// start (nginx, a child process): listen on port 0, read it, close.
import net from 'node:net';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
