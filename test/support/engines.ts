// The proxy engines every proxy integration test runs against: one scenario table per behaviour,
// `for (const engine of ENGINES) describe(`... [${engine}]`, ...)`. A test passes the engine on with
// engineOptions() (in-process runtime), engineInit() (worker init message) or engineEnv() (a config
// parsed from argv + env, or a spawned balancer process).
import type { WorkerRuntimeOptions } from '../../balancer/src/worker/runtime.js';
import type { WorkerInitOptions } from '../../balancer/src/cluster/messages.js';
import type { Engine } from '../../balancer/src/config.js';

export type EngineName = Engine;

/** Engines that exist; TEST_ENGINES=undici (comma list) narrows it for a quick local run. */
const ALL_ENGINES: readonly EngineName[] = ['native', 'undici'];

function selected(): readonly EngineName[] {
  const only = process.env.TEST_ENGINES;
  if (only === undefined || only === '') return ALL_ENGINES;
  const names = only.split(',').map((s) => s.trim());
  for (const n of names) if (!(ALL_ENGINES as readonly string[]).includes(n)) throw new Error(`TEST_ENGINES: unknown engine "${n}" (known: ${ALL_ENGINES.join(', ')})`);
  return names as EngineName[];
}

export const ENGINES: readonly EngineName[] = selected();

/** WorkerRuntimeOptions field selecting the engine of an in-process runtime. */
export function engineOptions(engine: EngineName): Pick<WorkerRuntimeOptions, 'engine'> {
  return { engine };
}

/** WorkerInitOptions field selecting the engine of node:cluster workers. */
export function engineInit(engine: EngineName): Pick<WorkerInitOptions, 'engine'> {
  return { engine };
}

/** Environment selecting the engine of a balancer started from argv + env (BALANCER_ENGINE). */
export function engineEnv(engine: EngineName): Record<string, string> {
  return { BALANCER_ENGINE: engine };
}
