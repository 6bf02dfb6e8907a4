// The servers behind the HTTP/2 benchmark, in one process (pinned beside h2load): an HTTP/1.1
// backend answering "ok", and three small node:http2 gRPC servers whose every call (any path, a
// length-prefixed request message) is answered with one EchoReply message naming the server and
// trailers grpc-status 0. A control port answers GET /counts with each gRPC server's calls so far.
// Prints one JSON line { http, grpc: [p0, p1, p2], control } once everything listens.
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/** protobuf EchoReply { text = 1: "hello", server = 2: id } behind the 5-byte gRPC message prefix */
export function grpcReply(id: string): Buffer {
  const text = Buffer.from('hello');
  const server = Buffer.from(id);
  const msg = Buffer.concat([Buffer.from([0x0a, text.length]), text, Buffer.from([0x12, server.length]), server]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(msg.length, 1);
  return Buffer.concat([prefix, msg]);
}

const listen = (s: http.Server | http2.Http2Server): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));

const backend = http.createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }); res.end('ok'); });
backend.keepAliveTimeout = 60_000;
const counts = [0, 0, 0];
const grpcServers = counts.map((_, i) => {
  const reply = grpcReply(`g${i}`);
  const s = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  s.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      counts[i]++;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(reply);
    });
  });
  return s;
});
const control = http.createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(counts)); });
const out = { http: await listen(backend), grpc: await Promise.all(grpcServers.map(listen)), control: await listen(control) };
process.stdout.write(`${JSON.stringify(out)}\n`);
process.on('SIGTERM', () => process.exit(0));
