// The floor of the HTTP/2 benchmark: what node:http2 itself costs as a proxy front. node:http2
// server sessions (h2c, or TLS with ALPN h2 given a PEM), each stream relayed as a GET over a
// minimal HTTP/1.1 keep-alive client on raw sockets (a fixed request line, only Content-Length
// framing read back). No routing, no policy, no header translation, no metrics, no timeouts: what
// our proxy costs above this row is ours; this row is node:http2's and the runtime's.
// usage: node dist/bench/support/http2-floor-proxy.js <listenPort> <upstreamPort> [<pem with cert+key>]
import { readFileSync } from 'node:fs';
import http2, { type ServerHttp2Stream } from 'node:http2';
import net from 'node:net';

const [portArg, upstreamArg, pemPath] = process.argv.slice(2);
const upstreamPort = Number(upstreamArg);
const HEAD_END = Buffer.from('\r\n\r\n');

interface Waiting { readonly stream: ServerHttp2Stream; }

/** One keep-alive upstream socket answering one request at a time. */
class Upstream {
  readonly socket = net.connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true });
  #buf: Buffer = Buffer.alloc(0);
  #current: Waiting | undefined;

  constructor(readonly release: (u: Upstream) => void) {
    this.socket.on('data', (d: Buffer) => this.#onData(d));
    this.socket.on('error', () => this.#current?.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  }

  send(stream: ServerHttp2Stream, path: string): void {
    this.#current = { stream };
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`);
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    const end = this.#buf.indexOf(HEAD_END);
    if (end < 0) return;
    const head = this.#buf.subarray(0, end).toString('latin1');
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    const length = m ? Number(m[1]) : 0;
    if (this.#buf.length < end + 4 + length) return;
    const body = this.#buf.subarray(end + 4, end + 4 + length);
    this.#buf = Buffer.alloc(0);
    const stream = this.#current!.stream;
    this.#current = undefined;
    this.release(this);
    if (stream.destroyed) return;
    stream.respond({ ':status': Number(head.slice(9, 12)), 'content-type': 'text/plain', 'content-length': length });
    stream.end(body);
  }
}

const idle: Upstream[] = [];
const release = (u: Upstream): void => { idle.push(u); };

function onStream(stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  stream.on('error', () => undefined);
  (idle.pop() ?? new Upstream(release)).send(stream, String(headers[':path']));
}

const server = pemPath === undefined
  ? http2.createServer()
  : http2.createSecureServer({ cert: readFileSync(pemPath), key: readFileSync(pemPath), allowHTTP1: false });
server.on('stream', onStream);
server.listen(Number(portArg), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
