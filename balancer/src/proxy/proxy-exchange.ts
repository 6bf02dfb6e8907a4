// One client request through the proxy, whatever the engine: route, pick, dispatch to the server
// through the engine's upstream transport, stream the answer back, retry on a different server when
// allowed (nginx proxy_next_upstream semantics), account passive health and latency, turn transport
// failures into JSON 502/504, count in-flight work for draining, write the access log.
// Per request there is one ProxyExchange and one UpstreamAttempt per try; both are plain classes
// so the hot path allocates no closures.
import type { IncomingHttpHeaders } from 'node:http';
import type { Picker, PickRequest } from '../balancing/types.js';
import { appendPolicyCookies } from '../balancing/response-cookies.js';
import { requestScripts, responseChain, responseScripts } from '../scripts/exchange-hooks.js';
import type { LoadedScript } from '../scripts/script-host.js';
import type { ServerSpec, UpstreamSpec } from '../routing/types.js';
import { isAbsoluteForm, parseAuthority, splitAbsoluteForm } from './authority.js';
import { sendJsonError } from './error-responses.js';
import { grpcOutcome } from './http2/grpc-status.js';
import { clientResponseHeaders, contentLengthOf, upstreamRequestHeaders } from './headers.js';
import { normalizeHost, rawHostHeader, type ProxyContext } from './proxy-context.js';
import { boundUpstreamFor } from './proxy-protocol-upstream.js';
import { ACME_CHALLENGE_PREFIX, answerAcmeChallenge } from '../tls/acme-challenge.js';
import { sendHttpsRedirect } from '../tls/https-policy.js';
import { ERR, type ClientEvents, type ClientExchange, type UpstreamHandler, type UpstreamRequest } from './transport.js';
import { normalizePath } from '../routing/normalize-path.js';
import { refusedByGuard } from './guard-response.js';
import { GatedBody, isClientBodyTimeout, type BodyTimeoutKind, type GateEvents } from './request-body-gate.js';

/** RFC 9110 idempotent methods; nginx retries all but POST, LOCK, PATCH. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();
/** Errors that say the request itself is bad or was cancelled by us, not that the server failed. */
const NOT_SERVER_FAULT = new Set<string>([ERR.invalidArg, 'UND_ERR_NOT_SUPPORTED', ERR.aborted, 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', ERR.queueFull, ERR.queueTimeout]);
/**
 * Errors that prove no byte of the request reached a server (no connection was made): another server
 * may be tried for any method, as nginx passes even a non-idempotent request on when it was never sent.
 * A server that just exited (scale-down) answers this way until the table drops it.
 */
const NOT_SENT_CODES = new Set<string>(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', ERR.connectTimeout, ERR.refusedStream, ERR.upstreamCertificate]);
const TIMEOUT_CODES = new Set<string>([ERR.connectTimeout, ERR.headersTimeout, 'ETIMEDOUT', ERR.queueTimeout]);

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${errorCode(err)}: ${err.message}` : String(err);
}

/** Transport handler for one try against one server. */
class UpstreamAttempt implements UpstreamHandler {
  abortUpstream: ((err?: Error) => void) | null = null;
  resume: (() => void) | null = null;
  /** response was a retryable status and is being thrown away while another server is tried */
  discarded = false;
  /** response headers went to the client: no retry possible any more */
  committed = false;
  /** onComplete or onError came: a late abort must not reach the transport */
  settled = false;
  status = 0;
  latencyMs = -1;

  constructor(readonly exchange: ProxyExchange, readonly server: ServerSpec, readonly startedAt: number) {}

  onConnect(abort: (err?: Error) => void): void {
    if (this.exchange.clientGone) abort();
    else this.abortUpstream = abort;
  }

  onInformational(status: number, rawHeaders: readonly string[], statusText: string): void {
    // a proxy MUST forward 1xx (RFC 9110 section 15.2), unless the answer is being thrown away
    if (this.discarded || this.committed || this.exchange.clientGone) return;
    this.exchange.client.writeInformational?.(status, statusText === '' ? undefined : statusText, clientResponseHeaders(rawHeaders, false));
  }

  onHeaders(statusCode: number, rawHeaders: readonly Buffer[] | readonly string[], resume: () => void, statusText: string): boolean {
    this.resume = resume;
    return this.exchange.onAttemptHeaders(this, statusCode, rawHeaders, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.discarded) return true;
    return this.exchange.writeBody(chunk);
  }

  onComplete(trailers: readonly Buffer[] | readonly string[] | null): void {
    this.settled = true;
    this.exchange.onAttemptComplete(this, trailers);
  }

  onError(err: Error): void {
    this.settled = true;
    this.exchange.onAttemptError(this, err);
  }

  resumeUpstream(): void {
    this.resume?.();
  }
}

export class ProxyExchange implements PickRequest, ClientEvents, GateEvents {
  readonly clientIp: string;
  readonly url: string;
  readonly startedAt: number;
  tries = 0;
  done = false;
  clientGone = false;
  attempt: UpstreamAttempt | undefined;
  /** PickRequest: the canary draw of the first pick (policy pickers) */
  canaryBucket: number | undefined = undefined;
  /** onResponse hooks of this upstream's scripts (undefined: none, the usual case) */
  #responseScripts: readonly LoadedScript[] | undefined;
  /** the picker of the last pick: it names the cookies the answer carries */
  #picker: Picker | undefined;
  #exclude: Set<string> | undefined;
  #request: UpstreamRequest;
  /** the request body, read up to GATE_BYTES before the first dispatch */
  #gate: GatedBody | undefined;
  /** the server picked for the first try, while the body gate fills */
  #first: ServerSpec | undefined;
  /** the client was too slow sending its body: the answer is 408, no server is blamed */
  #clientTimeout: BodyTimeoutKind | undefined;
  /** Content-Length of the response being relayed (-1: unknown) and whether body bytes went out */
  #bodyLength = -1;
  #bodyStarted = false;
  /** the whole body went out with end(chunk); onAttemptComplete must not end again */
  #ended = false;
  /** response body bytes relayed (metrics) */
  #responseBytes = 0;

  constructor(
    readonly ctx: ProxyContext, readonly client: ClientExchange, readonly upstream: UpstreamSpec, url: string, hostOverride: string | undefined,
    rawHeaders: readonly string[] = client.rawHeaders,
  ) {
    this.clientIp = client.origin.address;
    this.url = url;
    this.startedAt = ctx.now();
    const trusted = ctx.trustForwarded.has(this.clientIp);
    if (ctx.current.scripts !== undefined) this.#responseScripts = responseChain(ctx.current, upstream.name);
    const headers = upstreamRequestHeaders(rawHeaders, { clientIp: this.clientIp, proto: client.encrypted ? 'https' : 'http', port: client.localPort, trusted, underscores: ctx.underscoresInHeaders }, false, hostOverride);
    this.#request = { method: client.method, path: url, headers, body: client.body, protocol: upstream.protocol, proxyHeader: boundUpstreamFor(upstream, client.origin), serverTls: upstream.serverTls };
  }

  /** PickRequest: header-based hashing only; built lazily by the client side. */
  get headers(): IncomingHttpHeaders {
    return this.client.headers;
  }

  start(first: ServerSpec, picker: Picker | undefined): void {
    this.#picker = picker;
    this.client.attach(this);
    this.ctx.inflight++;
    const body = this.client.body;
    if (body === null) { this.#dispatch(first); return; }
    // no upstream is involved until the body is in hand (or GATE_BYTES of it): onBodyReady
    this.#first = first;
    // a gRPC stream goes upstream at once (its deadline is grpc-timeout, not the body timeouts)
    const gate = new GatedBody(body, this, this.client.protocol === 'grpc'
      ? { clock: this.ctx.bodyClock, idleMs: 0, totalMs: 0, readyAfterMs: 0 }
      : { clock: this.ctx.bodyClock, idleMs: this.ctx.clientBodyMs, totalMs: this.ctx.requestMs });
    this.#gate = gate;
    this.#request = { ...this.#request, body: gate };
  }

  onBodyReady(): void {
    const first = this.#first;
    this.#first = undefined;
    if (first === undefined || this.done || this.clientGone) return;
    this.#dispatch(first);
  }

  onBodyTimeout(kind: BodyTimeoutKind): void {
    this.#clientTimeout = kind;
    const attempt = this.attempt;
    // with a try under way, the aborted body ends it in onAttemptError, which answers
    if (attempt !== undefined && !attempt.settled) return;
    this.#answerClientTimeout();
    this.#finish(attempt);
  }

  onBodyFailed(): void {
    // the client went away while its body was in the gate: nothing was sent anywhere
    if (this.attempt === undefined) { this.clientGone = true; this.#finish(undefined); }
  }

  #answerClientTimeout(): void {
    const kind = this.#clientTimeout ?? 'request_timeout';
    // the rest of the body is unread: the connection cannot carry another request
    if (this.client.headersSent) this.client.destroy();
    else sendJsonError(this.client, 408, kind, {}, true);
  }

  #dispatch(server: ServerSpec): void {
    this.tries++;
    const attempt = new UpstreamAttempt(this, server, this.ctx.now());
    this.attempt = attempt;
    this.ctx.health.onAttemptStart(server.id, attempt.startedAt);
    try {
      this.ctx.transport.dispatch(server, this.#request, attempt);
    } catch (err) {
      // a transport must report through onError; a throw (a bug, a bad host undici refuses) still
      // ends this try as a failed one instead of leaving the client hanging
      if (!attempt.settled) attempt.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #report(attempt: UpstreamAttempt, ok: boolean, error: string | undefined): void {
    const now = this.ctx.now();
    const latencyMs = attempt.latencyMs >= 0 ? attempt.latencyMs : now - attempt.startedAt;
    this.ctx.health.onAttemptEnd(attempt.server.id, error === undefined ? { ok, latencyMs } : { ok, latencyMs, error }, now);
  }

  /** Another try is allowed: tries left, retry window open, method allowed, request body not consumed. */
  #mayRetry(notSent = false): boolean {
    const retry = this.upstream.retry;
    if (this.clientGone || this.tries >= retry.tries) return false;
    if (retry.timeoutMs > 0 && this.ctx.now() - this.startedAt >= retry.timeoutMs) return false;
    if (!notSent && !retry.nonIdempotent && !IDEMPOTENT.has(this.client.method)) return false;
    const body = this.#gate ?? this.client.body;
    return body === null || (!body.consumed && !body.failed);
  }

  /** A server not tried yet, from the current table (it may have been swapped since the first try). */
  #pickNext(tried: ServerSpec): ServerSpec | undefined {
    this.#exclude ??= new Set();
    this.#exclude.add(tried.id);
    const picker = this.ctx.current.pickers.get(this.upstream.name);
    this.#picker = picker;
    return picker?.pick(this, this.#exclude);
  }

  onAttemptHeaders(attempt: UpstreamAttempt, status: number, rawHeaders: readonly Buffer[] | readonly string[], statusText: string): boolean {
    attempt.status = status;
    attempt.latencyMs = this.ctx.now() - attempt.startedAt;
    if (this.clientGone) return false;
    // a request with a body is not retried on status: the transport may still be sending that body
    // to this server, and one client stream cannot feed two upstream requests
    if (this.client.body === null && this.upstream.retry.onStatuses.includes(status)) {
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
    let headers = clientResponseHeaders(rawHeaders, this.ctx.draining);
    if (this.#picker?.responseCookies !== undefined) appendPolicyCookies(headers, this.#picker, this, attempt.server);
    if (this.#responseScripts !== undefined) {
      const edited = responseScripts(this.#responseScripts, status, headers);
      if (!Array.isArray(edited)) {
        // the script failed: this answer is dropped (its body drains into nothing) and the client gets a 500
        attempt.discarded = true;
        this.#report(attempt, true, undefined);
        sendJsonError(this.client, 500, 'script_failed', { script: edited.script, version: edited.version }, this.ctx.draining);
        this.#finish(attempt);
        return true;
      }
      headers = edited;
    }
    if (this.upstream.https?.hstsHeader !== undefined && this.client.encrypted) headers.push('strict-transport-security', this.upstream.https.hstsHeader);
    this.client.writeHead(status, statusText === '' ? undefined : statusText, headers);
    attempt.committed = true;
    this.#bodyLength = contentLengthOf(headers);
    return true;
  }

  writeBody(chunk: Buffer): boolean {
    this.#responseBytes += chunk.length;
    if (!this.#bodyStarted) {
      this.#bodyStarted = true;
      if (chunk.length === this.#bodyLength) {
        // the whole body in one chunk (the common small response): head and body leave in one
        // socket write from end(), without write()'s extra round
        this.#ended = true;
        this.client.end(chunk);
        return true;
      }
    }
    return this.client.write(chunk);
  }

  onAttemptComplete(attempt: UpstreamAttempt, trailers: readonly Buffer[] | readonly string[] | null): void {
    if (attempt.discarded) return;
    const failedStatus = this.upstream.retry.onStatuses.includes(attempt.status);
    this.#report(attempt, !failedStatus, failedStatus ? `status ${attempt.status}` : undefined);
    if (!this.#ended) this.client.end(undefined, trailers === null || trailers.length === 0 ? undefined : latin1List(trailers));
    this.#finish(attempt);
  }

  onAttemptError(attempt: UpstreamAttempt, err: Error): void {
    if (attempt.discarded) return;
    const code = errorCode(err);
    if (this.#clientTimeout !== undefined || isClientBodyTimeout(code)) {
      // the client was too slow, not the server
      this.#report(attempt, true, undefined);
      if (!this.done) this.#answerClientTimeout();
      this.#finish(attempt);
      return;
    }
    const body = this.#gate ?? this.client.body;
    if (body !== null && body.failed) {
      // the client's body broke (bad framing, or the client went away mid-body): not the server's
      // fault, and the client side answers it (the native connection's 400) or it is gone
      this.#report(attempt, true, undefined);
      if (!this.client.headersSent) this.client.destroy();
      this.#finish(attempt);
      return;
    }
    if (this.clientGone) {
      // the client left: not the server's fault
      this.#report(attempt, true, undefined);
      this.#finish(attempt);
      return;
    }
    this.#report(attempt, NOT_SERVER_FAULT.has(code), errorText(err));
    if (attempt.committed || this.client.headersSent) {
      // mid-body failure: the status line is out, so the only honest signal is a cut connection
      this.client.destroy(err);
      this.#finish(attempt);
      return;
    }
    // a full wait queue sent nothing anywhere: another server may have room
    if ((!NOT_SERVER_FAULT.has(code) || code === ERR.queueFull) && this.#mayRetry(NOT_SENT_CODES.has(code))) {
      const next = this.#pickNext(attempt.server);
      if (next !== undefined) {
        this.#dispatch(next);
        return;
      }
    }
    const timeout = TIMEOUT_CODES.has(code);
    if (code === ERR.queueFull) sendJsonError(this.client, 503, 'upstream_busy', { upstream: this.upstream.name, cause: code }, this.ctx.draining);
    else {
      sendJsonError(this.client, timeout ? 504 : 502, timeout ? 'upstream_timeout' : 'upstream_unreachable',
        { upstream: this.upstream.name, cause: code }, this.ctx.draining);
    }
    this.#finish(attempt);
  }

  onClientDrain(): void {
    this.attempt?.resumeUpstream();
  }

  onClientClose(): void {
    if (this.done) return;
    this.clientGone = true;
    const attempt = this.attempt;
    if (attempt === undefined) { this.#finish(undefined); return; }
    if (attempt !== undefined && !attempt.settled && attempt.abortUpstream !== null) attempt.abortUpstream();
  }

  #finish(attempt: UpstreamAttempt | undefined): void {
    if (this.done) return;
    this.done = true;
    this.ctx.inflight--;
    this.#gate?.dispose();
    // metrics: the one observer call per request (balancer/src/metrics/request-metrics.ts)
    this.ctx.observer?.requestEnd(this.upstream.name, attempt?.server.id, this.clientGone ? 499 : this.client.statusCode, this.client.method, this.client.protocol ?? 'http',
      this.ctx.now() - this.startedAt, this.tries, declaredLength(this.client.rawHeaders), this.#responseBytes,
      grpcOutcome(this.client.protocol, this.client.grpcStatus, this.clientGone));
    const log = this.ctx.accessLog;
    if (log !== undefined) {
      log.info({
        method: this.client.method, url: this.url, client: this.clientIp, upstream: this.upstream.name, server: attempt?.server.id,
        status: this.clientGone ? 499 : this.client.statusCode, ms: this.ctx.now() - this.startedAt, tries: this.tries,
      }, 'access');
    }
  }
}

/** Declared Content-Length of the request (0 when absent or chunked): the metrics' request bytes. */
function declaredLength(rawHeaders: readonly string[]): number {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length === 14 && rawHeaders[i].toLowerCase() === 'content-length') {
      const n = Number(rawHeaders[i + 1]);
      return Number.isFinite(n) && n > 0 ? n : 0;
    }
  }
  return 0;
}

function latin1List(list: readonly Buffer[] | readonly string[]): string[] {
  const out: string[] = [];
  for (const v of list) out.push(typeof v === 'string' ? v : v.toString('latin1'));
  return out;
}

/** The engine's client side hands every parsed request here. */
export function handleProxyRequest(ctx: ProxyContext, client: ClientExchange): void {
  if (ctx.acmeChallenge !== undefined && client.target.startsWith(ACME_CHALLENGE_PREFIX)) {
    answerAcmeChallenge(ctx.acmeChallenge, client, ctx.log, ctx.draining);
    return;
  }
  const rawHeaders = client.rawHeaders;
  const rawHost = rawHostHeader(rawHeaders);
  // route on, and forward, the authority as we read it: an invalid one is never routed (RFC 9112 section 3.2)
  let authority = rawHost === undefined ? undefined : parseAuthority(rawHost);
  let url = client.target;
  if (authority !== null && url.charCodeAt(0) !== 47 /* / */ && isAbsoluteForm(url)) {
    // absolute-form (RFC 9112 section 3.2.2): its authority replaces Host, the upstream gets origin-form
    const absolute = splitAbsoluteForm(url);
    authority = absolute === null ? null : absolute.authority;
    if (absolute !== null) url = absolute.url;
  }
  if (authority === null) {
    sendJsonError(client, 400, 'bad_host', {}, true);
    ctx.observer?.requestEnd(undefined, undefined, 400, client.method, 'http', 0, 0, 0, 0);
    ctx.accessLog?.info({ method: client.method, url, client: client.origin.address, status: 400, ms: 0, tries: 0 }, 'access');
    return;
  }
  const hostHeader = authority?.host;
  let hostOverride = authority?.hostHeader;
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  // route on, and forward, the normalized path: what the route saw is what the upstream gets
  const path = normalizePath(rawPath);
  if (typeof path !== 'string') {
    sendJsonError(client, 400, 'bad_path', { reason: path.reason }, ctx.draining);
    ctx.accessLog?.info({ method: client.method, url, client: client.origin.address, host: hostHeader, status: 400, ms: 0, tries: 0 }, 'access');
    return;
  }
  if (path !== rawPath) url = q < 0 ? path : `${path}${url.slice(q)}`;
  const current = ctx.current;
  // the router normalizes the host itself (lower case, no port)
  let match: { readonly upstream: UpstreamSpec } | undefined = current.router.match(hostHeader, path);
  let forwardHeaders: readonly string[] = rawHeaders;
  if (current.scripts !== undefined) {
    const scripted = requestScripts(ctx, current, client, match?.upstream, hostHeader, url);
    if (scripted === 'answered') return;
    match = scripted.upstream === undefined ? undefined : { upstream: scripted.upstream };
    url = scripted.url;
    forwardHeaders = scripted.rawHeaders;
    // a script that set Host forwards its own (the operator's code, not the client's)
    if (forwardHeaders !== rawHeaders && rawHostHeader(forwardHeaders) !== rawHost) hostOverride = undefined;
  }
  if (match === undefined) {
    sendJsonError(client, 404, 'unknown_host', { host: normalizeHost(hostHeader), path }, ctx.draining);
    ctx.observer?.requestEnd(undefined, undefined, 404, client.method, client.protocol ?? 'http', 0, 0, 0, 0, grpcOutcome(client.protocol, client.grpcStatus, false));
    ctx.accessLog?.info({ method: client.method, url, client: client.origin.address, host: hostHeader, status: 404, ms: 0, tries: 0 }, 'access');
    return;
  }
  const upstream = match.upstream;
  // access rules and rate limit before anything is spent on the request (policy/traffic-guard.ts)
  if (upstream.policy !== undefined && ctx.guard !== undefined && refusedByGuard(ctx, ctx.guard, client, upstream, url)) return;
  if (upstream.https?.redirect === true && !client.encrypted && hostHeader !== undefined) {
    sendHttpsRedirect(client, normalizeHost(hostHeader), url, ctx.httpsPort, ctx.draining);
    ctx.observer?.requestEnd(upstream.name, undefined, 308, client.method, client.protocol ?? 'http', 0, 0, 0, 0, grpcOutcome(client.protocol, client.grpcStatus, false));
    ctx.accessLog?.info({ method: client.method, url, client: client.origin.address, upstream: upstream.name, status: 308, ms: 0, tries: 0 }, 'access');
    return;
  }
  const picker = current.pickers.get(upstream.name);
  const exchange = new ProxyExchange(ctx, client, upstream, url, hostOverride, forwardHeaders);
  const server = picker?.pick(exchange, NOTHING_EXCLUDED);
  if (server === undefined) {
    sendJsonError(client, 502, 'no_healthy_upstream', { upstream: upstream.name }, ctx.draining);
    ctx.observer?.requestEnd(upstream.name, undefined, 502, client.method, client.protocol ?? 'http', 0, 0, 0, 0, grpcOutcome(client.protocol, client.grpcStatus, false));
    ctx.accessLog?.info({ method: client.method, url, client: client.origin.address, upstream: upstream.name, status: 502, ms: 0, tries: 0 }, 'access');
    return;
  }
  exchange.start(server, picker);
}
