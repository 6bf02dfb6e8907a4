// The dump file: the last good routing table, the admin-API upstreams and the catalog snapshot the
// table was built from, written atomically (temp file, fsync, rename, fsync of the directory) on
// every change, read at start so the balancer can serve while Consul is unreachable.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type pino from 'pino';
import type { CatalogSnapshot, RouteTable, UpstreamSpec } from '../routing/types.js';

export const DUMP_FORMAT = 1;

export interface DumpContents {
  readonly format: typeof DUMP_FORMAT;
  /** ISO time of the write */
  readonly savedAt: string;
  readonly table: RouteTable;
  readonly adminUpstreams: Readonly<Record<string, UpstreamSpec>>;
  /** the catalog snapshot behind the table, so admin changes during an outage rebuild correctly */
  readonly snapshot?: CatalogSnapshot;
}

export class DumpFileError extends Error {
  readonly code = 'ERR_DUMP_FILE' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DumpFileError';
  }
}

/** Writes the file so that a reader sees either the old or the new content, never a mix. */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // the rename itself is durable only once the directory entry is flushed
  const dh = await open(dir, 'r').catch(() => undefined);
  if (dh) {
    await dh.sync().catch(() => undefined);
    await dh.close();
  }
}

export async function writeDump(file: string, contents: Omit<DumpContents, 'format' | 'savedAt'>, now: () => Date = () => new Date()): Promise<void> {
  const full: DumpContents = { format: DUMP_FORMAT, savedAt: now().toISOString(), ...contents };
  await writeFileAtomic(file, JSON.stringify(full, null, 1) + '\n');
}

/** undefined when the file does not exist; DumpFileError when it exists but cannot be used. */
export async function loadDump(file: string): Promise<DumpContents | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DumpFileError(`cannot read dump file ${file}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new DumpFileError(`dump file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const why = validateDump(parsed);
  if (why) throw new DumpFileError(`dump file ${file} is unusable: ${why}`);
  return parsed as DumpContents;
}

/** Shape check (not a full schema): enough to refuse a file that is not ours or is truncated. */
export function validateDump(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  if (value.format !== DUMP_FORMAT) return `unknown format ${JSON.stringify(value.format)}`;
  const table = value.table;
  if (!isObject(table) || !isObject(table.upstreams) || !Array.isArray(table.routes)) return 'no table with upstreams and routes';
  if (!isObject(value.adminUpstreams)) return 'no adminUpstreams object';
  for (const [name, u] of Object.entries({ ...table.upstreams, ...value.adminUpstreams })) {
    if (!isObject(u) || !Array.isArray(u.servers)) return `upstream ${name} has no server list`;
  }
  if (value.snapshot !== undefined && (!isObject(value.snapshot) || !isObject(value.snapshot.services))) return 'bad snapshot';
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Serialises writes: at most one in flight, and of the changes that arrive meanwhile only the latest
 * is written next. Errors are logged, the previous file stays.
 */
export class DumpWriter {
  private pending: Omit<DumpContents, 'format' | 'savedAt'> | undefined;
  private running: Promise<void> | undefined;
  private writes = 0;
  private failures = 0;

  constructor(private readonly file: string, private readonly logger: pino.Logger) {}

  save(contents: Omit<DumpContents, 'format' | 'savedAt'>): void {
    this.pending = contents;
    if (!this.running) this.running = this.drain().finally(() => (this.running = undefined));
  }

  /** resolves when everything handed to save() so far is on disk (or failed) */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  stats(): { writes: number; failures: number } {
    return { writes: this.writes, failures: this.failures };
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const next = this.pending;
      this.pending = undefined;
      try {
        await writeDump(this.file, next);
        this.writes++;
        this.logger.debug({ file: this.file, version: next.table.version }, 'dump file written');
      } catch (err) {
        this.failures++;
        this.logger.error({ err, file: this.file }, 'dump file write failed, previous file kept');
      }
    }
  }
}
