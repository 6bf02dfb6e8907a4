// The HTTP/2 bounds of the client side (flags --http2-*; config.ts) and how they map onto node:http2's
// session options. nghttp2 (inside node) enforces the protocol rules and most frame-level bounds; the
// ones node does not have (a budget of client stream resets, a stream's body limit, a stalled stream's
// cut) are enforced by the front itself (client-session.ts, client-stream.ts). Pure.
import type { ServerOptions } from 'node:http2';

export interface Http2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we announce; a stream beyond it is refused (REFUSED_STREAM) */
  readonly maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: decoded header bytes of one block (HPACK bombs and CONTINUATION floods end here) */
  readonly maxHeaderListBytes: number;
  /** header fields in one block */
  readonly maxHeaderPairs: number;
  /** client resets of streams we were serving, allowed in a burst, then `resetRate` a second (CVE-2023-44487) */
  readonly resetBurst: number;
  readonly resetRate: number;
  /** frames nghttp2 calls invalid (and empty DATA frames) before the session is closed */
  readonly maxInvalidFrames: number;
  /** streams refused (over the concurrency limit) before the session is closed */
  readonly maxRejectedStreams: number;
  /** settings in one SETTINGS frame */
  readonly maxSettings: number;
  /** PINGs (ours) waiting for an ACK */
  readonly maxOutstandingPings: number;
  /** node's per-session memory bound (MB): unread SETTINGS/PING ACKs, queued frames */
  readonly maxSessionMemoryMb: number;
  /** one stream's request body, bytes (0 = none) */
  readonly maxRequestBodyBytes: number;
  /** a session with no open stream for this long is closed (GOAWAY) */
  readonly idleMs: number;
  /** a response that could not be written for this long (the client's window stays 0) is reset */
  readonly stallMs: number;
}

export const DEFAULT_HTTP2_LIMITS: Http2Limits = Object.freeze({
  maxConcurrentStreams: 128,
  maxHeaderListBytes: 65_536,
  maxHeaderPairs: 128,
  resetBurst: 200,
  resetRate: 50,
  maxInvalidFrames: 1_000,
  maxRejectedStreams: 100,
  maxSettings: 32,
  maxOutstandingPings: 10,
  maxSessionMemoryMb: 10,
  maxRequestBodyBytes: 0,
  idleMs: 60_000,
  stallMs: 60_000,
});

/** node:http2 server options for these limits. */
export function nodeServerOptions(l: Http2Limits): ServerOptions {
  return {
    maxSessionInvalidFrames: l.maxInvalidFrames,
    maxSessionRejectedStreams: l.maxRejectedStreams,
    maxHeaderListPairs: l.maxHeaderPairs,
    maxSettings: l.maxSettings,
    maxOutstandingPings: l.maxOutstandingPings,
    maxSessionMemory: l.maxSessionMemoryMb,
    // no server push: we never send PUSH_PROMISE, and a client's ENABLE_PUSH means nothing to us
    settings: {
      maxConcurrentStreams: l.maxConcurrentStreams,
      maxHeaderListSize: l.maxHeaderListBytes,
      enablePush: false,
    },
  };
}
