// Every codec limit as a named constant; the engine passes flags over the defaults.

export interface Http1Limits {
  /** request line + header fields, bytes (431 beyond) */
  readonly maxHeadBytes: number;
  /** header fields per message (431 beyond) */
  readonly maxHeaders: number;
  /** request-target length (414 beyond) */
  readonly maxTargetBytes: number;
}

export const DEFAULT_MAX_HEAD_BYTES = 16 * 1024;
export const DEFAULT_MAX_HEADERS = 100;
export const DEFAULT_MAX_TARGET_BYTES = 8 * 1024;
/** upstream response heads may carry big cookies; still bounded */
export const DEFAULT_MAX_RESPONSE_HEAD_BYTES = 64 * 1024;
/** a chunk-size line (size + extensions) longer than this is refused */
export const MAX_CHUNK_LINE_BYTES = 4 * 1024;

export const DEFAULT_LIMITS: Http1Limits = Object.freeze({
  maxHeadBytes: DEFAULT_MAX_HEAD_BYTES, maxHeaders: DEFAULT_MAX_HEADERS, maxTargetBytes: DEFAULT_MAX_TARGET_BYTES,
});
