// Placeholder until the engine lands: the factory exists so callers compile against the contract.
import type { WorkerRuntime, WorkerRuntimeOptions } from '../worker/runtime.js';

export function createWorkerRuntime(_opts: WorkerRuntimeOptions): WorkerRuntime {
  throw Object.assign(new Error('worker runtime not implemented yet'), { code: 'ERR_NOT_IMPLEMENTED' });
}
