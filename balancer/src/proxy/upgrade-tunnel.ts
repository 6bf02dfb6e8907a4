// WebSocket / Upgrade pass-through, for every engine's client side. The request head goes to a picked
// server over a fresh TCP connection; then the proxy WAITS for the server's answer:
//   - 101 Switching Protocols: the answer goes to the client and only now are bytes piped both ways
//     (bytes the client sent early are held until then);
//   - anything else: relayed to the client as a normal response with `Connection: close`, then both
//     connections close. Nothing the client sent after its head ever reaches that server, so a
//     keep-alive server that ignores Upgrade cannot be fed a smuggled follow-up request.
// Only the protocols in `protocols` (default websocket) are accepted. Connect failures are retried on
// another server; an open tunnel is closed after `idleMs` without a byte either way; the runtime's
// drain waits for open tunnels.
import net, { type Socket } from 'node:net';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServerSpec } from '../routing/types.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { isAbsoluteForm, parseAuthority, splitAbsoluteForm } from './authority.js';
import { normalizeHost, rawHostHeader, type ProxyContext } from './proxy-context.js';
import { clientOriginOf, type ClientOrigin } from './client-origin.js';
import { boundUpstreamFor } from './proxy-protocol-upstream.js';
import { normalizePath } from '../routing/normalize-path.js';
import { ChunkedEnd, parseResponseHead, responseFraming, upgradeAllowed, type BodyFraming } from './upgrade-response.js';

const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();

/** An Upgrade request as the client side parsed it. */
export interface UpgradeRequest {
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: readonly string[];
  /** lazily built header object (pickers hashing on a header) */
  readonly headers: IncomingHttpHeaders;
  readonly origin: ClientOrigin;
  readonly encrypted: boolean;
  readonly localPort: number;
}

/** The UpgradeRequest of a node:http IncomingMessage (or the native front's look-alike). */
export function upgradeRequestFrom(req: Pick<IncomingMessage, 'method' | 'url' | 'rawHeaders' | 'headers' | 'socket'>): UpgradeRequest {
  const s = req.socket;
  return {
    method: req.method ?? 'GET', target: req.url ?? '/', rawHeaders: req.rawHeaders, get headers() { return req.headers; },
    origin: clientOriginOf(s as Socket), encrypted: (s as { encrypted?: boolean }).encrypted === true, localPort: s.localPort ?? 0,
  };
}

export interface UpgradeTunnelOptions {
  /** allowed Upgrade protocols, lower case */
  readonly protocols: readonly string[];
  /** from request head sent to the server's answer head */
  readonly headersMs: number;
  /** an open tunnel with no byte either way for this long is closed; 0 = never */
  readonly idleMs: number;
}

/**
 * Metrics of one upgrade request: the request is counted once, when its answer head goes out (the
 * tunnel's lifetime is the tunnel counters' business), or as 499 when the client leaves first.
 */
class UpgradeOutcome {
  #counted = false;
  #tunnel = false;
  service: string | undefined;
  server: string | undefined;
  tries = 0;
  constructor(private readonly ctx: ProxyContext, private readonly method: string, private readonly protocol: string, private readonly arrived: number) {}

  answered(status: number): void {
    if (this.#counted) return;
    this.#counted = true;
    this.ctx.observer?.requestEnd(this.service, this.server, status, this.method, this.protocol, this.ctx.now() - this.arrived, this.tries, 0, 0);
  }

  tunnelOpened(): void {
    this.answered(101);
    if (this.service === undefined || this.#tunnel) return;
    this.#tunnel = true;
    this.ctx.observer?.tunnelOpened(this.service);
  }

  closed(): void {
    this.answered(499);
    if (this.#tunnel && this.service !== undefined) this.ctx.observer?.tunnelClosed(this.service);
  }
}

function rejectUpgrade(client: Duplex, status: number, reason: string, body: Record<string, string>, outcome?: UpgradeOutcome): void {
  outcome?.answered(status);
  const json = JSON.stringify(body);
  client.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`);
}

function headerValue(raw: readonly string[], lower: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === lower.length && raw[i].toLowerCase() === lower) return raw[i + 1];
  return undefined;
}

export class UpgradeTunnels {
  readonly #open = new Set<Duplex>();
  readonly #opts: UpgradeTunnelOptions;

  constructor(opts: UpgradeTunnelOptions) {
    this.#opts = opts;
  }

  /** client connections in an upgrade (waiting for the server's answer, or tunnelling) */
  get size(): number {
    return this.#open.size;
  }

  handle(ctx: ProxyContext, req: UpgradeRequest, client: Duplex, earlyData: Buffer): void {
    client.on('error', () => client.destroy());
    const rawHeaders = req.rawHeaders;
    const protocol = headerValue(rawHeaders, 'upgrade')?.trim().toLowerCase() === 'websocket' ? 'websocket' : 'http';
    const outcome = new UpgradeOutcome(ctx, req.method, protocol, ctx.now());
    client.once('close', () => outcome.closed());
    if (!upgradeAllowed(headerValue(rawHeaders, 'upgrade'), this.#opts.protocols)) {
      rejectUpgrade(client, 400, 'Bad Request', { error: 'upgrade_not_allowed', allowed: this.#opts.protocols.join(',') }, outcome);
      return;
    }
    const rawHost = rawHostHeader(rawHeaders);
    let authority = rawHost === undefined ? undefined : parseAuthority(rawHost);
    let url = req.target;
    if (authority !== null && isAbsoluteForm(url)) {
      const absolute = splitAbsoluteForm(url);
      authority = absolute === null ? null : absolute.authority;
      if (absolute !== null) url = absolute.url;
    }
    if (authority === null) {
      rejectUpgrade(client, 400, 'Bad Request', { error: 'bad_host' }, outcome);
      return;
    }
    const hostHeader = authority?.host;
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const path = normalizePath(rawPath);
    if (typeof path !== 'string') {
      rejectUpgrade(client, 400, 'Bad Request', { error: 'bad_path', reason: path.reason }, outcome);
      return;
    }
    if (path !== rawPath) url = q < 0 ? path : `${path}${url.slice(q)}`;
    const match = ctx.current.router.match(hostHeader, path);
    if (match === undefined) {
      rejectUpgrade(client, 404, 'Not Found', { error: 'unknown_host', host: normalizeHost(hostHeader) }, outcome);
      return;
    }
    const upstreamName = match.upstream.name;
    outcome.service = upstreamName;
    const clientIp = req.origin.address;
    const trusted = ctx.trustForwarded.has(clientIp);
    const headers = upstreamRequestHeaders(rawHeaders, { clientIp, proto: req.encrypted ? 'https' : 'http', port: req.localPort, trusted, underscores: ctx.underscoresInHeaders }, true, authority?.hostHeader);
    let requestHead = `${req.method} ${url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) requestHead += `${headers[i]}: ${headers[i + 1]}\r\n`;
    requestHead += '\r\n';
    const pickReq = { clientIp, url, get headers() { return req.headers; } };
    const proxyHeader = boundUpstreamFor(match.upstream, req.origin);
    const exclude = new Set<string>();
    const tries = Math.max(1, match.upstream.retry.tries);
    // client bytes wait until the server said 101 (then they are piped), or are never sent
    client.pause();
    const held: Buffer[] = earlyData.length > 0 ? [earlyData] : [];
    this.#open.add(client);
    client.once('close', () => this.#open.delete(client));

    const attempt = (): void => {
      const picker = ctx.current.pickers.get(upstreamName);
      const server: ServerSpec | undefined = picker?.pick(pickReq, exclude.size === 0 ? NOTHING_EXCLUDED : exclude);
      if (server === undefined || client.destroyed) {
        if (!client.destroyed) rejectUpgrade(client, 502, 'Bad Gateway', { error: 'no_healthy_upstream', upstream: upstreamName }, outcome);
        return;
      }
      exclude.add(server.id);
      outcome.server = server.id;
      outcome.tries = exclude.size;
      const startedAt = ctx.now();
      ctx.health.onAttemptStart(server.id, startedAt);
      let connected = false;
      const upstream = net.connect({ host: server.host, port: server.port, timeout: ctx.connectMs });
      if (proxyHeader !== undefined) upstream.write(proxyHeader.bytes); // proxy_protocol=: before the request head
      const onConnectFailure = (err: Error & { code?: string }): void => {
        upstream.destroy();
        ctx.health.onAttemptEnd(server.id, { ok: false, latencyMs: ctx.now() - startedAt, error: `${err.code ?? 'ERROR'}: ${err.message}` }, ctx.now());
        if (exclude.size < tries && !client.destroyed) { attempt(); return; }
        const timeout = err.code === 'ETIMEDOUT';
        if (!client.destroyed) rejectUpgrade(client, timeout ? 504 : 502, timeout ? 'Gateway Timeout' : 'Bad Gateway', { error: timeout ? 'upstream_timeout' : 'upstream_unreachable', upstream: upstreamName }, outcome);
      };
      upstream.once('timeout', () => {
        if (!connected) onConnectFailure(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
      });
      upstream.on('error', (err: Error) => {
        if (!connected) onConnectFailure(err);
        else { upstream.destroy(); client.destroy(); }
      });
      upstream.once('connect', () => {
        connected = true;
        upstream.setTimeout(0);
        upstream.setNoDelay(true);
        ctx.health.onAttemptEnd(server.id, { ok: true, latencyMs: ctx.now() - startedAt }, ctx.now());
        if (client.destroyed) { upstream.destroy(); return; }
        client.once('close', () => upstream.destroy());
        // until a relayed answer is complete, one side closing closes the other
        const closeClient = (): void => { client.destroy(); };
        upstream.once('close', closeClient);
        upstream.write(requestHead, 'latin1');
        this.#awaitAnswer(ctx, req.method, client, upstream, held, upstreamName, closeClient, outcome);
      });
    };
    attempt();
  }

  /** Read the server's answer head; 101 opens the tunnel, anything else is relayed and closes. */
  #awaitAnswer(ctx: ProxyContext, method: string, client: Duplex, upstream: net.Socket, held: Buffer[], upstreamName: string, closeClient: () => void, outcome: UpgradeOutcome): void {
    let buf: Buffer = Buffer.alloc(0);
    client.once('close', () => clearTimeout(timer));
    const timer = setTimeout(() => {
      upstream.off('close', closeClient);
      upstream.off('data', onData);
      upstream.destroy();
      if (!client.destroyed) rejectUpgrade(client, 504, 'Gateway Timeout', { error: 'upstream_timeout', upstream: upstreamName }, outcome);
    }, this.#opts.headersMs);
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        const head = parseResponseHead(buf);
        if (head === undefined) return;
        if (head instanceof Error) {
          clearTimeout(timer);
          upstream.off('data', onData);
          upstream.off('close', closeClient);
          upstream.destroy();
          ctx.log.warn({ upstream: upstreamName, err: head.message }, 'bad upgrade answer from upstream');
          if (!client.destroyed) rejectUpgrade(client, 502, 'Bad Gateway', { error: 'upstream_unreachable', upstream: upstreamName, cause: 'HPE_INVALID_RESPONSE' }, outcome);
          return;
        }
        const rest = buf.subarray(head.length);
        if (head.status === 101) {
          clearTimeout(timer);
          upstream.off('data', onData);
          client.write(buf.subarray(0, head.length));
          if (rest.length > 0) client.write(rest);
          outcome.tunnelOpened();
          this.#tunnel(client, upstream, held);
          return;
        }
        if (head.status >= 100 && head.status < 200) {
          // an interim answer (100, 103): pass it on, the real one follows
          client.write(buf.subarray(0, head.length));
          buf = rest;
          continue;
        }
        clearTimeout(timer);
        upstream.off('data', onData);
        upstream.off('close', closeClient);
        this.#relayAndClose(head.statusLine, head.headers, responseFraming(method, head), rest, client, upstream, outcome, head.status);
        return;
      }
    };
    upstream.on('data', onData);
  }

  #tunnel(client: Duplex, upstream: net.Socket, held: Buffer[]): void {
    for (const b of held) upstream.write(b);
    held.length = 0;
    const idleMs = this.#opts.idleMs;
    if (idleMs > 0) {
      // one timer per tunnel, re-armed lazily: a byte either way only stamps the time
      let last = Date.now();
      const stamp = (): void => { last = Date.now(); };
      upstream.on('data', stamp);
      client.on('data', stamp);
      const check = (): void => {
        const idle = Date.now() - last;
        if (idle >= idleMs) { client.destroy(); upstream.destroy(); return; }
        timer = setTimeout(check, idleMs - idle);
      };
      let timer = setTimeout(check, idleMs);
      client.once('close', () => clearTimeout(timer));
      upstream.once('close', () => clearTimeout(timer));
    }
    upstream.pipe(client);
    client.pipe(upstream);
    client.resume();
  }

  /** A non-101 answer: the client gets it as a complete response on a closing connection. */
  #relayAndClose(statusLine: string, raw: string[], framing: BodyFraming, first: Buffer, client: Duplex, upstream: net.Socket, outcome: UpgradeOutcome, status: number): void {
    if (framing.kind === 'invalid') {
      upstream.destroy();
      rejectUpgrade(client, 502, 'Bad Gateway', { error: 'upstream_unreachable', cause: 'HPE_INVALID_RESPONSE' }, outcome);
      return;
    }
    outcome.answered(status);
    const headers = clientResponseHeaders(raw, true);
    if (framing.kind === 'chunked') headers.push('transfer-encoding', 'chunked');
    let head = `${statusLine}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    client.write(`${head}\r\n`, 'latin1');
    const finish = (): void => {
      upstream.off('data', onBody);
      upstream.destroy();
      client.end();
    };
    let left = framing.kind === 'length' ? framing.length : 0;
    const chunked = framing.kind === 'chunked' ? new ChunkedEnd() : undefined;
    const onBody = (chunk: Buffer): void => {
      if (framing.kind === 'length') {
        const take = Math.min(left, chunk.length);
        if (take > 0) client.write(chunk.subarray(0, take));
        left -= take;
        if (left === 0) finish();
      } else if (chunked !== undefined) {
        let used: number;
        try {
          used = chunked.feed(chunk);
        } catch {
          // framing broke mid-body: the status line is out, a cut connection is the only signal
          upstream.destroy();
          client.destroy();
          return;
        }
        client.write(used < 0 ? chunk : chunk.subarray(0, used));
        if (used >= 0) finish();
      } else client.write(chunk); // close-delimited: until the server closes
    };
    if (framing.kind === 'none' || (framing.kind === 'length' && left === 0)) { finish(); return; }
    upstream.on('data', onBody);
    // close-delimited, or the server gave up early: what arrived is what the client gets
    upstream.once('end', () => client.end());
    upstream.once('close', () => { if (!client.writableEnded) client.destroy(); });
    if (first.length > 0) onBody(first);
  }

  destroyAll(): void {
    for (const s of this.#open) s.destroy();
    this.#open.clear();
  }
}
