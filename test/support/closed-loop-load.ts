// Closed-loop HTTP load on its own thread: the requests of a test's load do not queue behind the test's
// own event loop (the Consul double, the TCP gate, log parsing), and the test's timing measurements do
// not queue behind the load. `clients` loops alternate GET and POST until stopped; the count of answered
// requests is readable at any time (shared memory), the failures and the split by server at the end.
import { Worker } from 'node:worker_threads';

export interface LoadResult {
  ok: number;
  failed: Array<{ method: string; what: string }>;
  byServer: Map<string, number>;
}

export interface LoadOptions {
  readonly url: string;
  readonly host: string;
  readonly clients: number;
  /** POST body size (bytes) */
  readonly postBytes?: number;
  /** per-request bound (headers and body), ms */
  readonly requestTimeoutMs?: number;
  /** at most this many requests per client (a bound on the loop) */
  readonly maxPerClient?: number;
}

export interface RunningLoad {
  /** requests answered 200 so far */
  ok(): number;
  stop(): Promise<LoadResult>;
}

export function startLoadThread(opts: LoadOptions): RunningLoad {
  const counters = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(new URL('./closed-loop-load-worker.js', import.meta.url), { workerData: { opts, counters } });
  const done = new Promise<{ ok: number; failed: LoadResult['failed']; byServer: Array<[string, number]> }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`load thread exited with ${code} before its result`)));
  });
  return {
    ok: () => Atomics.load(counters, 0),
    async stop() {
      Atomics.store(counters, 1, 1);
      const r = await done;
      await worker.terminate();
      return { ok: r.ok, failed: r.failed, byServer: new Map(r.byServer) };
    },
  };
}
