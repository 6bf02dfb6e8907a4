// Counts the worker processes of a target every intervalMs: node/nginx processes in the process trees
// of its roots, minus the roots themselves (the balancer primary, the nginx master).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { processTree } from '../support/proc-stats.js';

const COUNTED = new Set(['node', 'nginx']);

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function countWorkers(roots: readonly number[]): number {
  let n = 0;
  for (const root of roots) {
    for (const pid of processTree(root)) {
      if (pid === root) continue;
      const name = comm(pid);
      if (name !== undefined && COUNTED.has(name)) n++;
    }
  }
  return n;
}

export interface ProcSample {
  /** seconds since the sampler started */
  readonly t: number;
  readonly workers: number;
}

export class ProcSampler {
  private readonly samples: ProcSample[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = performance.now();

  constructor(private readonly roots: () => readonly number[], intervalMs = 100, maxSamples = 20_000) {
    this.timer = setInterval(() => {
      if (this.samples.length >= maxSamples) return;
      this.samples.push({ t: (performance.now() - this.t0) / 1000, workers: countWorkers(this.roots()) });
    }, intervalMs);
  }

  stop(): ProcSample[] {
    clearInterval(this.timer);
    return this.samples;
  }
}
