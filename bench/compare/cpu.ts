// CPU seconds used by a target: utime+stime of every live process in its trees plus cutime+cstime
// (children that already exited and were reaped: drained worker generations, old nginx workers, the
// renderer's `nginx -s reload` commands), read from /proc. Take a delta around a run.
import { readFileSync } from 'node:fs';
import { processTree } from '../support/proc-stats.js';

const CLOCK_TICKS = 100; // USER_HZ on Linux

function ticksOf(pid: number): number {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name: state is field 3; utime..cstime are fields 14..17
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

export function cpuSeconds(roots: readonly number[]): number {
  let ticks = 0;
  for (const root of roots) for (const pid of processTree(root)) ticks += ticksOf(pid);
  return ticks / CLOCK_TICKS;
}

/** 1-minute load average of the machine (noise indicator: the box is shared) */
export function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}
