// One Consul blocking query (GET with index/wait), the primitive every watcher builds on.
// Consul's rules (docs: "Blocking Queries"): pass the last X-Consul-Index as `index`; if the returned
// index goes backwards or is <= 0, start over from 0; a return is no proof of change.
import { request, type Dispatcher } from 'undici';

export interface ConsulEndpoint {
  /** base URL, e.g. http://127.0.0.1:8500 */
  readonly baseUrl: string;
  readonly token?: string;
  readonly dispatcher?: Dispatcher;
}

export interface BlockingResult<T> {
  readonly body: T;
  /** index to pass on the next call (already reset to 0 when Consul's went backwards or was invalid) */
  readonly index: number;
}

export class ConsulRequestError extends Error {
  readonly code = 'ERR_CONSUL_REQUEST';
  constructor(message: string, readonly status?: number) {
    super(message);
  }
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
}

/** The raw blocking GET: status, body text and next index; the caller decides which statuses are answers. */
export async function blockingFetch(
  endpoint: ConsulEndpoint,
  path: string,
  params: Record<string, string | undefined>,
  opts: { index: number; waitMs: number; signal: AbortSignal },
): Promise<BlockingAnswer> {
  const url = new URL(path, endpoint.baseUrl);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  const bounds = blockingBounds(opts.waitMs);
  if (opts.index > 0) {
    url.searchParams.set('index', String(opts.index));
    url.searchParams.set('wait', bounds.wait);
  }
  const deadline = AbortSignal.timeout(bounds.deadlineMs);
  const signal = AbortSignal.any([opts.signal, deadline]);
  const headers: Record<string, string> = {};
  if (endpoint.token) headers['x-consul-token'] = endpoint.token;
  const res = await request(url, { method: 'GET', headers, signal, dispatcher: endpoint.dispatcher });
  const text = await res.body.text();
  const raw = res.headers['x-consul-index'];
  const returned = Number(Array.isArray(raw) ? raw[0] : raw);
  return { status: res.statusCode, text, index: nextIndex(opts.index, returned), pathname: url.pathname };
}

/** A blocking GET whose only answer is 200 with a JSON body. */
export async function blockingGet<T>(
  endpoint: ConsulEndpoint,
  path: string,
  params: Record<string, string | undefined>,
  opts: { index: number; waitMs: number; signal: AbortSignal },
): Promise<BlockingResult<T>> {
  const answer = await blockingFetch(endpoint, path, params, opts);
  if (answer.status !== 200) {
    throw new ConsulRequestError(`GET ${answer.pathname} -> ${answer.status}: ${answer.text.slice(0, 200)}`, answer.status);
  }
  return { body: JSON.parse(answer.text) as T, index: answer.index };
}
