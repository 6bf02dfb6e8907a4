// JSON error answers the proxy gives itself. Bodies are built by string concatenation of
// JSON.stringify'd fields only on the error path; the happy path does no JSON work.
import type { ClientExchange } from './transport.js';
import { grpcErrorHeaders, grpcStatusOf } from './http2/grpc-status.js';

/** Stable codes in the `error` field of every JSON error body. */
export type ProxyErrorCode =
  | 'bad_host'              // 400: Host (or the absolute-form authority) is not uri-host [":" port] (see proxy/authority.ts)
  | 'bad_path'              // 400: the path is malformed or ambiguous (see routing/normalize-path.ts)
  | 'client_header_timeout' // 408: a request head not complete --client-header-timeout after its first byte
  | 'client_body_timeout'   // 408: no request-body byte for --client-body-timeout
  | 'request_timeout'       // 408: the request body did not arrive within --request-timeout
  | 'upstream_busy'         // 503: every connection to the server busy and its wait queue full
  | 'unknown_host'          // 404: no route for Host + path
  | 'no_healthy_upstream'   // 502: the upstream has no server that can be picked
  | 'upstream_unreachable'  // 502: connect refused/reset, socket error
  | 'upstream_timeout'      // 504: connect or response-headers timeout
  | 'access_denied'         // 403: the client address is denied by the service's allow= / deny= rules
  | 'rate_limited'          // 429: the service's rate= limit for this client is used up (Retry-After says when)
  | 'script_failed'         // 500: a request script threw, ran over budget or returned nonsense (logged)
  | 'script_unavailable'    // 503: a request script bound to the service is not loaded in this worker (logged once per version)
  | 'internal_error';       // 500: a bug in the proxy (logged)

export function sendJsonError(
  res: ClientExchange, status: number, code: ProxyErrorCode, fields: Record<string, string | number | undefined>,
  closeConnection: boolean,
  extraHeaders?: readonly string[],
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (res.protocol === 'grpc') {
    // a gRPC client reads statuses, not pages: HTTP 200, trailers-only (http2/grpc-status.ts)
    const detail = fields.upstream === undefined ? code : `${code}: ${fields.upstream}${fields.cause === undefined ? '' : ` (${fields.cause})`}`;
    res.writeHead(200, undefined, grpcErrorHeaders(grpcStatusOf(code, status), detail));
    res.end();
    return;
  }
  const body = JSON.stringify({ error: code, ...fields });
  const headers: string[] = ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))];
  if (closeConnection) headers.push('connection', 'close');
  if (extraHeaders !== undefined) headers.push(...extraHeaders);
  res.writeHead(status, undefined, headers);
  res.end(Buffer.from(body));
}
