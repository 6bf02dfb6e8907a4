// The runtime's floor for the proxy benchmark: the least a Node process can do to relay HTTP/1.1
// between a client and one fixed upstream. Two sockets per client connection (one upstream socket
// each, opened on accept), received Buffers written straight to the other side, backpressure by
// pause/resume. No parsing, no routing, no headers, no timeouts: whatever our proxy costs above
// this row is what its features cost.
// usage: node dist/bench/support/raw-socket-proxy.js <listenPort> <upstreamPort> [<pem with cert+key>]
//   with a PEM file it terminates TLS on the client side (the TLS rows' floor), plain upstream; it renews
//   session tickets on resumption as ours does (tls/ticket-renewal.ts), so both resume the same handshakes
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { DEFAULT_TLS_CIPHERS } from '../../balancer/src/tls/tls-settings.js';
import { RenewingTicketKeys } from '../../balancer/src/tls/ticket-renewal.js';

const [portArg, upstreamArg, pemPath] = process.argv.slice(2);
const upstreamPort = Number(upstreamArg);

function relay(from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => { if (!to.write(chunk)) from.pause(); });
  to.on('drain', () => from.resume());
  from.on('end', () => to.end());
  from.on('error', () => to.destroy());
  from.on('close', () => to.destroy());
}

function onClient(client: net.Socket): void {
  client.setNoDelay(true);
  const upstream = net.connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
  relay(client, upstream);
  relay(upstream, client);
}

const server = pemPath === undefined
  ? net.createServer(onClient)
  : tls.createServer({ cert: readFileSync(pemPath), key: readFileSync(pemPath), minVersion: 'TLSv1.2', ciphers: DEFAULT_TLS_CIPHERS }, onClient);
if (server instanceof tls.Server) new RenewingTicketKeys().arm(server);
server.listen(Number(portArg), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
