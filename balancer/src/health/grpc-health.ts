// The gRPC health protocol (grpc/grpc doc/health-checking.md, grpc/health/v1/health.proto) as bytes:
// a Check request is one length-prefixed message `HealthCheckRequest { string service = 1; }`; the
// answer is `HealthCheckResponse { ServingStatus status = 1; }` with UNKNOWN 0, SERVING 1,
// NOT_SERVING 2, SERVICE_UNKNOWN 3, and the call's outcome is the `grpc-status` trailer. Only SERVING
// under grpc-status 0 is healthy. Pure: the edge (grpc-health-probe.ts) moves the bytes.

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

const SERVING_STATUS: Readonly<Record<number, string>> = { 0: 'UNKNOWN', 1: 'SERVING', 2: 'NOT_SERVING', 3: 'SERVICE_UNKNOWN' };

/** A Check answer bigger than this is not a HealthCheckResponse (it has one small field). */
export const MAX_HEALTH_ANSWER_BYTES = 16 * 1024;

/** a protobuf full name (package.Service), what `check=grpc:<service>` accepts */
const SERVICE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const MAX_SERVICE_NAME = 256;

/** Why `name` cannot be a health-checked service name; undefined when it can ('' = the server as a whole). */
export function grpcServiceNameProblem(name: string): string | undefined {
  if (name === '') return undefined;
  if (name.length > MAX_SERVICE_NAME) return `gRPC service name longer than ${MAX_SERVICE_NAME} characters`;
  if (!SERVICE_NAME.test(name)) return 'gRPC service name must be a protobuf full name such as pkg.Service';
  return undefined;
}

/** The request body: one uncompressed gRPC message (flag 0, 4-byte length) holding the service name. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // field 1, wire type 2 (length-delimited); an empty string is the default and is not sent (proto3)
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) { bytes.push((n & 0x7f) | 0x80); n >>>= 7; }
  bytes.push(n);
  return Buffer.from(bytes);
}

export type HealthVerdict = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface HealthAnswer {
  /** :status of the response HEADERS */
  readonly httpStatus: number;
  /** grpc-status / grpc-message from the trailers (or the headers of a trailers-only answer) */
  readonly grpcStatus: string | undefined;
  readonly grpcMessage: string | undefined;
  /** the DATA of the response, as received */
  readonly body: Buffer;
}

/** Healthy only for grpc-status 0 and one message whose status is SERVING. */
export function judgeHealthAnswer(a: HealthAnswer): HealthVerdict {
  if (a.httpStatus !== 200) return { ok: false, error: `HTTP status ${a.httpStatus}` };
  if (a.grpcStatus === undefined) return { ok: false, error: 'no grpc-status in the answer' };
  if (a.grpcStatus !== '0') {
    const why = a.grpcMessage ? `: ${a.grpcMessage.slice(0, 200)}` : '';
    return { ok: false, error: `grpc-status ${a.grpcStatus.slice(0, 10)}${why}` };
  }
  const status = decodeServingStatus(a.body);
  if (typeof status === 'string') return { ok: false, error: status };
  if (status === 1) return { ok: true };
  return { ok: false, error: `health status ${SERVING_STATUS[status] ?? status}` };
}

/** The ServingStatus of a length-prefixed HealthCheckResponse, or why it cannot be read. */
export function decodeServingStatus(body: Buffer): number | string {
  if (body.length < 5) return 'no HealthCheckResponse message in the answer';
  if (body[0] !== 0) return 'compressed HealthCheckResponse (none was offered)';
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) return `answer of ${body.length} bytes for a message of ${len}`;
  let status = 0; // proto3: an absent field is its default, UNKNOWN
  let i = 5;
  const end = 5 + len;
  while (i < end) {
    const key = readVarint(body, i, end);
    if (key === undefined) return 'malformed HealthCheckResponse';
    i = key.next;
    const field = Math.floor(key.value / 8);
    const wire = key.value % 8;
    if (wire === 0) {
      const v = readVarint(body, i, end);
      if (v === undefined) return 'malformed HealthCheckResponse';
      i = v.next;
      if (field === 1) status = v.value;
    } else if (wire === 2) {
      const l = readVarint(body, i, end);
      if (l === undefined || l.next + l.value > end) return 'malformed HealthCheckResponse';
      i = l.next + l.value;
    } else if (wire === 1 || wire === 5) {
      i += wire === 1 ? 8 : 4;
      if (i > end) return 'malformed HealthCheckResponse';
    } else return 'malformed HealthCheckResponse';
  }
  return status;
}

function readVarint(b: Buffer, at: number, end: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = at; i < end && i < at + 10; i++) {
    value += (b[i] & 0x7f) * scale;
    scale *= 128;
    if ((b[i] & 0x80) === 0) return Number.isSafeInteger(value) ? { value, next: i + 1 } : undefined;
  }
  return undefined;
}
