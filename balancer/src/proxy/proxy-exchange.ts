// One client request through the proxy: route, pick, dispatch to the server's undici pool, stream
// the answer back, retry on a different server when allowed (nginx proxy_next_upstream semantics).
// Per request there is one ProxyExchange and one UpstreamAttempt per try; both are plain classes
// so the hot path allocates no closures.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { PickRequest } from '../balancing/picker.js';
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import { sendJsonError } from './error-responses.js';
import { clientResponseHeaders, contentLengthOf, upstreamRequestHeaders } from './headers.js';
import { clientAddress, normalizeHost, rawHostHeader, type ProxyContext } from './proxy-context.js';

/** RFC 9110 idempotent methods; nginx retries all but POST, LOCK, PATCH. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();
/** Errors that say the request itself is bad or was cancelled by us, not that the server failed. */
const NOT_SERVER_FAULT = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_ABORTED', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH']);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT']);

const kExchange = Symbol('proxyExchange');
type TaggedResponse = ServerResponse & { [kExchange]?: ProxyExchange };

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${errorCode(err)}: ${err.message}` : String(err);
}

/** Does the request carry a body (RFC 9112 section 6.3)? */
function requestHasBody(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 14 && name.toLowerCase() === 'content-length') return raw[i + 1] !== '0';
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
  }
  return false;
}

function onResponseClose(this: TaggedResponse): void {
  const ex = this[kExchange];
  if (ex !== undefined && !ex.done) ex.clientClosed();
}

function onResponseDrain(this: TaggedResponse): void {
  this[kExchange]?.attempt?.resumeUpstream();
}

/** undici dispatch handler for one try against one server. */
class UpstreamAttempt implements Dispatcher.DispatchHandler {
  abortUpstream: ((err?: Error) => void) | null = null;
  resume: (() => void) | null = null;
  /** response was a retryable status and is being thrown away while another server is tried */
  discarded = false;
  /** response headers went to the client: no retry possible any more */
  committed = false;
  status = 0;
  latencyMs = -1;

  constructor(readonly exchange: ProxyExchange, readonly server: ServerSpec, readonly startedAt: number) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.exchange.clientGone) abort();
    else this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    this.resume = resume;
    return this.exchange.onAttemptHeaders(this, statusCode, rawHeaders);
  }

  onData(chunk: Buffer): boolean {
    if (this.discarded) return true;
    return this.exchange.writeBody(chunk);
  }

  onComplete(): void {
    this.exchange.onAttemptComplete(this);
  }

  onError(err: Error): void {
    this.exchange.onAttemptError(this, err);
  }

  resumeUpstream(): void {
    this.resume?.();
  }
}

export class ProxyExchange implements PickRequest {
  readonly clientIp: string;
  readonly url: string;
  readonly startedAt: number;
  tries = 0;
  done = false;
  clientGone = false;
  attempt: UpstreamAttempt | undefined;
  #exclude: Set<string> | undefined;
  #upstreamHeaders: string[];
  #hasBody: boolean;
  #drainListening = false;
  /** Content-Length of the response being relayed (-1: unknown) and whether body bytes went out */
  #bodyLength = -1;
  #bodyStarted = false;
  /** the whole body went out with res.end(chunk); onAttemptComplete must not end again */
  #ended = false;

  constructor(
    readonly ctx: ProxyContext, readonly req: IncomingMessage, readonly res: ServerResponse,
    readonly upstream: UpstreamSpec, url: string, rawHeaders: string[], hostOverride: string | undefined,
  ) {
    this.clientIp = clientAddress(req.socket.remoteAddress);
    this.url = url;
    this.startedAt = ctx.now();
    this.#hasBody = requestHasBody(req);
    const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
    this.#upstreamHeaders = upstreamRequestHeaders(rawHeaders, { clientIp: this.clientIp, proto: encrypted ? 'https' : 'http' }, false, hostOverride);
  }

  /** PickRequest: header-based hashing only; req.headers is built lazily by node. */
  get headers(): IncomingMessage['headers'] {
    return this.req.headers;
  }

  start(first: ServerSpec): void {
    (this.res as TaggedResponse)[kExchange] = this;
    this.res.on('close', onResponseClose);
    this.ctx.inflight++;
    this.#dispatch(first);
  }

  #dispatch(server: ServerSpec): void {
    this.tries++;
    const attempt = new UpstreamAttempt(this, server, this.ctx.now());
    this.attempt = attempt;
    this.ctx.health.onAttemptStart(server.id, attempt.startedAt);
    this.ctx.pools.get(server).dispatch({
      path: this.url,
      method: this.req.method as Dispatcher.HttpMethod,
      headers: this.#upstreamHeaders,
      body: this.#hasBody ? this.req : null,
    }, attempt);
  }

  #report(attempt: UpstreamAttempt, ok: boolean, error: string | undefined): void {
    const now = this.ctx.now();
    const latencyMs = attempt.latencyMs >= 0 ? attempt.latencyMs : now - attempt.startedAt;
    this.ctx.health.onAttemptEnd(attempt.server.id, error === undefined ? { ok, latencyMs } : { ok, latencyMs, error }, now);
  }

  /** Another try is allowed: tries left, retry window open, method allowed, request body not consumed. */
  #mayRetry(): boolean {
    const retry = this.upstream.retry;
    if (this.clientGone || this.tries >= retry.tries) return false;
    if (retry.timeoutMs > 0 && this.ctx.now() - this.startedAt >= retry.timeoutMs) return false;
    if (!retry.nonIdempotent && !IDEMPOTENT.has(this.req.method ?? 'GET')) return false;
    return !this.#hasBody || (!this.req.readableDidRead && !this.req.destroyed);
  }

  /** A server not tried yet, from the current table (it may have been swapped since the first try). */
  #pickNext(tried: ServerSpec): ServerSpec | undefined {
    this.#exclude ??= new Set();
    this.#exclude.add(tried.id);
    const picker = this.ctx.current.pickers.get(this.upstream.name);
    return picker?.pick(this, this.#exclude);
  }

  onAttemptHeaders(attempt: UpstreamAttempt, status: number, rawHeaders: Buffer[]): boolean {
    attempt.status = status;
    attempt.latencyMs = this.ctx.now() - attempt.startedAt;
    if (this.clientGone) return false;
    // a request with a body is not retried on status: undici may still be sending that body to
    // this server, and one client stream cannot feed two upstream requests
    if (!this.#hasBody && this.upstream.retry.onStatuses.includes(status)) {
      const next = this.#mayRetry() ? this.#pickNext(attempt.server) : undefined;
      if (next !== undefined) {
        // drop this answer (its body drains into nothing, keeping the keep-alive socket) and try elsewhere
        attempt.discarded = true;
        this.#report(attempt, false, `status ${status}`);
        this.#dispatch(next);
        return true;
      }
    }
    // committed only once writeHead succeeded: a throw here (bad upstream header) becomes onError -> 502
    const headers = clientResponseHeaders(rawHeaders, this.ctx.draining);
    this.res.writeHead(status, headers);
    attempt.committed = true;
    this.#bodyLength = contentLengthOf(headers);
    return true;
  }

  writeBody(chunk: Buffer): boolean {
    if (!this.#bodyStarted) {
      this.#bodyStarted = true;
      if (chunk.length === this.#bodyLength) {
        // the whole body in one chunk (the common small response): head and body leave in one
        // socket write from res.end, without write()'s extra cork/nextTick round
        this.#ended = true;
        this.res.end(chunk);
        return true;
      }
    }
    if (this.res.write(chunk)) return true;
    if (!this.#drainListening) {
      this.#drainListening = true;
      this.res.on('drain', onResponseDrain);
    }
    return false;
  }

  onAttemptComplete(attempt: UpstreamAttempt): void {
    if (attempt.discarded) return;
    const failedStatus = this.upstream.retry.onStatuses.includes(attempt.status);
    this.#report(attempt, !failedStatus, failedStatus ? `status ${attempt.status}` : undefined);
    if (!this.#ended) this.res.end();
    this.#finish(attempt);
  }

  onAttemptError(attempt: UpstreamAttempt, err: Error): void {
    if (attempt.discarded) return;
    const code = errorCode(err);
    if (this.clientGone) {
      // the client left: not the server's fault
      this.#report(attempt, true, undefined);
      this.#finish(attempt);
      return;
    }
    this.#report(attempt, NOT_SERVER_FAULT.has(code), errorText(err));
    if (attempt.committed) {
      // mid-body failure: the status line is out, so the only honest signal is a cut connection
      this.res.destroy(err);
      this.#finish(attempt);
      return;
    }
    if (!NOT_SERVER_FAULT.has(code) && this.#mayRetry()) {
      const next = this.#pickNext(attempt.server);
      if (next !== undefined) {
        this.#dispatch(next);
        return;
      }
    }
    const timeout = TIMEOUT_CODES.has(code);
    sendJsonError(this.res, timeout ? 504 : 502, timeout ? 'upstream_timeout' : 'upstream_unreachable',
      { upstream: this.upstream.name, cause: code }, this.ctx.draining);
    this.#finish(attempt);
  }

  clientClosed(): void {
    this.clientGone = true;
    const attempt = this.attempt;
    if (attempt?.abortUpstream != null) attempt.abortUpstream();
  }

  #finish(attempt: UpstreamAttempt): void {
    if (this.done) return;
    this.done = true;
    this.ctx.inflight--;
    const log = this.ctx.accessLog;
    if (log !== undefined) {
      log.info({
        method: this.req.method, url: this.url, upstream: this.upstream.name, server: attempt.server.id,
        status: this.clientGone ? 499 : this.res.statusCode, ms: this.ctx.now() - this.startedAt, tries: this.tries,
      }, 'access');
    }
  }
}

function parseAbsoluteForm(url: string): { host: string; url: string } | undefined {
  if (!/^https?:\/\//i.test(url)) return undefined;
  try {
    const parsed = new URL(url);
    return { host: parsed.host, url: `${parsed.pathname}${parsed.search}` };
  } catch {
    return undefined;
  }
}

/** node:http 'request' listener body. */
export function handleProxyRequest(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse): void {
  const rawHeaders = req.rawHeaders;
  let hostHeader = rawHostHeader(rawHeaders);
  let url = req.url ?? '/';
  let hostOverride: string | undefined;
  if (url.charCodeAt(0) !== 47 /* / */) {
    // absolute-form (RFC 9112 section 3.2.2): its authority replaces Host, the upstream gets origin-form
    const absolute = parseAbsoluteForm(url);
    if (absolute !== undefined) ({ host: hostHeader, url } = absolute);
    hostOverride = absolute?.host;
  }
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const current = ctx.current;
  // the router normalizes the host itself (lower case, no port)
  const match = current.router.match(hostHeader, path);
  if (match === undefined) {
    sendJsonError(res, 404, 'unknown_host', { host: normalizeHost(hostHeader), path }, ctx.draining);
    ctx.accessLog?.info({ method: req.method, url, host: hostHeader, status: 404, ms: 0, tries: 0 }, 'access');
    return;
  }
  const upstream = match.upstream;
  const picker = current.pickers.get(upstream.name);
  const exchange = new ProxyExchange(ctx, req, res, upstream, url, rawHeaders, hostOverride);
  const server = picker?.pick(exchange, NOTHING_EXCLUDED);
  if (server === undefined) {
    sendJsonError(res, 502, 'no_healthy_upstream', { upstream: upstream.name }, ctx.draining);
    ctx.accessLog?.info({ method: req.method, url, upstream: upstream.name, status: 502, ms: 0, tries: 0 }, 'access');
    return;
  }
  exchange.start(server);
}
