// gRPC's view of the answers the proxy gives itself (PROTOCOL-HTTP2.md of grpc/grpc): an error is an
// HTTP 200 with content-type application/grpc and grpc-status / grpc-message, never an HTTP error page
// (a gRPC client would report it as "UNKNOWN: Received HTTP status 502"). And `grpc-timeout`, the
// client's deadline. Pure.

export const GRPC = {
  ok: 0, cancelled: 1, unknown: 2, invalidArgument: 3, deadlineExceeded: 4, permissionDenied: 7,
  resourceExhausted: 8, unimplemented: 12, internal: 13, unavailable: 14, unauthenticated: 16,
} as const;

/** By the ProxyErrorCode of error-responses.ts (kept as strings: that file imports this one). */
const BY_ERROR: Readonly<Record<string, number | undefined>> = {
  no_healthy_upstream: GRPC.unavailable,
  upstream_unreachable: GRPC.unavailable,
  upstream_busy: GRPC.unavailable,
  upstream_timeout: GRPC.deadlineExceeded,
  unknown_host: GRPC.unimplemented,
  bad_path: GRPC.unimplemented,
  client_header_timeout: GRPC.deadlineExceeded,
  client_body_timeout: GRPC.deadlineExceeded,
  request_timeout: GRPC.deadlineExceeded,
  script_failed: GRPC.internal,
  internal_error: GRPC.internal,
};

/** grpc/doc/http-grpc-status-mapping.md, for answers whose code is not one of ours (403, 429, ...). */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400: return GRPC.internal;
    case 401: return GRPC.unauthenticated;
    case 403: return GRPC.permissionDenied;
    case 404: return GRPC.unimplemented;
    case 429: case 502: case 503: case 504: return GRPC.unavailable;
    default: return GRPC.unknown;
  }
}

export function grpcStatusOf(code: string, httpStatus: number): number {
  return (Object.hasOwn(BY_ERROR, code) ? BY_ERROR[code] : undefined) ?? grpcStatusOfHttp(httpStatus);
}

/**
 * The status a gRPC call ended with, for the metrics: the grpc-status the client was sent; none and
 * the client went away first: CANCELLED (what its library reports); none otherwise (the upstream
 * ended without one): UNKNOWN, as gRPC clients read a missing status. Undefined for non-gRPC.
 */
export function grpcOutcome(protocol: string | undefined, sent: number | undefined, clientGone: boolean): number | undefined {
  if (protocol !== 'grpc') return undefined;
  return sent ?? (clientGone ? GRPC.cancelled : GRPC.unknown);
}

/** grpc-message: percent-encoded UTF-8, printable ASCII except '%' kept as is. */
export function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The trailers-only answer (headers with END_STREAM) for an error the proxy produced. */
export function grpcErrorHeaders(grpcStatus: number, message: string): string[] {
  return ['content-type', 'application/grpc', 'grpc-status', String(grpcStatus), 'grpc-message', encodeGrpcMessage(message)];
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` ("1S", "250m", at most 8 digits and a unit) in ms; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  return Math.ceil(Number(m[1]) * UNIT_MS[m[2]]);
}
