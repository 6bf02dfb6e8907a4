// The one mutable reference of the primary: the current routing table, the catalog snapshot it was
// built from and the admin-API upstreams. Any input change rebuilds the table with the pure builder;
// the table is swapped (and listeners told) only when its version changed. A failed build keeps the
// previous table.
import type pino from 'pino';
import { buildRouteTable } from './build-table.js';
import { diffTables } from './diff.js';
import type { TableDefaults } from './tag-options.js';
import type { CatalogSnapshot, RouteTable, ScriptSpec, UpstreamSpec } from './types.js';
import { withScripts } from '../scripts/table-scripts.js';
import type { PolicyOverrides } from '../policy/apply-policy.js';
import type { PolicyDocument } from '../policy/policy-spec.js';

export type TableChangeCause = 'snapshot' | 'admin' | 'restore' | 'external' | 'policy' | 'scripts';

export interface TableChange {
  readonly table: RouteTable;
  readonly previous: RouteTable;
  readonly cause: TableChangeCause;
  readonly diff: readonly string[];
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
  private readonly listeners = new Set<TableListener>();
  private readonly build: typeof buildRouteTable;
  private readonly log: pino.Logger;
  private swaps = 0;
  private lastWarnings: readonly string[] = [];

  constructor(private readonly opts: TableHolderOptions) {
    this.log = opts.logger;
    this.build = opts.build ?? buildRouteTable;
    this.snapshot = opts.initialSnapshot ?? EMPTY_SNAPSHOT;
    this.admin = Object.freeze({ ...(opts.initialAdminUpstreams ?? {}) });
    this.policies = Object.freeze({ admin: Object.freeze({ ...(opts.initialAdminPolicies ?? {}) }), kv: Object.freeze({}) });
    this.scriptList = Object.freeze([...(opts.initialScripts ?? [])]);
    this.table = (opts.initialTable ? withScripts(opts.initialTable, this.scriptList) : undefined) ?? this.tryBuild() ?? this.build({ snapshot: EMPTY_SNAPSHOT, adminUpstreams: {}, defaults: opts.defaults }).table;
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

  scripts(): readonly ScriptSpec[] {
    return this.scriptList;
  }

  /** Adds or replaces (same name, same place in the run order) a request script; true when the table changed. */
  setScript(spec: ScriptSpec): boolean {
    const at = this.scriptList.findIndex((s) => s.name === spec.name);
    const next = [...this.scriptList];
    if (at < 0) next.push(spec);
    else next[at] = spec;
    this.scriptList = Object.freeze(next);
    return this.rebuild('scripts');
  }

  /** Removes a script; false when there is none by that name. */
  deleteScript(name: string): boolean {
    if (!this.scriptList.some((s) => s.name === name)) return false;
    this.scriptList = Object.freeze(this.scriptList.filter((s) => s.name !== name));
    this.rebuild('scripts');
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
    return this.lastWarnings;
  }

  stats(): { version: string; swaps: number; upstreams: number; adminUpstreams: number } {
    return { version: this.table.version, swaps: this.swaps, upstreams: Object.keys(this.table.upstreams).length, adminUpstreams: Object.keys(this.admin).length };
  }

  subscribe(listener: TableListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A new catalog snapshot; returns true when the table changed. */
  setSnapshot(snapshot: CatalogSnapshot): boolean {
    this.snapshot = snapshot;
    return this.rebuild('snapshot');
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
    this.swap(table, 'external');
    return true;
  }

  private tryBuild(): RouteTable | undefined {
    try {
      const { table, warnings } = this.build({ snapshot: this.snapshot, adminUpstreams: this.admin, defaults: this.opts.defaults, policies: this.policies });
      if (warnings.join('\n') !== this.lastWarnings.join('\n')) {
        for (const w of warnings) this.log.warn({ warning: w }, 'table build warning');
      }
      this.lastWarnings = warnings;
      return withScripts(table, this.scriptList);
    } catch (err) {
      this.log.error({ err }, 'table build failed, keeping the previous table');
      return undefined;
    }
  }

  private rebuild(cause: TableChangeCause): boolean {
    const next = this.tryBuild();
    if (!next || next.version === this.table.version) return false;
    this.swap(next, cause);
    return true;
  }

  private swap(next: RouteTable, cause: TableChangeCause): void {
    const previous = this.table;
    let diff: string[] = [];
    try {
      diff = diffTables(previous, next);
    } catch (err) {
      this.log.warn({ err }, 'table diff failed');
    }
    this.table = next;
    this.swaps++;
    this.log.info({ version: next.version, previous: previous.version, cause, changes: diff.length }, 'routing table swapped');
    for (const line of diff) this.log.info({ change: line }, 'table diff');
    const change: TableChange = { table: next, previous, cause, diff };
    for (const l of this.listeners) {
      try {
        l(change);
      } catch (err) {
        this.log.error({ err }, 'table listener failed');
      }
    }
  }
}
