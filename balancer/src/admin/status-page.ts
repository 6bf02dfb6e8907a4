// GET /status at any table size: the query parameters, the page of upstream names, and the merge of
// the workers' per-upstream summaries. Pure: the route asks the workers only for what one page needs
// (a full status of 50,000 servers took a worker longer than the primary waits for it).
import type { UpstreamSummary } from '../worker/runtime.js';

export type StatusView = 'servers' | 'summary';

export interface StatusPageQuery {
  readonly view: StatusView;
  /** exact upstream names asked for (sorted, unique); undefined = every upstream of the table */
  readonly upstreams: readonly string[] | undefined;
  readonly offset: number;
  readonly limit: number;
}

/** servers view: upstreams per page by default and at most (each lists all its servers) */
export const SERVERS_LIMIT = { default: 100, max: 1000 } as const;
/** summary view: a few numbers per upstream */
export const SUMMARY_LIMIT = { default: 1000, max: 10000 } as const;
const MAX_NAMES = 1000;
const KNOWN = new Set(['view', 'upstream', 'offset', 'limit']);

export type ParsedStatusQuery = { readonly ok: true; readonly query: StatusPageQuery } | { readonly ok: false; readonly error: string };

/** The query string of GET /status (fastify's parsed form: a value or the list of a repeated key). */
export function parseStatusQuery(raw: Readonly<Record<string, string | string[] | undefined>>): ParsedStatusQuery {
  for (const key of Object.keys(raw)) {
    if (!KNOWN.has(key)) return { ok: false, error: `unknown query parameter "${key}" (known: view, upstream, offset, limit)` };
  }
  const one = (key: string): string | undefined | { error: string } => {
    const v = raw[key];
    if (Array.isArray(v)) return { error: `"${key}" given more than once` };
    return v;
  };
  const view = one('view');
  if (typeof view === 'object') return { ok: false, error: view.error };
  if (view !== undefined && view !== 'servers' && view !== 'summary') return { ok: false, error: `view must be "servers" or "summary", not "${view}"` };
  const v: StatusView = view ?? 'servers';
  const bounds = v === 'summary' ? SUMMARY_LIMIT : SERVERS_LIMIT;
  const int = (key: string, dflt: number, min: number, max: number): number | { error: string } => {
    const s = one(key);
    if (typeof s === 'object') return s;
    if (s === undefined) return dflt;
    if (!/^\d{1,9}$/.test(s)) return { error: `${key} must be a whole number, not "${s}"` };
    const n = Number(s);
    if (n < min || n > max) return { error: `${key} must be between ${min} and ${max}${key === 'limit' ? ` for view=${v}` : ''}, not ${n}` };
    return n;
  };
  const offset = int('offset', 0, 0, 1e9);
  if (typeof offset === 'object') return { ok: false, error: offset.error };
  const limit = int('limit', bounds.default, 1, bounds.max);
  if (typeof limit === 'object') return { ok: false, error: limit.error };
  let upstreams: string[] | undefined;
  const given = raw.upstream;
  if (given !== undefined) {
    const names = (Array.isArray(given) ? given : [given]).flatMap((s) => s.split(',')).map((s) => s.trim());
    if (names.some((n) => n === '')) return { ok: false, error: 'upstream must be a name or a comma-separated list of names, with no empty one' };
    upstreams = [...new Set(names)].sort();
    if (upstreams.length > MAX_NAMES) return { ok: false, error: `at most ${MAX_NAMES} upstream names, not ${upstreams.length}` };
  }
  return { ok: true, query: { view: v, upstreams, offset, limit } };
}

export interface NamePage {
  /** the names of this page, sorted */
  readonly names: readonly string[];
  /** upstreams matching the query (before paging) */
  readonly total: number;
  /** offset of the next page; undefined = this is the last */
  readonly next: number | undefined;
  /** asked-for names the table does not have */
  readonly notFound: readonly string[];
}

/** The page of upstream names of the table (`tableNames`, any order) the query selects. */
export function pageOfNames(tableNames: Iterable<string>, q: StatusPageQuery): NamePage {
  const all = new Set(tableNames);
  let matching: string[];
  let notFound: string[] = [];
  if (q.upstreams === undefined) matching = [...all].sort();
  else {
    matching = q.upstreams.filter((n) => all.has(n));
    notFound = q.upstreams.filter((n) => !all.has(n));
  }
  const names = matching.slice(q.offset, q.offset + q.limit);
  const end = q.offset + names.length;
  return { names, total: matching.length, next: end < matching.length ? end : undefined, notFound };
}

const SEVERITY = { ok: 0, err: 1, ejected: 2, down: 3 } as const;

export interface SummaryRow {
  readonly name: string;
  readonly algorithm: string;
  readonly servers: number;
  readonly ok: number;
  readonly err: number;
  readonly ejected: number;
  readonly down: number;
  /** requests in flight, summed over the workers */
  readonly inflight: number;
  /** the servers not ok, worst state over the workers (as in the servers view), sorted by id */
  readonly notOk: readonly { readonly id: string; readonly status: 'err' | 'ejected' | 'down' }[];
  readonly panic?: { readonly panicking: boolean; readonly entered: number; readonly picks: number };
}

export interface SummaryTotals {
  readonly upstreams: number;
  readonly servers: number;
  readonly ok: number;
  readonly err: number;
  readonly ejected: number;
  readonly down: number;
  readonly inflight: number;
}

/**
 * Merges the workers' summaries like mergeWorkerStatus merges full status: a server not ok in any
 * worker counts with its worst state; in-flight and panic figures add up. Rows for `names` (in
 * that order; names no worker has are left out), totals over every upstream a worker reported.
 */
export function mergeSummaries(perWorker: readonly (readonly UpstreamSummary[])[], names: readonly string[]): { rows: SummaryRow[]; totals: SummaryTotals } {
  const merged = new Map<string, { algorithm: string; servers: number; inflight: number; notOk: Map<string, 'err' | 'ejected' | 'down'>; panic?: { panicking: boolean; entered: number; picks: number } }>();
  for (const list of perWorker) {
    for (const u of list) {
      let m = merged.get(u.name);
      if (m === undefined) merged.set(u.name, (m = { algorithm: u.algorithm, servers: u.servers, inflight: 0, notOk: new Map() }));
      m.servers = Math.max(m.servers, u.servers);
      m.inflight += u.inflight;
      for (const [id, status] of u.notOk) {
        const prev = m.notOk.get(id);
        if (prev === undefined || SEVERITY[status] > SEVERITY[prev]) m.notOk.set(id, status);
      }
      if (u.panic !== undefined) {
        const p = m.panic;
        m.panic = p === undefined ? { ...u.panic } : { panicking: p.panicking || u.panic.panicking, entered: p.entered + u.panic.entered, picks: p.picks + u.panic.picks };
      }
    }
  }
  const rowOf = (name: string): SummaryRow | undefined => {
    const m = merged.get(name);
    if (m === undefined) return undefined;
    const counts = { err: 0, ejected: 0, down: 0 };
    for (const s of m.notOk.values()) counts[s]++;
    const notOk = [...m.notOk].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([id, status]) => ({ id, status }));
    return {
      name, algorithm: m.algorithm, servers: m.servers, ok: m.servers - m.notOk.size, ...counts, inflight: m.inflight, notOk,
      ...(m.panic !== undefined ? { panic: m.panic } : {}),
    };
  };
  const rows: SummaryRow[] = [];
  for (const n of names) {
    const r = rowOf(n);
    if (r !== undefined) rows.push(r);
  }
  const totals = { upstreams: merged.size, servers: 0, ok: 0, err: 0, ejected: 0, down: 0, inflight: 0 };
  for (const m of merged.values()) {
    totals.servers += m.servers;
    totals.inflight += m.inflight;
    totals.ok += m.servers - m.notOk.size;
    for (const s of m.notOk.values()) totals[s]++;
  }
  return { rows, totals };
}

/** A worker's full status as a summary (runtime doubles without statusQuery). */
export function summaryOfStatus(u: { readonly name: string; readonly algorithm: string; readonly servers: readonly { readonly id: string; readonly status: 'ok' | 'err' | 'ejected' | 'down'; readonly inflight: number }[]; readonly panic?: UpstreamSummary['panic'] }): UpstreamSummary {
  let inflight = 0;
  const notOk: [string, 'err' | 'ejected' | 'down'][] = [];
  for (const s of u.servers) {
    inflight += s.inflight;
    if (s.status !== 'ok') notOk.push([s.id, s.status]);
  }
  return { name: u.name, algorithm: u.algorithm, servers: u.servers.length, inflight, notOk, ...(u.panic !== undefined ? { panic: u.panic } : {}) };
}
