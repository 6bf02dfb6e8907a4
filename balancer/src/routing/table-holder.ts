// The one mutable reference of the primary: the current routing table, the catalog snapshot it was
// built from and the admin-API upstreams. Any input change rebuilds the table with the pure builder;
// the table is swapped (and listeners told) only when its version changed. A failed build keeps the
// previous table. The build is incremental (only services whose instances changed are rebuilt, a
// failing service keeps its own last good entry) and every change says which upstreams it upserted
// or removed, which is what the workers are sent (a delta) and what the diff looks at.
import { performance } from 'node:perf_hooks';
import type pino from 'pino';
import { buildRouteTable, IncrementalTableBuilder } from './build-table.js';
import { diffTables } from './diff.js';
import { upstreamHash } from './table-version.js';
import { upstreamCount, upstreamOf } from './table-upstreams.js';
import type { TableDefaults } from './tag-options.js';
import type { CatalogSnapshot, RouteTable, ScriptSpec, UpstreamSpec } from './types.js';
import { effectiveScripts } from '../scripts/kv-scripts.js';
import { withScripts } from '../scripts/table-scripts.js';
import type { PolicyOverrides } from '../policy/apply-policy.js';
import type { PolicyDocument } from '../policy/policy-spec.js';

export type TableChangeCause = 'snapshot' | 'admin' | 'restore' | 'external' | 'policy' | 'scripts';

export interface TableChange {
  readonly table: RouteTable;
  readonly previous: RouteTable;
  readonly cause: TableChangeCause;
  readonly diff: readonly string[];
  /** upstreams added or changed, and removed, from `previous` to `table` */
  readonly upserted: readonly string[];
  readonly removed: readonly string[];
}

/** Upstream names that differ between two tables (identity first, content hash second). */
export function changedUpstreamNames(prev: RouteTable, next: RouteTable, candidates?: Iterable<string>): { upserted: string[]; removed: string[] } {
  const upserted: string[] = [];
  const removed: string[] = [];
  const names = candidates ? new Set(candidates) : new Set([...Object.keys(prev.upstreams), ...Object.keys(next.upstreams)]);
  for (const name of names) {
    const a = upstreamOf(prev, name);
    const b = upstreamOf(next, name);
    if (a === b) continue;
    if (!b) removed.push(name);
    else if (!a || upstreamHash(a) !== upstreamHash(b)) upserted.push(name);
  }
  return { upserted: upserted.sort(), removed: removed.sort() };
}

export type TableListener = (change: TableChange) => void;

export interface TableHolderOptions {
  readonly defaults: TableDefaults;
  readonly logger: pino.Logger;
  /** a table to serve before any input arrives (e.g. from the dump file) */
  readonly initialTable?: RouteTable;
  readonly initialSnapshot?: CatalogSnapshot;
  readonly initialAdminUpstreams?: Readonly<Record<string, UpstreamSpec>>;
  /** request scripts (from the dump file's table) */
  readonly initialScripts?: readonly ScriptSpec[];
  /** request scripts last read from Consul KV (from the dump file's table, origin 'kv') */
  readonly initialKvScripts?: readonly ScriptSpec[];
  /** traffic policies set through the admin API (from the dump file) */
  readonly initialAdminPolicies?: Readonly<Record<string, PolicyDocument>>;
  /** injectable for tests; defaults to the pure builder */
  readonly build?: typeof buildRouteTable;
}

const EMPTY_SNAPSHOT: CatalogSnapshot = Object.freeze({ services: Object.freeze({}) });

export class TableHolder {
  private table: RouteTable;
  private snapshot: CatalogSnapshot;
  private admin: Readonly<Record<string, UpstreamSpec>>;
  private policies: PolicyOverrides;
  private scriptList: readonly ScriptSpec[];
  private kvScriptList: readonly ScriptSpec[];
  /** what runs: the admin scripts, then the KV ones the admin API does not shadow */
  private effective: readonly ScriptSpec[];
  private readonly listeners = new Set<TableListener>();
  private readonly build: typeof buildRouteTable | undefined;
  private readonly builder: IncrementalTableBuilder;
  /** the builder's last table: when it is the current one, the builder's delta is the holder's */
  private builderTable: RouteTable | undefined;
  private pendingDelta: { upserted: readonly string[]; removed: readonly string[] } | undefined;
  private readonly log: pino.Logger;
  private swaps = 0;
  private lastWarnings: readonly string[] = [];
  /** the incremental builder's last result: its full warning list is computed only when asked */
  private lastWarningsOf: { readonly warnings: readonly string[] } | undefined;
  private failedBuilds = 0;
  private readonly buildTimes: number[] = [];
  /** the same changes' CPU time (process.cpuUsage, µs): wall time on a busy host counts the workers woken by the publish too */
  private readonly buildCpu: number[] = [];
  /** services discovery says changed with the snapshot being applied (undefined = look at all) */
  private changedHint: ReadonlySet<string> | undefined;

  constructor(private readonly opts: TableHolderOptions) {
    this.log = opts.logger;
    this.build = opts.build;
    this.builder = new IncrementalTableBuilder(opts.defaults);
    this.snapshot = opts.initialSnapshot ?? EMPTY_SNAPSHOT;
    this.admin = Object.freeze({ ...(opts.initialAdminUpstreams ?? {}) });
    this.policies = Object.freeze({ admin: Object.freeze({ ...(opts.initialAdminPolicies ?? {}) }), kv: Object.freeze({}) });
    this.scriptList = Object.freeze([...(opts.initialScripts ?? [])]);
    this.kvScriptList = Object.freeze([...(opts.initialKvScripts ?? [])]);
    this.effective = effectiveScripts(this.scriptList, this.kvScriptList).scripts;
    this.table = (opts.initialTable ? withScripts(opts.initialTable, this.effective) : undefined) ?? this.tryBuild() ?? buildRouteTable({ snapshot: EMPTY_SNAPSHOT, adminUpstreams: {}, defaults: opts.defaults }).table;
  }

  current(): RouteTable {
    return this.table;
  }

  currentSnapshot(): CatalogSnapshot {
    return this.snapshot;
  }

  adminUpstreams(): Readonly<Record<string, UpstreamSpec>> {
    return this.admin;
  }

  /** traffic policies set through the admin API and Consul KV */
  policyOverrides(): PolicyOverrides {
    return this.policies;
  }

  /** the scripts that run (admin API first, then Consul KV's not shadowed by an admin upload) */
  scripts(): readonly ScriptSpec[] {
    return this.effective;
  }

  /** the scripts uploaded through the admin API */
  adminScripts(): readonly ScriptSpec[] {
    return this.scriptList;
  }

  /** the scripts read from Consul KV, shadowed ones included */
  kvScripts(): readonly ScriptSpec[] {
    return this.kvScriptList;
  }

  /** Replaces every Consul KV script at once (the watcher reads the whole prefix); true when the table changed. */
  setKvScripts(all: readonly ScriptSpec[]): boolean {
    this.kvScriptList = Object.freeze(all.map((s) => (s.origin === 'kv' ? s : { ...s, origin: 'kv' as const })));
    return this.rebuildScripts();
  }

  /** Forgets one KV script before the watcher sees its key gone (the admin API deleted it); false when none. */
  dropKvScript(name: string): boolean {
    if (!this.kvScriptList.some((s) => s.name === name)) return false;
    this.kvScriptList = Object.freeze(this.kvScriptList.filter((s) => s.name !== name));
    this.rebuildScripts();
    return true;
  }

  private rebuildScripts(): boolean {
    this.effective = effectiveScripts(this.scriptList, this.kvScriptList).scripts;
    return this.rebuild('scripts');
  }

  /** Adds or replaces (same name, same place in the run order) a request script; true when the table changed. */
  setScript(spec: ScriptSpec): boolean {
    const at = this.scriptList.findIndex((s) => s.name === spec.name);
    const next = [...this.scriptList];
    if (at < 0) next.push(spec);
    else next[at] = spec;
    this.scriptList = Object.freeze(next);
    return this.rebuildScripts();
  }

  /** Removes a script; false when there is none by that name. */
  deleteScript(name: string): boolean {
    if (!this.scriptList.some((s) => s.name === name)) return false;
    this.scriptList = Object.freeze(this.scriptList.filter((s) => s.name !== name));
    this.rebuildScripts();
    return true;
  }

  /** Sets (doc) or removes (undefined) one service's admin-API policy; true when the table changed. */
  setAdminPolicy(service: string, doc: PolicyDocument | undefined): boolean {
    const next = { ...this.policies.admin };
    if (doc === undefined) delete next[service];
    else next[service] = doc;
    this.policies = Object.freeze({ ...this.policies, admin: Object.freeze(next) });
    return this.rebuild('policy');
  }

  /** Replaces every Consul KV policy at once (the watcher reads the whole prefix); true when the table changed. */
  setKvPolicies(all: Readonly<Record<string, PolicyDocument>>): boolean {
    this.policies = Object.freeze({ ...this.policies, kv: Object.freeze({ ...all }) });
    return this.rebuild('policy');
  }

  warnings(): readonly string[] {
    return this.lastWarningsOf ? this.lastWarningsOf.warnings : this.lastWarnings;
  }

  stats(): { version: string; swaps: number; upstreams: number; adminUpstreams: number; failedServiceBuilds: number } {
    return {
      version: this.table.version, swaps: this.swaps, upstreams: upstreamCount(this.table),
      adminUpstreams: Object.keys(this.admin).length, failedServiceBuilds: this.builder.failures + this.failedBuilds,
    };
  }

  subscribe(listener: TableListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A new catalog snapshot; returns true when the table changed. */
  setSnapshot(snapshot: CatalogSnapshot, changed?: ReadonlySet<string>): boolean {
    this.snapshot = snapshot;
    this.changedHint = changed;
    try {
      return this.rebuild('snapshot');
    } finally {
      this.changedHint = undefined;
    }
  }

  /** Adds or replaces an admin upstream; returns true when the table changed. */
  setAdminUpstream(spec: UpstreamSpec): boolean {
    this.admin = Object.freeze({ ...this.admin, [spec.name]: spec });
    return this.rebuild('admin');
  }

  /** Removes an admin upstream; false when there was none by that name. */
  deleteAdminUpstream(name: string): boolean {
    if (!Object.hasOwn(this.admin, name)) return false;
    const next = { ...this.admin };
    delete next[name];
    this.admin = Object.freeze(next);
    this.rebuild('admin');
    return true;
  }

  /**
   * Serve a table produced elsewhere (reload mode parses it from the rendered config file). It
   * stays current until the next adopt() or input change.
   */
  adopt(table: RouteTable): boolean {
    if (table.version === this.table.version) return false;
    this.pendingDelta = undefined;
    this.swap(table, 'external');
    return true;
  }

  private tryBuild(): RouteTable | undefined {
    try {
      if (this.build) {
        const { table, warnings } = this.build({ snapshot: this.snapshot, adminUpstreams: this.admin, defaults: this.opts.defaults, policies: this.policies });
        if (warnings.join('\n') !== this.lastWarnings.join('\n')) {
          for (const w of warnings) this.log.warn({ warning: w }, 'table build warning');
        }
        this.lastWarnings = warnings;
        this.lastWarningsOf = undefined;
        this.pendingDelta = undefined;
        return withScripts(table, this.effective);
      }
      const before = this.builderTable;
      const r = this.builder.build(this.snapshot, this.admin, this.policies, this.changedHint);
      // only what the rebuilt services say is new: unchanged services are not re-logged on every change
      for (const w of r.newWarnings) this.log.warn({ warning: w }, 'table build warning');
      if (r.failed.length > 0) this.log.error({ services: r.failed }, 'table entries failed to build, those services keep their last good entry');
      this.lastWarningsOf = r;
      this.builderTable = r.table;
      this.pendingDelta = before !== undefined && before === this.table ? { upserted: r.upserted, removed: r.removed } : undefined;
      return withScripts(r.table, this.effective);
    } catch (err) {
      this.failedBuilds++;
      this.log.error({ err }, 'table build failed, keeping the previous table');
      return undefined;
    }
  }

  private rebuild(cause: TableChangeCause): boolean {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const next = this.tryBuild();
    const changed = next !== undefined && next.version !== this.table.version;
    if (changed) this.swap(next, cause);
    // build + diff + listeners (the publish is asynchronous): the primary's cost of one change
    this.buildTimes.push(performance.now() - t0);
    const cpu = process.cpuUsage(c0);
    this.buildCpu.push((cpu.user + cpu.system) / 1000);
    if (this.buildTimes.length > 512) this.buildTimes.shift();
    if (this.buildCpu.length > 512) this.buildCpu.shift();
    return changed;
  }

  /** time of the last 512 input changes (build, diff, swap and listeners), ms: wall time, and CPU time (`cpu`) */
  buildTiming(): { last: number; p50: number; p99: number; samples: number; cpu: { p50: number; p99: number } } {
    const sorted = [...this.buildTimes].sort((a, b) => a - b);
    const pick = (from: number[], q: number) => from[Math.min(from.length - 1, Math.floor(q * from.length))] ?? 0;
    const cpu = [...this.buildCpu].sort((a, b) => a - b);
    return { last: this.buildTimes[this.buildTimes.length - 1] ?? 0, p50: pick(sorted, 0.5), p99: pick(sorted, 0.99), samples: sorted.length, cpu: { p50: pick(cpu, 0.5), p99: pick(cpu, 0.99) } };
  }

  private swap(next: RouteTable, cause: TableChangeCause): void {
    const previous = this.table;
    const delta = this.pendingDelta ?? changedUpstreamNames(previous, next);
    this.pendingDelta = undefined;
    let diff: string[] = [];
    try {
      diff = diffTables(previous, next, [...delta.upserted, ...delta.removed]);
    } catch (err) {
      this.log.warn({ err }, 'table diff failed');
    }
    this.table = next;
    this.swaps++;
    this.log.info({ version: next.version, previous: previous.version, cause, changes: diff.length, upserted: delta.upserted.length, removed: delta.removed.length }, 'routing table swapped');
    for (const line of diff.slice(0, 200)) this.log.info({ change: line }, 'table diff');
    if (diff.length > 200) this.log.info({ more: diff.length - 200 }, 'table diff truncated');
    const change: TableChange = { table: next, previous, cause, diff, upserted: delta.upserted, removed: delta.removed };
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.log.error({ err }, 'table listener failed');
      }
    }
  }
}
