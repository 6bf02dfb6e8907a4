// Structural sharing of a table's upstreams between consecutive tables of the incremental builder.
// With 5,000 upstreams, copying the frozen upstream record for every change costs more than the rest
// of the change (a record that large is a hash table in V8: ~1-5 ms per copy). So a built table's
// `upstreams` is made only when someone reads it (the admin API, the dump write, a full table to a
// new worker); per-change readers (diff, delta, checker, metrics) ask upstreamOf()/hasUpstream(),
// which answer from the last made record plus the changes since, without making a new one.
import type { Route, RouteTable, ScriptSpec, UpstreamSpec } from './types.js';

/** changes kept beside a made record before the next table makes its own (bounds lookups and copies) */
const MAX_PENDING = 256;

/** A table's upstreams as a record made once (`base`) plus the changes since (`undefined` = removed). */
export class UpstreamsView {
  #record: Readonly<Record<string, UpstreamSpec>> | undefined;

  private constructor(
    private readonly base: Readonly<Record<string, UpstreamSpec>>,
    private readonly changes: ReadonlyMap<string, UpstreamSpec | undefined>,
    /** names added or removed since `base` (the record is then rebuilt in name order) */
    private readonly namesChanged: boolean,
    readonly size: number,
  ) {
    if (changes.size === 0) this.#record = base;
  }

  /** A view of a record as it is (sorted by name and frozen by the caller). */
  static of(record: Readonly<Record<string, UpstreamSpec>>): UpstreamsView {
    return new UpstreamsView(record, new Map(), false, Object.keys(record).length);
  }

  /** This view with `changed` applied (spec, or undefined = removed); O(changes since the last made record). */
  with(changed: ReadonlyMap<string, UpstreamSpec | undefined>): UpstreamsView {
    if (changed.size === 0) return this;
    const made = this.#record;
    const base = made ?? this.base;
    const changes = new Map(made ? [] : this.changes);
    let namesChanged = made ? false : this.namesChanged;
    let size = this.size;
    for (const [name, spec] of changed) {
      const had = this.has(name);
      if (!had && spec === undefined) continue;
      if (had && spec === undefined) size--;
      if (!had && spec !== undefined) size++;
      if (had !== (spec !== undefined)) namesChanged = true;
      changes.set(name, spec);
    }
    const next = new UpstreamsView(base, changes, namesChanged, size);
    // a long run of changes: make the record now, so lookups and the next copies stay small
    if (changes.size > MAX_PENDING) next.record();
    return next;
  }

  /** whether the record was made (tests: a change must not make it) */
  get made(): boolean {
    return this.#record !== undefined;
  }

  get(name: string): UpstreamSpec | undefined {
    if (this.#record) return Object.hasOwn(this.#record, name) ? this.#record[name] : undefined;
    if (this.changes.has(name)) return this.changes.get(name);
    return Object.hasOwn(this.base, name) ? this.base[name] : undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** The frozen record (made on the first call): same names keep the base's order, new ones are sorted in. */
  record(): Readonly<Record<string, UpstreamSpec>> {
    if (this.#record) return this.#record;
    let out: Record<string, UpstreamSpec>;
    if (!this.namesChanged) {
      out = { ...this.base };
      // same names: every change replaces an upstream the base has
      for (const [name, spec] of this.changes) if (spec !== undefined) out[name] = spec;
    } else {
      const names = new Set(Object.keys(this.base));
      for (const [name, spec] of this.changes) {
        if (spec === undefined) names.delete(name);
        else names.add(name);
      }
      out = {};
      for (const name of [...names].sort()) out[name] = this.get(name)!;
    }
    this.#record = Object.freeze(out);
    return this.#record;
  }
}

const views = new WeakMap<RouteTable, UpstreamsView>();

/** A frozen table whose `upstreams` is the view's record, made when first read. */
export function lazyTable(version: string, view: UpstreamsView, routes: readonly Route[], scripts?: readonly ScriptSpec[]): RouteTable {
  const table: RouteTable = scripts === undefined
    ? { version, get upstreams() { return view.record(); }, routes }
    : { version, get upstreams() { return view.record(); }, routes, scripts };
  Object.freeze(table);
  views.set(table, view);
  return table;
}

/** The table's view when it has one (a builder's table), else undefined. */
export function viewOf(table: RouteTable): UpstreamsView | undefined {
  return views.get(table);
}

/** One upstream of a table, without making its record. */
export function upstreamOf(table: RouteTable, name: string): UpstreamSpec | undefined {
  const view = views.get(table);
  if (view) return view.get(name);
  return Object.hasOwn(table.upstreams, name) ? table.upstreams[name] : undefined;
}

/** How many upstreams a table has, without making its record. */
export function upstreamCount(table: RouteTable): number {
  return views.get(table)?.size ?? Object.keys(table.upstreams).length;
}

/** The same table with another version and scripts; a builder's table keeps sharing its view. */
export function withTableFields(table: RouteTable, version: string, scripts: readonly ScriptSpec[] | undefined): RouteTable {
  const view = views.get(table);
  if (view) return lazyTable(version, view, table.routes, scripts);
  const next = scripts === undefined ? { ...table, version } : { ...table, version, scripts };
  return Object.freeze(next);
}
