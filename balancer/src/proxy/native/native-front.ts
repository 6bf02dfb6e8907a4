// The `native` engine's client side: a net.Server (or sockets handed over, e.g. TLS) whose every
// connection gets a ClientConnection; upgrades go to the shared tunnel code.
import net, { type AddressInfo } from 'node:net';
import { listenOn } from '../listen-on.js';
import type { IncomingMessage } from 'node:http';
import type { ClientFront } from '../engine.js';
import type { ProxyContext } from '../proxy-context.js';
import { upgradeRequestFrom, UpgradeTunnels, type UpgradeTunnelOptions } from '../upgrade-tunnel.js';
import { ClientConnection, type ClientConnectionOptions, type ClientConnectionOwner } from './client-connection.js';
import { DeadlineSweep, tickFor } from '../deadline-sweep.js';

export function createNativeFront(ctx: ProxyContext, opts: ClientConnectionOptions, tunnelOpts: UpgradeTunnelOptions): ClientFront {
  const log = ctx.log;
  const tunnels = new UpgradeTunnels(tunnelOpts);
  const connections = new Set<ClientConnection>();
  // keep-alive idle, head and ending deadlines of every client connection, on one clock
  const sweep = new DeadlineSweep(tickFor([opts.keepAliveMs, opts.headMs]), ctx.now, (err, conn) => {
    log.error({ err }, 'client connection timer failed');
    (conn as ClientConnection).destroy();
  });
  const owner: ClientConnectionOwner = {
    sweep,
    forget(conn: ClientConnection): void { connections.delete(conn); sweep.delete(conn); },
    upgrade(req: IncomingMessage, socket: net.Socket, early: Buffer): void { tunnels.handle(ctx, upgradeRequestFrom(req), socket, early); },
  };
  // a connection handed over while draining (the cluster primary sent it just before the listener
  // closed) is served, with `Connection: close`: destroying it would reset a client that did nothing wrong
  const accept = (socket: net.Socket): void => {
    connections.add(new ClientConnection(socket, ctx, owner, opts));
  };
  const server = net.createServer({ noDelay: true }, accept);
  let listening = false;

  return {
    listen(host: string, port: number): Promise<AddressInfo> {
      return listenOn(server, host, port, log).then((address) => {
        listening = true;
        return address;
      });
    },
    handleSocket: accept,
    stopListening(): void {
      if (listening) server.close();
      listening = false;
    },
    closeIdle(): void {
      for (const c of connections) c.closeIfIdle();
    },
    get openTunnels(): number {
      return tunnels.size;
    },
    closeAll(): void {
      if (listening) server.close();
      listening = false;
      for (const c of connections) c.destroy();
      connections.clear();
      sweep.stop();
      tunnels.destroyAll();
    },
  };
}
