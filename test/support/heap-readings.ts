// Heap-used after GC of a process tree started with heapProbeEnv(): every node process in it is sent
// SIGUSR2, collects garbage and writes its figures (heap-probe.ts); this waits for all of them.
import { mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { processTree } from '../../bench/support/proc-stats.js';
import type { HeapProbeReading } from './heap-probe.js';

export interface HeapProbeDir {
  readonly dir: string;
  /** environment for the program under test (keeps any NODE_OPTIONS already set) */
  readonly env: NodeJS.ProcessEnv;
  remove(): void;
}

export function heapProbeDir(): HeapProbeDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'heap-probe-'));
  const preload = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'heap-probe.js')).href;
  const nodeOptions = [process.env.NODE_OPTIONS, `--import=${preload}`].filter(Boolean).join(' ');
  return { dir, env: { HEAP_PROBE_DIR: dir, NODE_OPTIONS: nodeOptions }, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface HeapFigures {
  /** by pid */
  readonly processes: ReadonlyMap<number, { readonly heapUsedMb: number; readonly newSpaceMb: number }>;
  readonly heapUsedMb: number;
  /** committed young generation, summed: V8 grows it under allocation pressure up to 2 x --max-semi-space-size */
  readonly newSpaceMb: number;
}

const mb = (bytes: number) => Math.round((bytes / (1024 * 1024)) * 10) / 10;

function nodeProcesses(rootPid: number): number[] {
  return processTree(rootPid).filter((pid) => {
    try {
      return path.basename(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0]).startsWith('node');
    } catch {
      return false;
    }
  });
}

/** Heap-used after a full GC in every node process of the tree (one reading each, at most timeoutMs). */
export async function heapAfterGc(rootPid: number, probe: HeapProbeDir, timeoutMs = 20_000): Promise<HeapFigures> {
  const pids = nodeProcesses(rootPid);
  for (const pid of pids) {
    try {
      unlinkSync(path.join(probe.dir, `${pid}.json`));
    } catch {
      /* no earlier reading */
    }
    process.kill(pid, 'SIGUSR2');
  }
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const have = new Set(readdirSync(probe.dir));
    const missing = pids.filter((pid) => !have.has(`${pid}.json`));
    if (missing.length === 0) break;
    if (performance.now() > deadline) throw new Error(`no heap reading within ${timeoutMs} ms from ${missing.join(', ')} (started without heapProbeDir().env?)`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const processes = new Map<number, { heapUsedMb: number; newSpaceMb: number }>();
  let heap = 0;
  let young = 0;
  for (const pid of pids) {
    const r = JSON.parse(readFileSync(path.join(probe.dir, `${pid}.json`), 'utf8')) as HeapProbeReading;
    const newSpace = r.spaces.new_space?.sizeBytes ?? 0;
    processes.set(pid, { heapUsedMb: mb(r.heapUsedBytes), newSpaceMb: mb(newSpace) });
    heap += r.heapUsedBytes;
    young += newSpace;
  }
  return { processes, heapUsedMb: mb(heap), newSpaceMb: mb(young) };
}
