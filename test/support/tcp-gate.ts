// A TCP forwarder on 127.0.0.1:<ephemeral> to a target (host:port, or a Unix socket path), whose
// outage() cuts connectivity the way a dead agent or a network partition does, and restore() brings it
// back on the same port.
import net from 'node:net';
import { listenCuttable } from './cuttable-listener.js';

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
  /** client connections: open now, most open at once (since start or resetPeak), accepted in all */
  connections(): { open: number; peak: number; accepted: number };
  /** peak := open now */
  resetPeak(): void;
}

export type GateTarget = { host: string; port: number } | { path: string };

export async function startTcpGate(target: GateTarget, opts: { host?: string; port?: number; connectTimeoutMs?: number } = {}): Promise<TcpGate> {
  const host = opts.host ?? '127.0.0.1';
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  let open = 0;
  let peak = 0;
  let accepted = 0;
  const server = net.createServer((client) => {
    client.pause();
    accepted++;
    peak = Math.max(peak, ++open);
    client.once('close', () => open--);
    const upstream = 'path' in target ? net.connect({ path: target.path }) : net.connect({ host: target.host, port: target.port });
    const connectTimer = setTimeout(() => upstream.destroy(new Error('gate: upstream connect timeout')), connectTimeoutMs);
    upstream.once('connect', () => {
      clearTimeout(connectTimer);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    // Either side failing ends the pair abruptly, as a reset connection would; cutting the listener
    // destroys the client side, which takes the upstream side with it.
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
  const listener = await listenCuttable(server, host, opts.port ?? 0);
  let closed = false;
  return {
    host,
    port: listener.port,
    addr: `${host}:${listener.port}`,
    outage: () => listener.cut(),
    async restore() {
      if (!closed) await listener.restore();
    },
    async close() {
      closed = true;
      await listener.cut();
    },
    connections: () => ({ open, peak, accepted }),
    resetPeak: () => {
      peak = open;
    },
  };
}
