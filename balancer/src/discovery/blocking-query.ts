// One Consul blocking query (GET with index/wait), the primitive every watcher builds on.
// Consul's rules (docs: "Blocking Queries"): pass the last X-Consul-Index as `index`; if the returned
// index goes backwards or is <= 0, start over from 0; a return is no proof of change.
// Every answer's body is read under a size cap; an agent refusing a connection beyond its
// http_max_conns_per_client (a raw 429, or a bare close) is reported as ERR_CONSUL_OVER_BUDGET so the
// caller backs off instead of retrying at once.
import { request, type Dispatcher } from 'undici';
import { linkedSignal } from '../../../common/backoff.js';

export interface ConsulEndpoint {
  /** base URL, e.g. http://127.0.0.1:8500 */
  readonly baseUrl: string;
  readonly token?: string;
  readonly dispatcher?: Dispatcher;
  /** cap on one answer's body; a larger one fails with ERR_CONSUL_BODY_TOO_LARGE (default 128 MiB) */
  readonly maxBodyBytes?: number;
  /** Consul's `?stale`: any server may answer (read scale), not only the leader */
  readonly stale?: boolean;
}

export const DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024;

export interface BlockingResult<T> {
  readonly body: T;
  /** index to pass on the next call (already reset to 0 when Consul's went backwards or was invalid) */
  readonly index: number;
}

export type ConsulErrorCode = 'ERR_CONSUL_REQUEST' | 'ERR_CONSUL_OVER_BUDGET' | 'ERR_CONSUL_BODY_TOO_LARGE' | 'ERR_CONSUL_BAD_ANSWER';

export class ConsulRequestError extends Error {
  constructor(message: string, readonly status?: number, readonly code: ConsulErrorCode = 'ERR_CONSUL_REQUEST') {
    super(message);
    this.name = 'ConsulRequestError';
  }
}

/** 429 (Consul's answer beyond http_max_conns_per_client) or the connection closed under us. */
export function isOverBudget(err: unknown): boolean {
  return (err as { code?: string } | undefined)?.code === 'ERR_CONSUL_OVER_BUDGET';
}

/** Next index to use: Consul says reset when the index is <= 0 or went backwards. */
export function nextIndex(previous: number, returned: number): number {
  if (!Number.isFinite(returned) || returned <= 0) return 0;
  if (returned < previous) return 0;
  return returned;
}

/** Consul caps a blocking query's `wait` at 10 minutes; asking for more only stretches our deadline. */
export const MAX_BLOCKING_WAIT_MS = 600_000;

/**
 * The `wait` parameter and the client-side deadline of one blocking query. Consul adds up to wait/16
 * of jitter; the deadline allows that plus a margin, and is bounded because the wait is capped (a
 * half-open connection must not hold a watcher for the 99 h someone typed).
 */
export function blockingBounds(waitMs: number): { wait: string; deadlineMs: number } {
  const capped = Math.min(Math.max(0, Number.isFinite(waitMs) ? waitMs : MAX_BLOCKING_WAIT_MS), MAX_BLOCKING_WAIT_MS);
  const waitSeconds = Math.max(1, Math.round(capped / 1000));
  return { wait: `${waitSeconds}s`, deadlineMs: Math.ceil(waitSeconds * 1000 * (1 + 1 / 16) + 5_000) };
}

export interface BlockingAnswer {
  readonly status: number;
  readonly text: string;
  /** index for the next call (see nextIndex) */
  readonly index: number;
  readonly pathname: string;
  /** body bytes read */
  readonly bytes: number;
}

export interface FetchCallOptions {
  /** 0 = a plain (non-blocking) read */
  readonly index: number;
  readonly waitMs: number;
  readonly signal: AbortSignal;
  /** deadline of a non-blocking read (index 0); default: the blocking bound of waitMs */
  readonly timeoutMs?: number;
}

/** Socket-level failures that mean "the agent closed on us": over budget (or restarting). */
const CLOSED_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'UND_ERR_CLOSED', 'EPIPE']);

/** The raw blocking GET: status, body text and next index; the caller decides which statuses are answers. */
export async function blockingFetch(
  endpoint: ConsulEndpoint,
  path: string,
  params: Record<string, string | undefined>,
  opts: FetchCallOptions,
): Promise<BlockingAnswer> {
  const url = new URL(path, endpoint.baseUrl);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  if (endpoint.stale) url.searchParams.set('stale', '');
  const bounds = blockingBounds(opts.waitMs);
  if (opts.index > 0) {
    url.searchParams.set('index', String(opts.index));
    url.searchParams.set('wait', bounds.wait);
  }
  const deadlineMs = opts.index > 0 || opts.timeoutMs === undefined ? bounds.deadlineMs : opts.timeoutMs;
  // a per-call signal unlinked when the call ends (AbortSignal.any leaks on Node 20)
  const linked = linkedSignal(opts.signal, deadlineMs);
  const headers: Record<string, string> = {};
  if (endpoint.token) headers['x-consul-token'] = endpoint.token;
  const max = endpoint.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  try {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', headers, signal: linked.signal, dispatcher: endpoint.dispatcher });
    } catch (err) {
      throw classify(err, url.pathname);
    }
    if (res.statusCode === 429) {
      res.body.resume();
      throw new ConsulRequestError(`GET ${url.pathname} -> 429 Too Many Requests (agent's http_max_conns_per_client reached)`, 429, 'ERR_CONSUL_OVER_BUDGET');
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      res.body.destroy();
      throw new ConsulRequestError(`GET ${url.pathname}: answer of ${declared} bytes exceeds the ${max}-byte cap`, res.statusCode, 'ERR_CONSUL_BODY_TOO_LARGE');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > max) {
          res.body.destroy();
          throw new ConsulRequestError(`GET ${url.pathname}: answer exceeds the ${max}-byte cap`, res.statusCode, 'ERR_CONSUL_BODY_TOO_LARGE');
        }
        chunks.push(chunk);
      }
    } catch (err) {
      if (err instanceof ConsulRequestError) throw err;
      throw classify(err, url.pathname);
    }
    const raw = res.headers['x-consul-index'];
    const returned = Number(Array.isArray(raw) ? raw[0] : raw);
    return {
      status: res.statusCode,
      text: Buffer.concat(chunks, size).toString('utf8'),
      index: nextIndex(opts.index, returned),
      pathname: url.pathname,
      bytes: size,
    };
  } finally {
    linked.dispose();
  }
}

function classify(err: unknown, pathname: string): unknown {
  const code = (err as { code?: string } | undefined)?.code;
  if (code !== undefined && CLOSED_CODES.has(code)) {
    return new ConsulRequestError(`GET ${pathname}: connection closed by the agent (${code}: ${(err as Error).message})`, undefined, 'ERR_CONSUL_OVER_BUDGET');
  }
  return err;
}

/** A blocking GET whose only answer is 200 with a JSON body. */
export async function blockingGet<T>(
  endpoint: ConsulEndpoint,
  path: string,
  params: Record<string, string | undefined>,
  opts: FetchCallOptions,
): Promise<BlockingResult<T> & { bytes: number; text: string }> {
  const answer = await blockingFetch(endpoint, path, params, opts);
  if (answer.status !== 200) {
    throw new ConsulRequestError(`GET ${answer.pathname} -> ${answer.status}: ${answer.text.slice(0, 200)}`, answer.status);
  }
  let body: T;
  try {
    body = JSON.parse(answer.text) as T;
  } catch (err) {
    throw new ConsulRequestError(`GET ${answer.pathname}: answer is not JSON (${(err as Error).message})`, answer.status, 'ERR_CONSUL_BAD_ANSWER');
  }
  // the text too: a caller can tell an answer identical to the last one without walking it
  return { body, index: answer.index, bytes: answer.bytes, text: answer.text };
}
