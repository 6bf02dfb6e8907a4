// Atomic file replacement: the reader (nginx, a reloading balancer, a human) sees the old file or the
// new one, never a mix. Temp file in the same directory (rename is atomic only within a filesystem),
// fsync the data, rename over the target, fsync the directory so the rename itself survives a crash.
import { createHash, randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export class AtomicWriteError extends Error {
  readonly code = 'ERR_ATOMIC_WRITE';
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
  }
}

export function contentHash(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Hash of the file's current content, or undefined when it does not exist or cannot be read. */
export async function fileHash(path: string): Promise<string | undefined> {
  try {
    return contentHash(await readFile(path));
  } catch {
    return undefined;
  }
}

export async function writeFileAtomic(path: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    await syncDir(dir);
  } catch (err) {
    if (!renamed) await unlink(tmp).catch(() => undefined);
    throw new AtomicWriteError(`writing ${path}: ${(err as Error).message}`, err);
  }
}

async function syncDir(dir: string): Promise<void> {
  // Not every platform/filesystem lets a directory be fsynced; the rename already happened.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* best effort */
  }
}

/**
 * Removes temp files a killed writer left beside `path` (".<name>.<pid>.<hex>.tmp" whose pid is no
 * longer running). Returns the names removed. Best effort: errors are ignored.
 */
export async function removeStaleTempFiles(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length));
    if (!m || isRunning(Number(m[1]))) continue;
    try {
      await unlink(join(dir, name));
      removed.push(name);
    } catch {
      /* raced with someone else */
    }
  }
  return removed;
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
