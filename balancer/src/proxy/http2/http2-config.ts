// The --h2c and --http2-* flags (config.ts declares them in HTTP2_FLAGS and calls parseHttp2Config,
// so config.ts grows by one call). Pure.
import { DEFAULT_HTTP2_LIMITS, type Http2Limits } from './limits.js';

export interface Http2Config {
  /** h2c with prior knowledge on the plain --listen listener */
  readonly h2c: boolean;
  readonly limits: Http2Limits;
  /** --upstream-ca: a PEM file of the CAs proto=h2 servers' certificates must chain to */
  readonly upstreamCaFile?: string;
  /** the PEM read from upstreamCaFile at start (upstream-ca.ts); the parser leaves it undefined */
  readonly upstreamCa?: string;
}

export interface Http2FlagReader {
  bool(name: string): boolean;
  int(name: string, def: number, min: number): number;
  byteCount(name: string, def: number, min: number): number;
  duration(name: string, def: number): number;
  str(name: string): string | undefined;
}

const d = DEFAULT_HTTP2_LIMITS;

export const HTTP2_FLAGS = [
  { name: 'h2c', env: 'BALANCER_H2C', kind: 'bool', help: 'HTTP/2 with prior knowledge (the client preface, no Upgrade) on the plain --listen listener, beside HTTP/1.1' },
  { name: 'http2-max-concurrent-streams', env: 'BALANCER_HTTP2_MAX_CONCURRENT_STREAMS', kind: 'string', value: 'N', def: String(d.maxConcurrentStreams), help: 'HTTP/2 streams one client connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS; more are refused)' },
  { name: 'http2-max-header-list-size', env: 'BALANCER_HTTP2_MAX_HEADER_LIST_SIZE', kind: 'string', value: 'bytes', def: String(d.maxHeaderListBytes), help: 'decoded header bytes of one HTTP/2 request (HPACK bombs, CONTINUATION floods)' },
  { name: 'http2-max-header-pairs', env: 'BALANCER_HTTP2_MAX_HEADER_PAIRS', kind: 'string', value: 'N', def: String(d.maxHeaderPairs), help: 'header fields in one HTTP/2 request' },
  { name: 'http2-reset-burst', env: 'BALANCER_HTTP2_RESET_BURST', kind: 'string', value: 'N', def: String(d.resetBurst), help: 'client stream resets one HTTP/2 connection may make in a burst before GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487)' },
  { name: 'http2-reset-rate', env: 'BALANCER_HTTP2_RESET_RATE', kind: 'string', value: 'N', def: String(d.resetRate), help: 'client stream resets per second refilling that burst' },
  { name: 'http2-max-invalid-frames', env: 'BALANCER_HTTP2_MAX_INVALID_FRAMES', kind: 'string', value: 'N', def: String(d.maxInvalidFrames), help: 'invalid and empty DATA frames before an HTTP/2 connection is closed' },
  { name: 'http2-max-rejected-streams', env: 'BALANCER_HTTP2_MAX_REJECTED_STREAMS', kind: 'string', value: 'N', def: String(d.maxRejectedStreams), help: 'streams refused over the concurrency limit before an HTTP/2 connection is closed' },
  { name: 'http2-max-settings', env: 'BALANCER_HTTP2_MAX_SETTINGS', kind: 'string', value: 'N', def: String(d.maxSettings), help: 'settings in one HTTP/2 SETTINGS frame' },
  { name: 'http2-max-outstanding-pings', env: 'BALANCER_HTTP2_MAX_OUTSTANDING_PINGS', kind: 'string', value: 'N', def: String(d.maxOutstandingPings), help: 'our HTTP/2 PINGs waiting for an answer' },
  { name: 'http2-max-session-memory', env: 'BALANCER_HTTP2_MAX_SESSION_MEMORY', kind: 'string', value: 'MB', def: String(d.maxSessionMemoryMb), help: 'memory one HTTP/2 connection may hold in node (queued frames, unread SETTINGS/PING acks): beyond, new streams are refused' },
  { name: 'http2-max-request-body', env: 'BALANCER_HTTP2_MAX_REQUEST_BODY', kind: 'string', value: 'bytes', def: '0', help: 'request body of one HTTP/2 stream (413, or gRPC RESOURCE_EXHAUSTED, beyond; 0 = none)' },
  { name: 'http2-idle-timeout', env: 'BALANCER_HTTP2_IDLE_TIMEOUT', kind: 'string', value: 'duration', def: '60s', help: 'an HTTP/2 client connection with no open stream for this long is closed (GOAWAY)' },
  { name: 'upstream-ca', env: 'BALANCER_UPSTREAM_CA', kind: 'string', value: 'file', help: "PEM CAs the certificates of proto=h2 servers (and their check=grpc) must chain to, instead of the system store; a service opts out with tls_skip_verify=true" },
  { name: 'http2-stall-timeout', env: 'BALANCER_HTTP2_STALL_TIMEOUT', kind: 'string', value: 'duration', def: '60s', help: 'an HTTP/2 response the client does not read (flow-control window shut) for this long is reset' },
] as const;

export function parseHttp2Config(r: Http2FlagReader): Http2Config {
  return {
    h2c: r.bool('h2c'),
    ...(r.str('upstream-ca') !== undefined ? { upstreamCaFile: r.str('upstream-ca') } : {}),
    limits: {
      maxConcurrentStreams: r.int('http2-max-concurrent-streams', d.maxConcurrentStreams, 1),
      maxHeaderListBytes: r.byteCount('http2-max-header-list-size', d.maxHeaderListBytes, 1_024),
      maxHeaderPairs: r.int('http2-max-header-pairs', d.maxHeaderPairs, 4),
      resetBurst: r.int('http2-reset-burst', d.resetBurst, 1),
      resetRate: r.int('http2-reset-rate', d.resetRate, 0),
      maxInvalidFrames: r.int('http2-max-invalid-frames', d.maxInvalidFrames, 1),
      maxRejectedStreams: r.int('http2-max-rejected-streams', d.maxRejectedStreams, 1),
      maxSettings: r.int('http2-max-settings', d.maxSettings, 1),
      maxOutstandingPings: r.int('http2-max-outstanding-pings', d.maxOutstandingPings, 1),
      maxSessionMemoryMb: r.int('http2-max-session-memory', d.maxSessionMemoryMb, 1),
      maxRequestBodyBytes: r.byteCount('http2-max-request-body', d.maxRequestBodyBytes, 0),
      idleMs: r.duration('http2-idle-timeout', d.idleMs),
      stallMs: r.duration('http2-stall-timeout', d.stallMs),
    },
  };
}
