// The exchange's two calls into request scripts: before the pick (onRequest: answer, rewrite the
// path or headers, pick another upstream) and when the response head is written (onResponse).
// Kept out of proxy-exchange.ts so the hot path there is one `current.scripts !== undefined` test.
import type { CompiledTable } from '../proxy/compiled-table.js';
import { sendJsonError } from '../proxy/error-responses.js';
import { normalizeHost, type ProxyContext } from '../proxy/proxy-context.js';
import type { ClientExchange } from '../proxy/transport.js';
import type { UpstreamSpec } from '../routing/types.js';
import { applyHeaderEdits, runRequestHooks, runResponseHooks, type LoadedScript } from './script-host.js';

export interface ScriptedRequest {
  readonly upstream: UpstreamSpec | undefined;
  readonly url: string;
  readonly rawHeaders: readonly string[];
}

/**
 * Runs the onRequest chain for a request routed to `upstream` (undefined: no route). Returns
 * 'answered' when the scripts (or their failure) answered the client, otherwise the request to go on with.
 */
export function requestScripts(ctx: ProxyContext, current: CompiledTable, client: ClientExchange, upstream: UpstreamSpec | undefined,
  hostHeader: string | undefined, url: string): ScriptedRequest | 'answered' {
  const same: ScriptedRequest = { upstream, url, rawHeaders: client.rawHeaders };
  const chain = current.scripts?.chain(upstream?.name);
  if (chain === undefined) return same;
  const verdict = runRequestHooks(chain, { method: client.method, host: normalizeHost(hostHeader), url, clientAddress: client.origin.address, rawHeaders: client.rawHeaders });
  if (verdict === undefined) return same;
  if (verdict.kind === 'fail') {
    sendJsonError(client, 500, 'script_failed', { script: verdict.script, version: verdict.version }, ctx.draining);
    ctx.observer?.requestEnd(upstream?.name, undefined, 500, client.method, 'http', 0, 0, 0, 0);
    ctx.accessLog?.info({ method: client.method, url, upstream: upstream?.name, status: 500, script: verdict.script, ms: 0, tries: 0 }, 'access');
    return 'answered';
  }
  if (verdict.kind === 'unavailable') {
    // fail closed: what the script enforces is not skipped because it could not load (script-host.ts)
    sendJsonError(client, 503, 'script_unavailable', { script: verdict.script, version: verdict.version, reason: verdict.reason }, ctx.draining);
    ctx.observer?.requestEnd(upstream?.name, undefined, 503, client.method, 'http', 0, 0, 0, 0);
    ctx.accessLog?.info({ method: client.method, url, upstream: upstream?.name, status: 503, script: verdict.script, ms: 0, tries: 0 }, 'access');
    return 'answered';
  }
  if (verdict.kind === 'respond') {
    const headers = [...verdict.headers, 'content-length', String(verdict.body.length)];
    if (ctx.draining) headers.push('connection', 'close');
    client.writeHead(verdict.status, undefined, headers);
    client.end(verdict.body);
    ctx.observer?.requestEnd(upstream?.name, undefined, verdict.status, client.method, 'http', 0, 0, 0, verdict.body.length);
    ctx.accessLog?.info({ method: client.method, url, upstream: upstream?.name, status: verdict.status, script: true, ms: 0, tries: 0 }, 'access');
    return 'answered';
  }
  let next = upstream;
  const nextUrl = verdict.url ?? url;
  if (verdict.upstream !== undefined) next = current.table.upstreams[verdict.upstream];
  else if (verdict.url !== undefined) {
    const q = nextUrl.indexOf('?');
    next = current.router.match(hostHeader, q < 0 ? nextUrl : nextUrl.slice(0, q))?.upstream;
  }
  const rawHeaders = verdict.headers === undefined ? client.rawHeaders : applyHeaderEdits(client.rawHeaders, verdict.headers);
  return { upstream: next, url: nextUrl, rawHeaders };
}

/** The onResponse chain of an upstream, or undefined when none of its scripts has that hook. */
export function responseChain(current: CompiledTable, upstream: string): readonly LoadedScript[] | undefined {
  const chain = current.scripts?.chain(upstream);
  return chain?.some((s) => s.hasResponse) ? chain : undefined;
}

/** Edited response headers, or undefined when a script failed (the caller answers 500). */
export function responseScripts(chain: readonly LoadedScript[], status: number, headers: string[]): string[] | { script: string; version: string } {
  return runResponseHooks(chain, status, headers);
}
