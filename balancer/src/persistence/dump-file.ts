// The dump file: the last good routing table, the admin-API upstreams and the catalog snapshot the
// table was built from, written atomically (temp file, fsync, rename, fsync of the directory) on
// every change, read at start so the balancer can serve while Consul is unreachable.
import { readFile } from 'node:fs/promises';
import type pino from 'pino';
import { writeFileAtomic } from '../render/atomic-write.js';
import type { PolicyDocument } from '../policy/policy-spec.js';
import { ALGORITHMS, type Algorithm, type CatalogSnapshot, type RouteTable, type UpstreamSpec } from '../routing/types.js';

export const DUMP_FORMAT = 1;

export interface DumpContents {
  readonly format: typeof DUMP_FORMAT;
  /** ISO time of the write */
  readonly savedAt: string;
  readonly table: RouteTable;
  readonly adminUpstreams: Readonly<Record<string, UpstreamSpec>>;
  /** the catalog snapshot behind the table, so admin changes during an outage rebuild correctly */
  readonly snapshot?: CatalogSnapshot;
  /** traffic policies set through the admin API (balancer/src/policy), by service */
  readonly adminPolicies?: Readonly<Record<string, PolicyDocument>>;
}

export class DumpFileError extends Error {
  readonly code = 'ERR_DUMP_FILE' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DumpFileError';
  }
}

// One atomic writer for the whole program (temp file, fsync, rename, fsync of the directory); the
// dump is only readable by its owner.
export { writeFileAtomic } from '../render/atomic-write.js';

export async function writeDump(file: string, contents: Omit<DumpContents, 'format' | 'savedAt'>, now: () => Date = () => new Date()): Promise<void> {
  const full: DumpContents = { format: DUMP_FORMAT, savedAt: now().toISOString(), ...contents };
  await writeFileAtomic(file, JSON.stringify(full, null, 1) + '\n', 0o600);
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
  for (const [where, ups] of [['table', table.upstreams], ['adminUpstreams', value.adminUpstreams]] as const) {
    for (const [name, u] of Object.entries(ups)) {
      const why = upstreamProblem(u);
      if (why) return `${where}: upstream ${name} ${why}`;
    }
  }
  for (const r of table.routes) {
    if (!isObject(r) || typeof r.host !== 'string' || typeof r.pathPrefix !== 'string' || typeof r.upstream !== 'string') {
      return `bad route ${JSON.stringify(r)}`;
    }
  }
  if (value.snapshot !== undefined && (!isObject(value.snapshot) || !isObject(value.snapshot.services))) return 'bad snapshot';
  return undefined;
}

/**
 * What the workers dereference on every request: a file from another version or edited by hand must
 * be refused here with a clear message, not crash the workers that are handed its table.
 */
function upstreamProblem(u: unknown): string | undefined {
  if (!isObject(u) || !Array.isArray(u.servers)) return 'has no server list';
  if (typeof u.name !== 'string' || !ALGORITHMS.includes(u.algorithm as Algorithm)) return 'has no name or an unknown algorithm';
  const retry = u.retry;
  if (!isObject(retry) || typeof retry.tries !== 'number' || !Array.isArray(retry.onStatuses)) return 'has no retry settings';
  for (const s of u.servers) {
    const ok = isObject(s) && typeof s.id === 'string' && typeof s.host === 'string' && s.host !== '' &&
      Number.isInteger(s.port) && (s.port as number) >= 1 && (s.port as number) <= 65535 &&
      typeof s.weight === 'number' && Number.isFinite(s.weight) && s.weight >= 1 &&
      typeof s.maxFails === 'number' && typeof s.failTimeoutMs === 'number';
    if (!ok) return `has a malformed server ${JSON.stringify(s)?.slice(0, 120)}`;
  }
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
