// The HTTP side of the access rules and rate limits: 403 for a denied client address, 429 with
// Retry-After for a used-up limit; the request is counted and logged like any other answer.
import type { UpstreamSpec } from '../routing/types.js';
import type { TrafficGuard } from '../policy/traffic-guard.js';
import { sendJsonError } from './error-responses.js';
import { grpcOutcome } from './http2/grpc-status.js';
import type { ProxyContext } from './proxy-context.js';
import type { ClientExchange } from './transport.js';

/** true when the guard refused the request (the answer was sent). */
export function refusedByGuard(ctx: ProxyContext, guard: TrafficGuard, client: ClientExchange, upstream: UpstreamSpec, url: string): boolean {
  const clientIp = client.origin.address;
  const verdict = guard.check(upstream, clientIp, (name) => headerValue(client.rawHeaders, name));
  if (verdict.ok) return false;
  if (verdict.status === 403) sendJsonError(client, 403, 'access_denied', { upstream: upstream.name }, ctx.draining);
  else sendJsonError(client, 429, 'rate_limited', { upstream: upstream.name }, ctx.draining, ['retry-after', String(verdict.retryAfterS)]);
  ctx.observer?.requestEnd(upstream.name, undefined, verdict.status, client.method, client.protocol ?? 'http', 0, 0, 0, 0, grpcOutcome(client.protocol, client.grpcStatus, false));
  ctx.accessLog?.info({ method: client.method, url, upstream: upstream.name, client: clientIp, status: verdict.status, ms: 0, tries: 0 }, 'access');
  return true;
}

/** The first value of a header by lower-case name, from the raw list. */
function headerValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === name.length && raw[i].toLowerCase() === name) return raw[i + 1];
  return undefined;
}
