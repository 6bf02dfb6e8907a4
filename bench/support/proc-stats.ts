// CPU time and RSS of a process tree, read from /proc (Linux), for per-request CPU figures.
import { readFileSync, readdirSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ on Linux

function readStat(pid: number): { ppid: number; cpuTicks: number; rssPages: number } | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces: fields start after the last ')'
    const fields = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]), rssPages: Number(fields[21]) };
  } catch {
    return undefined;
  }
}

/** pid and all its descendants */
export function processTree(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const st = readStat(pid);
    if (!st) continue;
    const list = parents.get(st.ppid) ?? [];
    list.push(pid);
    parents.set(st.ppid, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    for (const child of parents.get(pid) ?? []) stack.push(child);
  }
  return out;
}

export interface TreeUsage {
  cpuMs: number;
  rssMb: number;
}

export function treeUsage(root: number): TreeUsage {
  let ticks = 0;
  let pages = 0;
  for (const pid of processTree(root)) {
    const st = readStat(pid);
    if (!st) continue;
    ticks += st.cpuTicks;
    pages += st.rssPages;
  }
  return { cpuMs: (ticks * 1000) / CLOCK_TICKS, rssMb: (pages * 4096) / (1024 * 1024) };
}
