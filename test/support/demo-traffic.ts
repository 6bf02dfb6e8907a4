// Client side of the compose end-to-end test: single requests with a Host header (fetch cannot set it),
// and a bounded request loop that records who answered, when, and what failed.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Reply {
  /** performance.now() when the request was sent */
  readonly startedAt: number;
  readonly ms: number;
  readonly status?: number;
  /** x-served-by of the web instance; undefined for failures */
  readonly servedBy?: string;
  readonly error?: string;
}

export interface Target {
  readonly host: string;
  readonly port: number;
  /** Host header: the Consul service name */
  readonly service: string;
}

/**
 * One GET on a fresh connection. A new connection per request keeps the test about the balancer's
 * routing: a reused client connection that the server closes at the same moment fails in any HTTP/1.1
 * client that does not retry, whatever the server.
 */
export function getOnce(target: Target, timeoutMs: number, signal?: AbortSignal): Promise<Reply> {
  const startedAt = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Omit<Reply, 'startedAt' | 'ms'>) => {
      if (settled) return;
      settled = true;
      resolve({ startedAt, ms: Math.round(performance.now() - startedAt), ...r });
    };
    const req = http.request({
      host: target.host, port: target.port, path: '/', method: 'GET', agent: false,
      headers: { host: target.service, connection: 'close' },
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    }, (res) => {
      const servedBy = res.headers['x-served-by'];
      res.resume();
      res.on('end', () => done({
        status: res.statusCode,
        servedBy: typeof servedBy === 'string' && res.statusCode === 200 ? servedBy : undefined,
        error: res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`,
      }));
      res.on('error', (e) => done({ status: res.statusCode, error: e.message }));
    });
    req.on('error', (e) => done({ error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim() }));
    req.end();
  });
}

/** Poll until `accept` says yes, at most timeoutMs; returns every reply seen. */
export async function pollUntil(
  target: Target,
  accept: (seen: readonly Reply[]) => boolean,
  opts: { readonly timeoutMs: number; readonly intervalMs: number; readonly signal: AbortSignal },
): Promise<{ ok: boolean; seen: Reply[] }> {
  const seen: Reply[] = [];
  const deadline = performance.now() + opts.timeoutMs;
  while (performance.now() < deadline && !opts.signal.aborted) {
    seen.push(await getOnce(target, 5_000, opts.signal));
    if (accept(seen)) return { ok: true, seen };
    await sleep(opts.intervalMs, undefined, { signal: opts.signal }).catch(() => undefined);
  }
  return { ok: accept(seen), seen };
}

export interface LoadLoop {
  /** stop sending and wait for the requests in flight */
  stop(): Promise<Reply[]>;
}

/** `concurrency` sequential request chains until stopped or maxMs passed, at most maxRequests in all. */
export function startLoad(
  target: Target,
  opts: { readonly concurrency: number; readonly maxMs: number; readonly maxRequests: number; readonly pauseMs: number },
): LoadLoop {
  const replies: Reply[] = [];
  const stopper = new AbortController();
  const deadline = performance.now() + opts.maxMs;
  let sent = 0;
  const chain = async () => {
    while (!stopper.signal.aborted && performance.now() < deadline && sent < opts.maxRequests) {
      sent += 1;
      // No signal here: a request in flight when the loop stops still completes and is counted.
      replies.push(await getOnce(target, 10_000));
      if (opts.pauseMs > 0) await sleep(opts.pauseMs);
    }
  };
  const chains = Array.from({ length: opts.concurrency }, () => chain());
  return {
    async stop() {
      stopper.abort();
      await Promise.all(chains);
      return replies.sort((a, b) => a.startedAt - b.startedAt);
    },
  };
}
