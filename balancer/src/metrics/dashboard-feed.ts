// Feeds the live dashboard: keeps the last N table diffs as they happen, and while at least one
// page listens, builds the state once a second and at once after a table change (so a `scale
// web=3` shows within a second). The workers' health is read through the same status round-trip
// as GET /status, only while someone watches; when it fails the last answer is kept and said so.
import type { CatalogSnapshot, RouteTable } from '../routing/types.js';
import type { BalancerMetrics } from './balancer-metrics.js';
import { buildDashboardState, type DashboardState, type PanicFigures, type ServerHealthInput, type TableDiffEntry } from './dashboard-state.js';

export interface DashboardFeedDeps {
  readonly mode: string;
  readonly table: () => RouteTable;
  readonly snapshot: () => CatalogSnapshot | undefined;
  /** subscribe to table swaps; returns the unsubscribe */
  readonly onTableChange: (listener: (change: { table: RouteTable; cause: string; diff: readonly string[] }) => void) => () => void;
  /** merged worker status, per upstream */
  readonly health: () => Promise<readonly { name: string; servers: readonly ServerHealthInput[]; panic?: PanicFigures }[]>;
  readonly workers: () => { generation: number; workersAlive: number; workersReady: number; restarts: number };
  readonly consulEnabled: boolean;
  readonly consulReachable: () => boolean | undefined;
  readonly metrics?: BalancerMetrics;
  readonly now?: () => number;
  readonly keepDiffs?: number;
  readonly intervalMs?: number;
}

export type DashboardListener = (event: 'state' | 'diff', data: unknown) => void;

export class DashboardFeed {
  readonly #deps: DashboardFeedDeps;
  readonly #diffs: TableDiffEntry[] = [];
  readonly #listeners = new Set<DashboardListener>();
  readonly #unsubscribe: () => void;
  #timer: NodeJS.Timeout | undefined;
  #health = new Map<string, Map<string, ServerHealthInput>>();
  #panic = new Map<string, PanicFigures>();
  #building: Promise<DashboardState> | undefined;
  #again = false;

  constructor(deps: DashboardFeedDeps) {
    this.#deps = deps;
    this.#unsubscribe = deps.onTableChange((change) => {
      const entry: TableDiffEntry = { at: this.#now(), version: change.table.version, cause: change.cause, lines: change.diff.slice(0, 200) };
      this.#diffs.unshift(entry);
      if (this.#diffs.length > (deps.keepDiffs ?? 20)) this.#diffs.pop();
      this.#emit('diff', entry);
      if (this.#listeners.size > 0) this.#push();
    });
  }

  /** The current state (reads the workers' health once). */
  async state(): Promise<DashboardState> {
    let statusError: string | undefined;
    try {
      const merged = await this.#deps.health();
      const next = new Map<string, Map<string, ServerHealthInput>>();
      const panic = new Map<string, PanicFigures>();
      for (const u of merged) {
        next.set(u.name, new Map(u.servers.map((s) => [s.id, s])));
        if (u.panic !== undefined) panic.set(u.name, u.panic);
      }
      this.#health = next;
      this.#panic = panic;
    } catch (err) {
      statusError = `worker status unavailable: ${(err as Error).message}`;
    }
    const w = this.#deps.workers();
    const metrics = this.#deps.metrics;
    const empty = { rps: 0, p50Ms: undefined, p99Ms: undefined };
    return buildDashboardState({
      at: this.#now(),
      mode: this.#deps.mode,
      generation: w.generation,
      workers: { alive: w.workersAlive, ready: w.workersReady, restarts: w.restarts },
      table: this.#deps.table(),
      snapshot: this.#deps.snapshot(),
      health: this.#health,
      panic: this.#panic,
      consul: { enabled: this.#deps.consulEnabled, reachable: this.#deps.consulEnabled ? this.#deps.consulReachable() ?? false : null },
      diffs: this.#diffs,
      serviceWindow: (s) => metrics?.store.serviceWindow(s) ?? { ...empty, points: [] },
      serverWindow: (s, id) => metrics?.store.serverWindow(s, id) ?? empty,
      tcpFigures: metrics === undefined ? undefined : (() => {
        const open = metrics.store.openTcp();
        return (s: string) => ({ totals: metrics.store.tcp.get(s), open: open.get(s) ?? 0 });
      })(),
      refusals: metrics === undefined ? undefined : (() => {
        const by = new Map<string, { denied: number; limited: number }>();
        for (const r of metrics.store.refused.values()) {
          const t = by.get(r.service) ?? { denied: 0, limited: 0 };
          t.denied += r.denied;
          t.limited += r.limited;
          by.set(r.service, t);
        }
        return (s: string) => by.get(s);
      })(),
      statusError,
    });
  }

  /** A page starts listening: it gets the state now and then at every tick and change. */
  listen(listener: DashboardListener): () => void {
    this.#listeners.add(listener);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#push(), this.#deps.intervalMs ?? 1_000);
      this.#timer.unref();
    }
    this.#push();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0 && this.#timer !== undefined) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  close(): void {
    this.#unsubscribe();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }

  /** One build at a time; a push asked for during a build runs once more right after it. */
  #push(): void {
    if (this.#building !== undefined) {
      this.#again = true;
      return;
    }
    this.#building = this.state();
    void this.#building.then(
      (s) => this.#emit('state', s),
      () => undefined,
    ).finally(() => {
      this.#building = undefined;
      if (this.#again && this.#listeners.size > 0) {
        this.#again = false;
        this.#push();
      }
    });
  }

  #emit(event: 'state' | 'diff', data: unknown): void {
    for (const l of this.#listeners) {
      try {
        l(event, data);
      } catch {
        // one broken page must not stop the others
      }
    }
  }

  #now(): number {
    return (this.#deps.now ?? Date.now)();
  }
}
