// The thread of closed-loop-load.ts: runs the loops until the stop flag is set, then posts the result.
import { parentPort, workerData } from 'node:worker_threads';
import { Agent, request } from 'undici';
import type { LoadOptions } from './closed-loop-load.js';

const { opts, counters } = workerData as { opts: LoadOptions; counters: Int32Array };
const dispatcher = new Agent({ connections: opts.clients * 2, keepAliveTimeout: 10_000 });
const failed: Array<{ method: string; what: string }> = [];
const byServer = new Map<string, number>();
const timeout = opts.requestTimeoutMs ?? 10_000;
const body = 'x'.repeat(opts.postBytes ?? 100);
const stopped = () => Atomics.load(counters, 1) === 1;

async function loop(i: number): Promise<void> {
  for (let n = 0; !stopped() && n < (opts.maxPerClient ?? 1_000_000); n++) {
    const method = (n + i) % 2 === 0 ? 'GET' : 'POST';
    try {
      const res = await request(opts.url, { method, dispatcher, headers: { host: opts.host }, body: method === 'POST' ? body : undefined, headersTimeout: timeout, bodyTimeout: timeout });
      const text = await res.body.text();
      if (res.statusCode === 200) {
        Atomics.add(counters, 0, 1);
        const server = text.split(' ')[0];
        byServer.set(server, (byServer.get(server) ?? 0) + 1);
      } else {
        failed.push({ method, what: `${res.statusCode} ${text.slice(0, 200)}` });
      }
    } catch (err) {
      failed.push({ method, what: `${(err as { code?: string }).code ?? ''} ${(err as Error).message}` });
    }
  }
}

await Promise.all(Array.from({ length: opts.clients }, (_, i) => loop(i)));
await dispatcher.close();
parentPort!.postMessage({ ok: Atomics.load(counters, 0), failed, byServer: [...byServer] });
