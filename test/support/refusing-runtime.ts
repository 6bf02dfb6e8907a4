// A worker runtime module for tests (WorkerInitOptions.runtimeModule): the real runtime, except that
// the first table holding an upstream named `refuse-once-*` throws in applyTable, as a bug in a
// table compile would; later tables apply. It lets a test make a worker miss one table change through
// the production worker-main, without a test-only path in it.
import { createWorkerRuntime as real } from '../../balancer/src/proxy/proxy-runtime.js';

export const REFUSED_PREFIX = 'refuse-once-';

export const createWorkerRuntime: typeof real = (opts) => {
  const runtime = real(opts);
  let refused = false;
  const applyTable: typeof runtime.applyTable = (table, ...rest) => {
    if (!refused && Object.keys(table.upstreams).some((n) => n.startsWith(REFUSED_PREFIX))) {
      refused = true;
      throw new Error(`injected: table ${table.version} refused once`);
    }
    return runtime.applyTable(table, ...rest);
  };
  // everything else is the real runtime's, called on it
  return new Proxy(runtime, {
    get(target, prop) {
      if (prop === 'applyTable') return applyTable;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
};
