// A worker runtime module for tests (WorkerInitOptions.runtimeModule): the real runtime, plus one
// promise rejection nobody handles shortly after it listens, as a buggy code path would leave.
// After it listens, not after it is created: a fixed delay from creation raced the worker's start
// on a busy machine (it died before it was ready, and the supervisor's start failed).
import { createWorkerRuntime as real } from '../../balancer/src/proxy/proxy-runtime.js';

export const createWorkerRuntime: typeof real = (opts) => {
  const runtime = real(opts);
  const listen: typeof runtime.listen = async (...args) => {
    const address = await runtime.listen(...args);
    // the worker reports ready right after listen resolves; the rejection comes once it is serving
    setTimeout(() => void Promise.reject(new Error('injected: a probe rejected and nobody caught it')), 100);
    return address;
  };
  // everything else is the real runtime's, called on it
  return new Proxy(runtime, {
    get(target, prop) {
      if (prop === 'listen') return listen;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
};
