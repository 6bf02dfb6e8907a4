// What a parser says when it refuses input: the status a server answers with and a stable code.

export interface Http1Error {
  /** 400, 413, 414, 431, 501, 505; for responses 502 (the proxy's view of a broken upstream) */
  readonly status: number;
  readonly code: string;
  readonly reason: string;
}

export function http1Error(status: number, code: string, reason: string): Http1Error {
  return { status, code, reason };
}
