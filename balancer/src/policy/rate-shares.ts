// How the workers share one service's rate limit (pure). Every worker counts, per rate-limited
// (service, key), the requests or new connections it asked its bucket about in a short window
// (admitted + refused: the demand, not what it let through) and reports them to the primary. The
// primary gives each worker a share of that key's rate and burst in proportion to the demand it saw,
// with a floor for every live worker (a client may open its next connection on any worker), the
// shares summing to 1 over every live worker of every generation: one keep-alive client pinned to
// one worker gets (1 - (N-1) * floor) of the rate instead of 1/N, and a reload-mode overlap of two
// generations holds the rate once the first window after the fork is counted. A key nobody reported
// lately falls back to the default share, 1 / live workers. Demand is summed over the last second
// (RATE_DEMAND_SPAN_MS), so shares follow where demand is, not one window's random split.

/** the primary's window: workers report and shares are recomputed this often */
export const RATE_SHARE_WINDOW_MS = 200;
/**
 * Demand is the sum of a worker's reports received in this span, not its latest report: on a busy
 * machine a worker's report timer runs late and its counts arrive bunched, and a worker whose latest
 * report aged out got the floor share while its clients were still there (the simulation in
 * test/unit/balancer-access-rate.test.ts). A worker with no report in the span had no demand.
 */
export const RATE_DEMAND_SPAN_MS = 5 * RATE_SHARE_WINDOW_MS;
/** the floor of every live worker's share, as a part of the even share 1/N */
export const RATE_SHARE_FLOOR_OF_EVEN = 0.1;
/** (service, key) pairs one worker reports per window; beyond, the busiest (the rest use the default) */
export const MAX_REPORTED_KEYS = 4096;

/** `${service}\n${key}` -> demand in the window (a Map is what crosses IPC as entries) */
export type DemandCounts = ReadonlyMap<string, number>;

export function demandKey(service: string, key: string): string {
  return `${service}\n${key}`;
}

/**
 * One key's shares over the live workers, from their demand (same order). Each gets at least
 * floor = RATE_SHARE_FLOOR_OF_EVEN / N; the rest (1 - N * floor) goes in proportion to demand; no
 * demand at all = the even share. The shares sum to 1.
 */
export function sharesFromDemand(demand: readonly number[]): number[] {
  const n = demand.length;
  if (n === 0) return [];
  const total = demand.reduce((a, d) => a + Math.max(0, d), 0);
  if (!(total > 0)) return demand.map(() => 1 / n);
  const floor = RATE_SHARE_FLOOR_OF_EVEN / n;
  const rest = 1 - n * floor;
  return demand.map((d) => floor + (rest * Math.max(0, d)) / total);
}

/** one worker's report as the primary received it */
export interface DemandReport {
  readonly at: number;
  readonly counts: DemandCounts;
}

/**
 * A worker's demand over the span ending at `now`: its reports received since now - spanMs, summed
 * per key. `reports` is oldest first; the caller drops what this says is out of the span.
 */
export function demandOverSpan(reports: readonly DemandReport[], now: number, spanMs = RATE_DEMAND_SPAN_MS): { demand: Map<string, number>; firstInSpan: number } {
  let first = 0;
  while (first < reports.length && now - reports[first].at > spanMs) first++;
  const demand = new Map<string, number>();
  for (let i = first; i < reports.length; i++) {
    for (const [k, n] of reports[i].counts) demand.set(k, (demand.get(k) ?? 0) + n);
  }
  return { demand, firstInSpan: first };
}

/** what the primary sends one worker: the default for keys not listed, and the listed keys' shares */
export interface WorkerShares {
  readonly defaultShare: number;
  /** [demandKey, share] */
  readonly shares: readonly (readonly [string, number])[];
}

/**
 * Every live worker's shares from the latest fresh report of each (reports: worker id -> counts).
 * Workers without a fresh report count as no demand; workers that are not live are ignored.
 */
export function sharesForWorkers(live: readonly number[], reports: ReadonlyMap<number, DemandCounts>): Map<number, WorkerShares> {
  const n = live.length;
  const keys = new Set<string>();
  for (const id of live) for (const k of reports.get(id)?.keys() ?? []) keys.add(k);
  const lists = new Map<number, [string, number][]>(live.map((id) => [id, []]));
  for (const key of keys) {
    const shares = sharesFromDemand(live.map((id) => reports.get(id)?.get(key) ?? 0));
    live.forEach((id, i) => lists.get(id)!.push([key, shares[i]]));
  }
  return new Map(live.map((id) => [id, { defaultShare: n > 0 ? 1 / n : 1, shares: lists.get(id)! }]));
}

/** A worker's demand of one window, bounded: the busiest MAX_REPORTED_KEYS pairs. */
export function boundedReport(counts: ReadonlyMap<string, number>, max = MAX_REPORTED_KEYS): [string, number][] {
  const all = [...counts];
  if (all.length <= max) return all;
  return all.sort((a, b) => b[1] - a[1]).slice(0, max);
}
