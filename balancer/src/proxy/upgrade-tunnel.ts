// WebSocket / Upgrade pass-through: the request line and headers go to a picked server over a raw
// TCP connection, then bytes are piped both ways untouched. Connect failures are retried on
// another server (the client has sent nothing beyond the headers yet); any later error closes both.
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServerSpec } from '../routing/types.js';
import { upstreamRequestHeaders } from './headers.js';
import { clientAddress, normalizeHost, rawHostHeader, type ProxyContext } from './proxy-context.js';
import { normalizePath } from '../routing/normalize-path.js';

const NOTHING_EXCLUDED: ReadonlySet<string> = new Set();

function rejectUpgrade(client: Duplex, status: number, reason: string, body: Record<string, string>): void {
  const json = JSON.stringify(body);
  client.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`);
}

export class UpgradeTunnels {
  readonly #open = new Set<Duplex>();

  get size(): number {
    return this.#open.size;
  }

  handle(ctx: ProxyContext, req: IncomingMessage, client: Duplex, earlyData: Buffer): void {
    const rawHeaders = req.rawHeaders;
    const hostHeader = rawHostHeader(rawHeaders);
    let url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const path = normalizePath(rawPath);
    if (typeof path !== 'string') {
      rejectUpgrade(client, 400, 'Bad Request', { error: 'bad_path', reason: path.reason });
      return;
    }
    if (path !== rawPath) url = q < 0 ? path : `${path}${url.slice(q)}`;
    const match = ctx.current.router.match(hostHeader, path);
    if (match === undefined) {
      rejectUpgrade(client, 404, 'Not Found', { error: 'unknown_host', host: normalizeHost(hostHeader) });
      return;
    }
    const upstreamName = match.upstream.name;
    const clientIp = clientAddress(req.socket.remoteAddress);
    const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
    const trusted = ctx.trustForwarded.has(clientIp);
    const headers = upstreamRequestHeaders(rawHeaders, { clientIp, proto: encrypted ? 'https' : 'http', trusted }, true);
    let requestHead = `${req.method ?? 'GET'} ${url} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) requestHead += `${headers[i]}: ${headers[i + 1]}\r\n`;
    requestHead += '\r\n';
    const pickReq = { clientIp, url, get headers() { return req.headers; } };
    const exclude = new Set<string>();
    const tries = Math.max(1, match.upstream.retry.tries);
    // hold client bytes until the upstream is connected; pipe() resumes
    client.pause();
    this.#open.add(client);
    client.on('error', () => client.destroy());
    client.once('close', () => this.#open.delete(client));

    const attempt = (): void => {
      const picker = ctx.current.pickers.get(upstreamName);
      const server: ServerSpec | undefined = picker?.pick(pickReq, exclude.size === 0 ? NOTHING_EXCLUDED : exclude);
      if (server === undefined || client.destroyed) {
        if (!client.destroyed) rejectUpgrade(client, 502, 'Bad Gateway', { error: 'no_healthy_upstream', upstream: upstreamName });
        return;
      }
      exclude.add(server.id);
      const startedAt = ctx.now();
      ctx.health.onAttemptStart(server.id, startedAt);
      let connected = false;
      const upstream = net.connect({ host: server.host, port: server.port, timeout: ctx.connectMs });
      const onConnectFailure = (err: Error & { code?: string }): void => {
        upstream.destroy();
        ctx.health.onAttemptEnd(server.id, { ok: false, latencyMs: ctx.now() - startedAt, error: `${err.code ?? 'ERROR'}: ${err.message}` }, ctx.now());
        if (exclude.size < tries && !client.destroyed) { attempt(); return; }
        if (!client.destroyed) rejectUpgrade(client, err.code === 'ETIMEDOUT' ? 504 : 502, err.code === 'ETIMEDOUT' ? 'Gateway Timeout' : 'Bad Gateway', { error: 'upstream_unreachable', upstream: upstreamName });
      };
      upstream.once('timeout', () => {
        if (!connected) onConnectFailure(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
      });
      upstream.once('error', (err: Error) => {
        if (!connected) onConnectFailure(err);
        else client.destroy();
      });
      upstream.once('connect', () => {
        connected = true;
        upstream.setTimeout(0);
        upstream.setNoDelay(true);
        ctx.health.onAttemptEnd(server.id, { ok: true, latencyMs: ctx.now() - startedAt }, ctx.now());
        if (client.destroyed) { upstream.destroy(); return; }
        upstream.write(requestHead, 'latin1');
        // bytes the client sent right after its headers (node hands them over separately)
        if (earlyData.length > 0) upstream.write(earlyData);
        upstream.pipe(client);
        client.pipe(upstream);
        upstream.once('close', () => client.destroy());
        client.once('close', () => upstream.destroy());
      });
    };
    attempt();
  }

  destroyAll(): void {
    for (const s of this.#open) s.destroy();
    this.#open.clear();
  }
}
