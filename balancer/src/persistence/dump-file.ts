// The dump file: the last good routing table, the admin-API upstreams and the catalog snapshot the
// table was built from, written atomically (temp file, fsync, rename, fsync of the directory), at
// most once a second (debounced: the latest state wins) and at shutdown, read at start so the balancer
// can serve while Consul is unreachable. A file that cannot be used (corrupt, newer format, a field
// that fails validation) is kept aside as <file>.corrupt-<time> rather than overwritten, so admin
// upstreams in it are not lost; the balancer then starts from Consul.
import { readFile, rename } from 'node:fs/promises';
import { checkHostPort } from '../../../common/host-port.js';
import type pino from 'pino';
import { writeFileAtomic } from '../render/atomic-write.js';
import type { PolicyDocument } from '../policy/policy-spec.js';
import { ALGORITHMS, type Algorithm, type CatalogSnapshot, type RouteTable, type UpstreamSpec } from '../routing/types.js';
import { grpcServiceNameProblem } from '../health/grpc-health.js';

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
  /** true when the file exists and was read but its content is unusable (corrupt, newer, invalid) */
  readonly unusable: boolean;
  constructor(message: string, options?: { cause?: unknown; unusable?: boolean }) {
    super(message, options);
    this.name = 'DumpFileError';
    this.unusable = options?.unusable ?? false;
  }
}

/** Moves an unusable dump aside (never deleted: it may hold admin upstreams); returns the new name. */
export async function quarantineDump(file: string, now: () => Date = () => new Date()): Promise<string> {
  const aside = `${file}.corrupt-${now().toISOString().replace(/[:.]/g, '-')}`;
  await rename(file, aside);
  return aside;
}

// One atomic writer for the whole program (temp file, fsync, rename, fsync of the directory); the
// dump is only readable by its owner.
export { writeFileAtomic } from '../render/atomic-write.js';

export async function writeDump(file: string, contents: Omit<DumpContents, 'format' | 'savedAt'>, now: () => Date = () => new Date(), serializer = defaultSerializer): Promise<void> {
  await writeFileAtomic(file, serializer.serialize(contents, now), 0o600);
}

/**
 * The dump file's bytes: exactly JSON.stringify(contents, null, 1) plus a final newline, assembled from
 * one cached, encoded piece per upstream and per service instance list. Tables and snapshots share
 * their unchanged (frozen) parts by reference from one change to the next, so a write after a change
 * to one service serializes that service and copies the other pieces: it costs the catalog's bytes
 * (one copy), not its serialization.
 */
export class DumpSerializer {
  /** pieces made since start (upstreams and instance lists serialized, not taken from the cache) */
  piecesMade = 0;
  readonly #pieces = new WeakMap<object, { readonly key: string; readonly bytes: Buffer }>();

  serialize(contents: Omit<DumpContents, 'format' | 'savedAt'>, now: () => Date = () => new Date()): Buffer {
    const full: Record<string, unknown> = { format: DUMP_FORMAT, savedAt: now().toISOString(), ...contents };
    const chunks: Buffer[] = [];
    this.#object(chunks, full, 0, (key, value) => {
      if (key === 'table' && isObject(value)) return (out) => this.#object(out, value, 1, (k, v) => (k === 'upstreams' && isObject(v) ? (o) => this.#pieces3(o, v) : undefined));
      if (key === 'snapshot' && isObject(value)) return (out) => this.#object(out, value, 1, (k, v) => (k === 'services' && isObject(v) ? (o) => this.#pieces3(o, v) : undefined));
      return undefined;
    });
    chunks.push(NEWLINE);
    return Buffer.concat(chunks);
  }

  /**
   * An object's bytes at `depth` as JSON.stringify(…, null, 1) writes them; `special` may write a
   * value itself. Chunks are collected and copied once at the end (string joins copy every level again).
   */
  #object(out: Buffer[], obj: Record<string, unknown>, depth: number, special: (key: string, value: unknown) => ((out: Buffer[]) => void) | undefined): void {
    const inner = ' '.repeat(depth + 1);
    let first = true;
    for (const key of Object.keys(obj)) {
      const value = obj[key];
      const writer = special(key, value);
      const text = writer ? undefined : textAt(value, depth + 1);
      if (!writer && text === undefined) continue;
      out.push(first ? OPEN : COMMA);
      first = false;
      if (writer) {
        out.push(Buffer.from(`${inner}${JSON.stringify(key)}: `));
        writer(out);
      } else {
        out.push(Buffer.from(`${inner}${JSON.stringify(key)}: ${text}`));
      }
    }
    out.push(first ? EMPTY : Buffer.from(`\n${' '.repeat(depth)}}`));
  }

  /** The entries of `upstreams` or `services` (depth 2), each from the cache when its value is the same frozen object. */
  #pieces3(out: Buffer[], obj: Record<string, unknown>): void {
    let first = true;
    for (const key of Object.keys(obj)) {
      const value = obj[key];
      const cacheable = value !== null && typeof value === 'object' && Object.isFrozen(value);
      let bytes: Buffer | undefined;
      const hit = cacheable ? this.#pieces.get(value) : undefined;
      if (hit !== undefined && hit.key === key) bytes = hit.bytes;
      else {
        const text = textAt(value, 3);
        if (text === undefined) continue;
        bytes = Buffer.from(`   ${JSON.stringify(key)}: ${text}`);
        this.piecesMade++;
        if (cacheable) this.#pieces.set(value, { key, bytes });
      }
      out.push(first ? OPEN : COMMA, bytes);
      first = false;
    }
    out.push(first ? EMPTY : CLOSE2);
  }
}

const OPEN = Buffer.from('{\n');
const COMMA = Buffer.from(',\n');
const EMPTY = Buffer.from('{}');
const CLOSE2 = Buffer.from('\n  }');
const NEWLINE = Buffer.from('\n');

/** JSON.stringify(value, null, 1) as it reads `depth` levels down (undefined: the key is left out). */
function textAt(value: unknown, depth: number): string | undefined {
  const text = JSON.stringify(value, null, 1) as string | undefined;
  return text === undefined || depth === 0 ? text : text.replaceAll('\n', `\n${' '.repeat(depth)}`);
}

const defaultSerializer = new DumpSerializer();

/** The dump file's text: JSON, one space of indentation per level, a final newline. */
export function serializeDump(contents: Omit<DumpContents, 'format' | 'savedAt'>, now: () => Date = () => new Date()): string {
  return defaultSerializer.serialize(contents, now).toString();
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
    throw new DumpFileError(`dump file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err, unusable: true });
  }
  const why = validateDump(parsed);
  if (why) throw new DumpFileError(`dump file ${file} is unusable: ${why}`, { unusable: true });
  return parsed as DumpContents;
}

/** Every field the balancer reads from the file is checked: a hand-edited or foreign file is refused here. */
export function validateDump(value: unknown): string | undefined {
  if (!isObject(value)) return 'not a JSON object';
  if (typeof value.format === 'number' && value.format > DUMP_FORMAT) return `written by a newer version (format ${value.format}, this one reads ${DUMP_FORMAT})`;
  if (value.format !== DUMP_FORMAT) return `unknown format ${JSON.stringify(value.format)}`;
  if (value.savedAt !== undefined && typeof value.savedAt !== 'string') return 'savedAt is not a string';
  const table = value.table;
  if (!isObject(table) || !isObject(table.upstreams) || !Array.isArray(table.routes)) return 'no table with upstreams and routes';
  if (table.version !== undefined && typeof table.version !== 'string') return 'table version is not a string';
  if (!isObject(value.adminUpstreams)) return 'no adminUpstreams object';
  for (const [where, ups] of [['table', table.upstreams], ['adminUpstreams', value.adminUpstreams]] as const) {
    for (const [name, u] of Object.entries(ups)) {
      const why = upstreamProblem(name, u);
      if (why) return `${where}: upstream ${name.slice(0, 80)} ${why}`;
    }
  }
  for (const r of table.routes) {
    if (!isObject(r) || typeof r.host !== 'string' || typeof r.pathPrefix !== 'string' || !r.pathPrefix.startsWith('/') || typeof r.upstream !== 'string') {
      return `bad route ${JSON.stringify(r)?.slice(0, 120)}`;
    }
  }
  if (value.snapshot !== undefined) {
    const snap = value.snapshot;
    if (!isObject(snap) || !isObject(snap.services)) return 'bad snapshot';
    for (const [name, list] of Object.entries(snap.services)) {
      if (!Array.isArray(list)) return `snapshot: service ${JSON.stringify(name).slice(0, 80)} has no instance list`;
      for (const inst of list) {
        const why = instanceProblem(inst);
        if (why) return `snapshot: service ${JSON.stringify(name).slice(0, 80)} ${why}`;
      }
    }
  }
  return undefined;
}

const HASH_SOURCES = new Set(['header', 'cookie', 'ip', 'uri']);
const isInt = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): boolean => Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
const isStatusList = (v: unknown): boolean => Array.isArray(v) && v.every((x) => isInt(x, 100, 599));

/**
 * What the workers dereference on every request: a file from another version or edited by hand must
 * be refused here with a clear message, not crash the workers that are handed its table.
 */
function upstreamProblem(key: string, u: unknown): string | undefined {
  if (!isObject(u) || !Array.isArray(u.servers)) return 'has no server list';
  if (typeof u.name !== 'string' || u.name !== key) return 'has no name or a name that differs from its key';
  if (!ALGORITHMS.includes(u.algorithm as Algorithm)) return `has an unknown algorithm ${JSON.stringify(u.algorithm)?.slice(0, 40)}`;
  if (u.origin !== 'consul' && u.origin !== 'admin' && u.origin !== 'config') return 'has an unknown origin';
  const retry = u.retry;
  if (!isObject(retry) || !isInt(retry.tries, 1, 10_000) || !isInt(retry.timeoutMs, 0) || !isStatusList(retry.onStatuses) || typeof retry.nonIdempotent !== 'boolean') {
    return 'has malformed retry settings';
  }
  if (u.hashKey !== undefined) {
    const h = u.hashKey;
    if (!isObject(h) || !HASH_SOURCES.has(h.source as string)) return 'has a malformed hashKey';
    if ((h.source === 'header' || h.source === 'cookie') && (typeof h.name !== 'string' || h.name === '')) return 'has a hashKey without a name';
  }
  if (u.check !== undefined) {
    const c = u.check;
    const ok = isObject(c) && (c.type === 'http' || c.type === 'tcp' || c.type === 'grpc') && typeof c.path === 'string' && (c.type !== 'http' || c.path.startsWith('/')) &&
      (c.grpcService === undefined || (typeof c.grpcService === 'string' && grpcServiceNameProblem(c.grpcService) === undefined)) &&
      (c.tls === undefined || typeof c.tls === 'boolean') &&
      !/[\s\u0000-\u001f]/.test(c.path) && isInt(c.intervalMs, 1, 2_147_483_647) && isInt(c.timeoutMs, 1, 2_147_483_647) &&
      isInt(c.rise, 1, 1000) && isInt(c.fall, 1, 1000) && Array.isArray(c.expectStatuses) && c.expectStatuses.every((x) => isInt(x, 100, 599));
    if (!ok) return `has a malformed check ${JSON.stringify(c)?.slice(0, 120)}`;
  }
  for (const s of u.servers) {
    const ok = isObject(s) && typeof s.id === 'string' && checkHostPort(s.host, s.port).ok &&
      typeof s.weight === 'number' && Number.isFinite(s.weight) && s.weight >= 1 &&
      isInt(s.maxFails, 0) && isInt(s.failTimeoutMs, 0, 2_147_483_647) && typeof s.down === 'boolean' && typeof s.backup === 'boolean' &&
      (s.node === undefined || typeof s.node === 'string') && (s.zone === undefined || typeof s.zone === 'string') &&
      (s.serviceId === undefined || typeof s.serviceId === 'string') && (s.canary === undefined || typeof s.canary === 'boolean');
    if (!ok) return `has a malformed server ${JSON.stringify(s)?.slice(0, 120)}`;
  }
  return undefined;
}

function instanceProblem(i: unknown): string | undefined {
  const ok = isObject(i) && typeof i.serviceId === 'string' && typeof i.service === 'string' && typeof i.node === 'string' &&
    checkHostPort(i.address, i.port).ok && Array.isArray(i.tags) && i.tags.every((t) => typeof t === 'string') &&
    isObject(i.meta) && Object.values(i.meta).every((v) => typeof v === 'string') && ['passing', 'warning', 'critical'].includes(i.status as string);
  return ok ? undefined : `has a malformed instance ${JSON.stringify(i)?.slice(0, 120)}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** at most one write per this many ms; changes in between are coalesced (the latest wins) */
export const DUMP_MIN_INTERVAL_MS = 1000;

/**
 * Serialises and debounces writes: at most one in flight, at most one per DUMP_MIN_INTERVAL_MS, and of
 * the changes that arrive meanwhile only the latest is written. flush() writes what is pending at once
 * (shutdown). Errors are logged, the previous file stays.
 */
export class DumpWriter {
  private pending: Omit<DumpContents, 'format' | 'savedAt'> | undefined;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastWriteAt = -Infinity;
  private writes = 0;
  private failures = 0;
  private saves = 0;
  /** keeps the text of unchanged upstreams and instance lists between writes */
  private readonly serializer = new DumpSerializer();

  constructor(
    private readonly file: string,
    private readonly logger: pino.Logger,
    private readonly minIntervalMs = DUMP_MIN_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  save(contents: Omit<DumpContents, 'format' | 'savedAt'>): void {
    this.pending = contents;
    this.saves++;
    this.schedule();
  }

  /** resolves when everything handed to save() so far is on disk (or failed), without waiting the debounce */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    for (let i = 0; i < 10 && (this.running || this.pending); i++) {
      if (!this.running && this.pending) this.running = this.drain().finally(() => (this.running = undefined));
      await this.running;
    }
  }

  stats(): { writes: number; failures: number; saves: number } {
    return { writes: this.writes, failures: this.failures, saves: this.saves };
  }

  private schedule(): void {
    if (this.running || this.timer || !this.pending) return;
    const wait = this.lastWriteAt + this.minIntervalMs - this.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait);
      this.timer.unref();
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = undefined;
      this.schedule();
    });
  }

  private async drain(): Promise<void> {
    const next = this.pending;
    if (!next) return;
    this.pending = undefined;
    this.lastWriteAt = this.now();
    try {
      await writeDump(this.file, next, undefined, this.serializer);
      this.writes++;
      this.logger.debug({ file: this.file, version: next.table.version }, 'dump file written');
    } catch (err) {
      this.failures++;
      this.logger.error({ err, file: this.file }, 'dump file write failed, previous file kept');
    }
  }
}
