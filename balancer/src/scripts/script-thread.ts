// Where a worker process runs its request scripts: one thread (worker_threads) holding every
// script's vm context, called synchronously. Why a thread: the hard time budget. vm's `timeout`
// starts and joins a watchdog thread on every call (~40 µs of CPU alone, ~120 µs pinned on a busy
// core), and nothing cheaper can stop a loop running on this thread without risking the process (a
// stray TerminateExecution or SIGINT would hit whatever runs next). Here the script runs elsewhere:
// this side waits on a futex for at most the budget, counted from the moment the thread started the
// call (a thread waiting to be scheduled is not the script's fault), and when a call runs over it
// terminates that thread, which can only ever stop the script thread, and starts a fresh one on the
// next call (every loaded script compiled again). A round trip costs two futex wake-ups (~15 µs).
// The thread's heap is capped (resourceLimits), so a runaway allocation kills the thread, not the
// process.
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { CTL, SAB_BYTES, type ThreadReply, type ThreadRequest } from './script-thread-protocol.js';

/** longest wait for a new script thread to start, and for a call's start once sent */
const START_WAIT_MS = 5_000;
const SCHEDULE_WAIT_MS = 1_000;
const THREAD_HEAP_MB = 1024;

export type CallResult = { readonly ok: true; readonly out: string }
  | { readonly ok: false; readonly error: string; readonly code?: string; readonly overBudget?: boolean; readonly disabled?: boolean };

interface Running {
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly ctl: Int32Array;
  readonly started: Float64Array;
  /** not yet waited for, scripts not yet loaded into it */
  fresh: boolean;
}

interface LoadSpec {
  readonly name: string;
  readonly source: string;
  readonly loadTimeoutMs: number;
  readonly memoryBudget: number;
}

export class ScriptLoadError extends Error {
  constructor(message: string, readonly code?: string, readonly line?: number) {
    super(message);
    this.name = 'ScriptLoadError';
  }
}

export class ScriptThread {
  #running: Running | undefined;
  readonly #loaded = new Map<string, LoadSpec>();
  #closed = false;
  #restarts = 0;
  #started = 0;

  #keys = 0;

  /** a name for one loaded script's context, unique in this thread */
  newKey(prefix: string): string {
    return `${prefix}#${this.#keys++}`;
  }

  /** threads started after the first (a call over budget, a thread that died) */
  get restarts(): number {
    return this.#restarts;
  }

  /** Compile a script in the thread; its hook bits (1 onRequest, 2 onResponse). ScriptLoadError when it will not load. */
  load(key: string, spec: LoadSpec): number {
    const r = this.#send({ op: 'load', key, ...spec }, spec.loadTimeoutMs);
    if (!r.ok) throw new ScriptLoadError(r.error, 'code' in r ? (r as { code?: string }).code : undefined, (r as { line?: number }).line);
    this.#loaded.set(key, spec);
    return (r as { hooks?: number }).hooks ?? 0;
  }

  unload(key: string): void {
    if (!this.#loaded.delete(key) || this.#running === undefined) return;
    this.#send({ op: 'unload', key }, 1_000);
  }

  /** One hook call (0 onRequest, 1 onResponse) under `timeoutMs`. */
  call(key: string, hook: 0 | 1, input: string, timeoutMs: number): CallResult {
    const r = this.#send({ op: 'call', key, hook, input }, timeoutMs);
    if (r.ok) return { ok: true, out: (r as { out?: string }).out ?? '' };
    return r as CallResult;
  }

  close(): Promise<void> {
    this.#closed = true;
    const r = this.#running;
    this.#running = undefined;
    return r ? r.worker.terminate().then(() => undefined, () => undefined) : Promise.resolve();
  }

  #send(msg: ThreadRequest, budgetMs: number): ThreadReply | { ok: false; error: string; overBudget: true } {
    const t = this.#thread();
    Atomics.store(t.ctl, CTL.done, 0);
    t.started[0] = 0;
    t.port.postMessage(msg);
    Atomics.store(t.ctl, CTL.request, 1);
    Atomics.notify(t.ctl, CTL.request);
    if (!this.#waitDone(t, budgetMs)) {
      // over budget (or the thread died): stop it; the next call starts another
      this.#stop(t);
      return { ok: false, error: `over its ${budgetMs} ms budget`, overBudget: true };
    }
    const got = receiveMessageOnPort(t.port);
    if (got === undefined) {
      this.#stop(t);
      return { ok: false, error: 'the script thread gave no answer', overBudget: true };
    }
    return got.message as ThreadReply;
  }

  #waitDone(t: Running, budgetMs: number): boolean {
    if (Atomics.wait(t.ctl, CTL.done, 0, budgetMs) !== 'timed-out') return true;
    // the budget runs from when the thread began the call, not from when it was asked
    const deadline = Date.now() + SCHEDULE_WAIT_MS;
    while (t.started[0] === 0 && Atomics.load(t.ctl, CTL.done) === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      Atomics.wait(t.ctl, CTL.done, 0, Math.min(left, 5));
    }
    if (Atomics.load(t.ctl, CTL.done) !== 0) return true;
    const left = t.started[0] + budgetMs - (performance.timeOrigin + performance.now());
    return left > 0 && Atomics.wait(t.ctl, CTL.done, 0, left) !== 'timed-out';
  }

  #stop(t: Running): void {
    t.port.close();
    void t.worker.terminate().catch(() => undefined);
    if (this.#running !== t) return;
    // the replacement starts now, in the background: the next call finds it ready (or waits for it)
    this.#running = this.#closed ? undefined : this.#spawn();
  }

  #thread(): Running {
    if (this.#closed) throw new Error('script thread closed');
    const t = this.#running ?? (this.#running = this.#spawn());
    if (t.fresh) {
      t.fresh = false;
      if (Atomics.wait(t.ctl, CTL.ready, 0, START_WAIT_MS) === 'timed-out') {
        this.#stop(t);
        throw new Error(`the script thread did not start within ${START_WAIT_MS} ms`);
      }
      if (this.#started++ > 0) this.#restarts++;
      // a fresh thread after a stop: every script loaded before is compiled again
      for (const [key, spec] of [...this.#loaded]) {
        const r = this.#send({ op: 'load', key, ...spec }, spec.loadTimeoutMs);
        if (!r.ok) this.#loaded.delete(key);
      }
    }
    return t;
  }

  #spawn(): Running {
    const sab = new SharedArrayBuffer(SAB_BYTES);
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL('./script-thread-main.js', import.meta.url), {
      workerData: { sab, port: port2 },
      transferList: [port2],
      resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB },
    });
    const running: Running = { worker, port: port1, ctl: new Int32Array(sab, 0, 8), started: new Float64Array(sab, 32, 1), fresh: true };
    // a thread that dies (heap limit, terminate) is only replaced; never an error of the process
    const gone = () => { if (this.#running === running) this.#running = undefined; };
    worker.on('error', gone);
    worker.on('exit', gone);
    worker.unref();
    port1.unref();
    return running;
  }
}
