// Preloaded into a program under test (NODE_OPTIONS=--import=<this file's URL>; cluster workers
// inherit it): on SIGUSR2 the process collects garbage (full GC, twice) and writes its heap figures
// to <HEAP_PROBE_DIR>/<pid>.json, so a test reads heap-used after GC in the primary and in every
// worker with no code for it in the program. HEAP_PROBE_SNAPSHOT=1 also writes a heap snapshot
// <pid>-<n>.heapsnapshot (object counts, when looking for a leak). Test support only. Readers:
// heap-readings.ts.
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface HeapProbeReading {
  readonly pid: number;
  /** readings written by this process so far */
  readonly seq: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
  readonly rssBytes: number;
  /** per V8 space: committed size and used bytes (new_space growing is the scavenger sizing itself) */
  readonly spaces: Readonly<Record<string, { sizeBytes: number; usedBytes: number }>>;
  readonly snapshot?: string;
}

/**
 * Allocates short-lived garbage through twice the young generation's committed size, so every one
 * of its pages is resident when RSS is read: otherwise RSS drifts up with the allocation rate (a
 * busier process touches more of the young generation it already had), which is not growth.
 */
function touchYoungGeneration(): void {
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
  let sink = 0;
  for (let allocated = 0; allocated < 2 * young; allocated += 64 * 1024) {
    const junk = new Array<number>(8 * 1024).fill(allocated); // 64 KiB: a regular new-space object
    sink += junk.length;
  }
  if (sink < 0) throw new Error('unreachable');
}

const dir = process.env.HEAP_PROBE_DIR;
if (dir) {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let seq = 0;
  process.on('SIGUSR2', () => {
    seq++;
    touchYoungGeneration();
    gc();
    gc();
    const snapshot = process.env.HEAP_PROBE_SNAPSHOT === '1' ? writeHeapSnapshot(path.join(dir, `${process.pid}-${seq}.heapsnapshot`)) : undefined;
    const mem = process.memoryUsage();
    const reading: HeapProbeReading = {
      pid: process.pid, seq, heapUsedBytes: getHeapStatistics().used_heap_size, heapTotalBytes: mem.heapTotal,
      externalBytes: mem.external, arrayBuffersBytes: mem.arrayBuffers, rssBytes: mem.rss,
      spaces: Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { sizeBytes: s.space_size, usedBytes: s.space_used_size }])),
      snapshot,
    };
    const file = path.join(dir, `${process.pid}.json`);
    // written aside then renamed: a reader never sees half a file
    writeFileSync(`${file}.part`, JSON.stringify(reading));
    renameSync(`${file}.part`, file);
  });
}
