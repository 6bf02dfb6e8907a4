// A worker runtime module for tests (WorkerInitOptions.runtimeModule): the real runtime, plus one
// promise rejection nobody handles shortly after it is created, as a buggy code path would leave.
import { createWorkerRuntime as real } from '../../balancer/src/proxy/proxy-runtime.js';

export const createWorkerRuntime: typeof real = (opts) => {
  const runtime = real(opts);
  setTimeout(() => void Promise.reject(new Error('injected: a probe rejected and nobody caught it')), 100);
  return runtime;
};
