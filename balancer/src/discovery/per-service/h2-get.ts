// One Consul GET as a stream of an HTTP/2 session (node:http2): the same answer shape, index rule,
// size cap and errors as blocking-query.ts blockingFetch, so the code above it cannot tell the two
// transports apart. Every call has a deadline and an abort signal; an abort or a deadline cancels the
// stream (RST_STREAM CANCEL), never the session: the other streams on it go on.
import http2 from 'node:http2';
import { linkedSignal } from '../../../../common/backoff.js';
import { ConsulRequestError, DEFAULT_MAX_BODY_BYTES, blockingBounds, nextIndex, type BlockingAnswer } from '../blocking-query.js';

export interface H2GetOptions {
  /** 0 = a plain read; else a blocking query from this index */
  readonly index: number;
  readonly waitMs: number;
  readonly signal: AbortSignal;
  /** deadline of a plain read */
  readonly timeoutMs: number;
  readonly token?: string;
  readonly stale?: boolean;
  readonly maxBodyBytes?: number;
}

/** The path with Consul's query parameters (index and wait only on a blocking query). */
export function consulPath(path: string, params: Record<string, string | undefined>, opts: { index: number; waitMs: number; stale?: boolean }): string {
  const url = new URL(path, 'https://consul');
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  if (opts.stale) url.searchParams.set('stale', '');
  if (opts.index > 0) {
    url.searchParams.set('index', String(opts.index));
    url.searchParams.set('wait', blockingBounds(opts.waitMs).wait);
  }
  return url.pathname + url.search;
}

/** GET `path` on `session`; resolves with the status, the body text and the next index. */
export function h2Get(session: http2.ClientHttp2Session, path: string, params: Record<string, string | undefined>, opts: H2GetOptions): Promise<BlockingAnswer> {
  const fullPath = consulPath(path, params, opts);
  const pathname = fullPath.split('?')[0];
  const deadlineMs = opts.index > 0 ? blockingBounds(opts.waitMs).deadlineMs : opts.timeoutMs;
  const linked = linkedSignal(opts.signal, deadlineMs);
  const max = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return new Promise<BlockingAnswer>((resolve, reject) => {
    let settled = false;
    let stream: http2.ClientHttp2Stream | undefined;
    const finish = (err: unknown, answer?: BlockingAnswer) => {
      if (settled) return;
      settled = true;
      linked.signal.removeEventListener('abort', onAbort);
      linked.dispose();
      if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      if (err) reject(err);
      else resolve(answer!);
    };
    const onAbort = () => finish(linked.signal.reason ?? new Error('aborted'));
    if (linked.signal.aborted) return onAbort();
    linked.signal.addEventListener('abort', onAbort, { once: true });
    const headers: http2.OutgoingHttpHeaders = { ':method': 'GET', ':path': fullPath };
    if (opts.token) headers['x-consul-token'] = opts.token;
    try {
      stream = session.request(headers, { endStream: true });
    } catch (err) {
      // a session closed or out of stream IDs: the caller opens another
      return finish(new ConsulRequestError(`GET ${pathname}: HTTP/2 session unusable (${(err as Error).message})`, undefined, 'ERR_CONSUL_OVER_BUDGET'));
    }
    let status = 0;
    let index = 0;
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('response', (h) => {
      status = Number(h[':status']);
      const raw = h['x-consul-index'];
      index = nextIndex(opts.index, Number(Array.isArray(raw) ? raw[0] : raw));
      const declared = Number(h['content-length']);
      if (status === 429) finish(new ConsulRequestError(`GET ${pathname} -> 429 Too Many Requests (agent's http_max_conns_per_client reached)`, 429, 'ERR_CONSUL_OVER_BUDGET'));
      else if (Number.isFinite(declared) && declared > max) finish(new ConsulRequestError(`GET ${pathname}: answer of ${declared} bytes exceeds the ${max}-byte cap`, status, 'ERR_CONSUL_BODY_TOO_LARGE'));
    });
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) finish(new ConsulRequestError(`GET ${pathname}: answer exceeds the ${max}-byte cap`, status, 'ERR_CONSUL_BODY_TOO_LARGE'));
      else chunks.push(chunk);
    });
    stream.on('end', () => finish(undefined, { status, text: Buffer.concat(chunks, size).toString('utf8'), index, pathname, bytes: size }));
    stream.on('error', (err: Error & { code?: string }) => {
      // REFUSED_STREAM (over the peer's stream limit) or the session going away: retried elsewhere
      finish(new ConsulRequestError(`GET ${pathname}: HTTP/2 stream failed (${err.code ?? ''}: ${err.message})`, undefined, 'ERR_CONSUL_OVER_BUDGET'));
    });
    stream.on('close', () => {
      if (!settled) finish(new ConsulRequestError(`GET ${pathname}: HTTP/2 stream closed before its answer (code ${stream?.rstCode ?? '?'})`, undefined, 'ERR_CONSUL_OVER_BUDGET'));
    });
  });
}

/** h2Get, then a 200 with a JSON body or a ConsulRequestError (blocking-query.ts blockingGet's rule). */
export async function h2GetJson<T>(session: http2.ClientHttp2Session, path: string, params: Record<string, string | undefined>, opts: H2GetOptions): Promise<BlockingAnswer & { body: T }> {
  const answer = await h2Get(session, path, params, opts);
  if (answer.status !== 200) throw new ConsulRequestError(`GET ${answer.pathname} -> ${answer.status}: ${answer.text.slice(0, 200)}`, answer.status);
  try {
    return { ...answer, body: JSON.parse(answer.text) as T };
  } catch (err) {
    throw new ConsulRequestError(`GET ${answer.pathname}: answer is not JSON (${(err as Error).message})`, answer.status, 'ERR_CONSUL_BAD_ANSWER');
  }
}
