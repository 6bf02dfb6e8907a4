// `check=grpc` probes of one server: grpc.health.v1.Health/Check on ONE HTTP/2 session kept across
// probes (h2c, or TLS with ALPN h2 when the service is proto=h2, its certificate checked as for its
// traffic: proxy/http2/upstream-tls.ts), opened again only after it failed or closed. Each probe is bounded by the check's timeout
// and the checker's abort signal; a probe that times out before the session connected takes the
// session with it (a server that accepts and never answers must not keep a half-open one).
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import net from 'node:net';
import type { ActiveCheckSpec, ServerSpec } from '../routing/types.js';
import { upstreamTlsOptions } from '../proxy/http2/upstream-tls.js';
import { HEALTH_CHECK_PATH, MAX_HEALTH_ANSWER_BYTES, encodeHealthCheckRequest, judgeHealthAnswer, type HealthVerdict } from './grpc-health.js';

const { NGHTTP2_CANCEL } = http2.constants;

export class GrpcHealthProbe {
  #session: ClientHttp2Session | undefined;
  #connected = false;
  readonly #body: Buffer;

  constructor(readonly server: ServerSpec, readonly spec: ActiveCheckSpec, readonly upstreamCa?: string) {
    this.#body = encodeHealthCheckRequest(spec.grpcService ?? '');
  }

  /** One Check call; never rejects. */
  check(signal: AbortSignal): Promise<HealthVerdict> {
    return new Promise((resolve) => {
      let session: ClientHttp2Session;
      try {
        session = this.#open();
      } catch (err) {
        resolve({ ok: false, error: errorText(err) });
        return;
      }
      const headers = {
        ':method': 'POST', ':path': HEALTH_CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers',
        'grpc-timeout': `${Math.max(1, this.spec.timeoutMs)}m`, 'user-agent': 'balancer-health-check',
      };
      let settled = false;
      let httpStatus = 0;
      let grpcStatus: string | undefined;
      let grpcMessage: string | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      const onSessionError = (err: unknown): void => finish({ ok: false, error: errorText(err) });
      const onSessionClose = (): void => finish({ ok: false, error: 'HTTP/2 session closed' });
      const onAbort = (): void => finish({ ok: false, error: 'aborted' });
      const timer = setTimeout(() => {
        if (!this.#connected) this.#drop(session);
        finish({ ok: false, error: `timeout after ${this.spec.timeoutMs} ms` });
      }, this.spec.timeoutMs);
      const finish = (verdict: HealthVerdict): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        session.off('error', onSessionError);
        session.off('close', onSessionClose);
        if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
        resolve(verdict);
      };
      session.once('error', onSessionError);
      session.once('close', onSessionClose);
      signal.addEventListener('abort', onAbort, { once: true });
      let stream: ClientHttp2Stream | undefined;
      try {
        stream = session.request(headers, { endStream: false });
      } catch (err) {
        this.#drop(session);
        finish({ ok: false, error: errorText(err) });
        return;
      }
      const opened = stream;
      const readStatus = (h: IncomingHttpHeaders): void => {
        if (typeof h['grpc-status'] === 'string') grpcStatus = h['grpc-status'];
        if (typeof h['grpc-message'] === 'string') grpcMessage = h['grpc-message'];
      };
      opened.on('response', (h) => { httpStatus = Number(h[':status']); readStatus(h); });
      opened.on('trailers', readStatus);
      opened.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_HEALTH_ANSWER_BYTES) finish({ ok: false, error: `answer larger than ${MAX_HEALTH_ANSWER_BYTES} bytes` });
        else chunks.push(chunk);
      });
      opened.on('end', () => finish(judgeHealthAnswer({ httpStatus, grpcStatus, grpcMessage, body: Buffer.concat(chunks) })));
      opened.on('error', (err) => finish({ ok: false, error: errorText(err) }));
      opened.on('close', () => finish({ ok: false, error: `stream closed (code ${opened.rstCode})` }));
      opened.end(this.#body);
      if (signal.aborted) onAbort();
    });
  }

  /** The server left the table or the check changed: close the session. */
  close(): void {
    const s = this.#session;
    this.#session = undefined;
    s?.destroy();
  }

  #open(): ClientHttp2Session {
    const current = this.#session;
    if (current !== undefined && !current.destroyed && !current.closed) return current;
    const tls = this.spec.tls === true;
    const host = this.server.host.replace(/^\[(.*)\]$/, '$1');
    const authority = `${tls ? 'https' : 'http'}://${net.isIPv6(host) ? `[${host}]` : host}:${this.server.port}`;
    const session = http2.connect(authority, {
      settings: { enablePush: false },
      ...(tls ? upstreamTlsOptions(host, this.spec.serverTls, this.upstreamCa) : {}),
    });
    this.#session = session;
    this.#connected = false;
    session.unref(); // a probe session never keeps the process alive
    session.once('connect', () => { if (this.#session === session) this.#connected = true; });
    session.on('error', () => undefined); // reported to the probe in flight; the session is opened again next time
    session.once('close', () => { if (this.#session === session) this.#session = undefined; });
    session.on('goaway', () => { if (this.#session === session) this.#session = undefined; });
    return session;
  }

  #drop(session: ClientHttp2Session): void {
    if (this.#session === session) this.#session = undefined;
    session.destroy();
  }
}

function errorText(err: unknown): string {
  const e = err as Error & { code?: string };
  return `${e?.code ?? 'ERROR'}: ${e?.message ?? String(err)}`;
}
