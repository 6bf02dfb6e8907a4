// Real gRPC servers and clients (@grpc/grpc-js + @grpc/proto-loader) for the HTTP/2 tests: an Echo
// service (test/support/echo.proto) whose every reply names the server that gave it.
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ServerSpec } from '../../balancer/src/routing/types.js';
import { repoRoot } from './repo-root.js';

export interface EchoRequest { text?: string; count?: number; delay_ms?: number; payload?: Buffer }
export interface EchoReply { text: string; server: string; n: number; bytes: string | number; payload?: Buffer }

type Unary = (req: EchoRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void) => grpc.ClientUnaryCall;
export interface EchoClient extends grpc.Client {
  Unary: Unary;
  ServerStream(req: EchoRequest, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
  Bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<EchoRequest, EchoReply>;
}

const definition = protoLoader.loadSync(join(repoRoot(), 'test', 'support', 'echo.proto'), { keepCase: true, longs: String, defaults: true });
const pkg = grpc.loadPackageDefinition(definition) as unknown as { balancertest: { Echo: grpc.ServiceClientConstructor } };
export const EchoService = pkg.balancertest.Echo;

const healthDefinition = protoLoader.loadSync(join(repoRoot(), 'test', 'support', 'health.proto'), { keepCase: true, enums: String, defaults: true });
const healthPkg = grpc.loadPackageDefinition(healthDefinition) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
export const HealthService = healthPkg.grpc.health.v1.Health;

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface EchoServerOptions {
  /** implement grpc.health.v1.Health/Check (statuses set with setHealth); default true */
  readonly health?: boolean;
  /** serve TLS with this certificate instead of h2c */
  readonly tls?: { readonly cert: string; readonly key: string };
}

export interface EchoServer {
  readonly id: string;
  readonly port: number;
  /** calls that reached this server, by method */
  readonly calls: Record<string, number>;
  /** calls the client (or the proxy) cancelled before they ended */
  cancelled: number;
  spec(overrides?: Partial<ServerSpec>): ServerSpec;
  /** GOAWAY, let calls in flight finish, then stop (a graceful scale-down) */
  shutdown(): Promise<void>;
  kill(): void;
  /** what Health/Check answers for `service` ('' = the server); unset names answer SERVICE_UNKNOWN, '' starts SERVING */
  setHealth(service: string, status: ServingStatus): void;
  /** the client address:port of each Health/Check call's connection, in order */
  readonly healthPeers: string[];
  /** flow control: ServerStream messages handed to call.write, and how often write returned false */
  readonly streamed: { messages: number; blocked: number };
  /** flow control: while held, ClientStream calls do not read (call.pause); received counts their messages */
  holdReads(on: boolean): void;
  readonly clientStreamReceived: number;
}

export async function startEchoServer(id: string, opts: EchoServerOptions = {}): Promise<EchoServer> {
  const server = new grpc.Server();
  const calls: Record<string, number> = { Unary: 0, ServerStream: 0, ClientStream: 0, Bidi: 0, Check: 0 };
  const state = { cancelled: 0 };
  const health = new Map<string, ServingStatus>([['', 'SERVING']]);
  const streamed = { messages: 0, blocked: 0 };
  const reads = { held: false, received: 0, calls: new Set<grpc.ServerReadableStream<EchoRequest, EchoReply>>() };
  const healthPeers: string[] = [];
  if (opts.health !== false) {
    server.addService(HealthService.service, {
      Check(call: grpc.ServerUnaryCall<{ service: string }, { status: ServingStatus }>, cb: grpc.sendUnaryData<{ status: ServingStatus }>) {
        calls.Check++;
        healthPeers.push(call.getPeer());
        cb(null, { status: health.get(call.request.service) ?? 'SERVICE_UNKNOWN' });
      },
    });
  }
  server.addService(EchoService.service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      calls.Unary++;
      const delay = call.request.delay_ms ?? 0;
      if (call.request.text === 'fail') { cb({ code: grpc.status.FAILED_PRECONDITION, details: 'asked to fail' }); return; }
      const answer = (): void => cb(null, { text: call.request.text ?? '', server: id, n: 1, bytes: call.request.payload?.length ?? 0 });
      if (delay > 0) {
        const t = setTimeout(answer, delay);
        call.on('cancelled', () => { state.cancelled++; clearTimeout(t); });
      } else answer();
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      calls.ServerStream++;
      call.on('cancelled', () => { state.cancelled++; });
      const n = call.request.count ?? 1;
      let i = 0;
      const more = (): void => {
        while (i < n) {
          i++;
          streamed.messages++;
          if (!call.write({ text: call.request.text ?? '', server: id, n: i, bytes: call.request.payload?.length ?? 0, ...(call.request.payload ? { payload: call.request.payload } : {}) })) {
            streamed.blocked++;
            call.once('drain', more);
            return;
          }
        }
        call.end();
      };
      more();
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      calls.ClientStream++;
      let n = 0;
      let bytes = 0;
      const texts: string[] = [];
      if (reads.held) call.pause();
      reads.calls.add(call);
      call.on('data', (m: EchoRequest) => { n++; reads.received++; bytes += m.payload?.length ?? 0; if (texts.length < 100) texts.push(m.text ?? ''); });
      call.on('end', () => { reads.calls.delete(call); cb(null, { text: texts.join(','), server: id, n, bytes }); });
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      calls.Bidi++;
      let n = 0;
      call.on('data', (m: EchoRequest) => { n++; call.write({ text: m.text ?? '', server: id, n, bytes: m.payload?.length ?? 0 }); });
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    const credentials = opts.tls
      ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(opts.tls.cert), private_key: Buffer.from(opts.tls.key) }], false)
      : grpc.ServerCredentials.createInsecure();
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    id, port, calls,
    get cancelled() { return state.cancelled; },
    set cancelled(v: number) { state.cancelled = v; },
    spec: (o = {}) => ({ id: `127.0.0.1:${port}`, host: '127.0.0.1', port, weight: 1, maxFails: 1, failTimeoutMs: 10_000, down: false, backup: false, ...o }),
    shutdown: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    kill: () => server.forceShutdown(),
    setHealth: (service, status) => { health.set(service, status); },
    healthPeers,
    streamed,
    holdReads: (on) => {
      reads.held = on;
      for (const c of reads.calls) if (on) c.pause(); else c.resume();
    },
    get clientStreamReceived() { return reads.received; },
  };
}

/** A client whose every call carries :authority `authority` (the balancer routes on it). */
export function echoClient(port: number, authority: string, options: grpc.ChannelOptions = {}): EchoClient {
  return new EchoService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority, ...options }) as unknown as EchoClient;
}

export function unary(client: EchoClient, req: EchoRequest, opts: grpc.CallOptions = {}): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    client.Unary(req, new grpc.Metadata(), opts, (err, res) => (err ? reject(err) : resolve(res as EchoReply)));
  });
}
