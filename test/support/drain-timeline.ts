// The pieces of the drain gap (Docker's stop signal -> every balancer worker stopped picking the
// instance), read from what each process logs: the container's SIGTERM instant, the registrator's
// `drain` line (the engine's kill event time, when the registrator saw it, when the maintenance write
// returned) and the balancer primary's `routing table swapped` / `table diff` / `table published` lines
// (the table without the instance built, then acknowledged by every worker). Pure: text in, numbers out.
// All clocks are the one host clock (containers share the kernel's), in ms since the epoch.

export interface DrainTimeline {
  readonly sigtermAt: number;
  /** the engine's kill event time (its timeNano) */
  readonly killEventAt?: number;
  /** the registrator read the kill event */
  readonly killSeenAt?: number;
  /** the registrator's maintenance write returned */
  readonly maintenanceAt?: number;
  /** how long that write took (sent -> answered) */
  readonly writeMs?: number;
  /** the primary built the table without the instance */
  readonly tableSwappedAt?: number;
  /** every worker acknowledged that table */
  readonly publishedAt?: number;
}

interface LogRecord {
  readonly time?: number;
  readonly msg?: string;
  readonly version?: string;
  readonly change?: string;
  readonly [key: string]: unknown;
}

function records(output: string): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of output.split('\n')) {
    const start = line.indexOf('{');
    if (start < 0) continue;
    try {
      const parsed = JSON.parse(line.slice(start)) as unknown;
      if (parsed && typeof parsed === 'object') out.push(parsed as LogRecord);
    } catch {
      // not a log line
    }
  }
  return out;
}

/**
 * When the primary swapped in the first table whose diff removes `serverId` ("ip:port") from `upstream`,
 * and when every worker acknowledged that table version.
 */
export function balancerDropTimes(output: string, upstream: string, serverId: string): { tableSwappedAt?: number; publishedAt?: number } {
  let swap: LogRecord | undefined;
  let dropped: LogRecord | undefined;
  for (const r of records(output)) {
    // the primary's line (it has a cause); the workers log one of their own when they apply it
    if (!dropped && r.msg === 'routing table swapped' && r.cause !== undefined) swap = r;
    else if (!dropped && r.msg === 'table diff' && swap && typeof r.change === 'string' && r.change.startsWith(`- ${upstream} ${serverId} `)) dropped = swap;
    else if (dropped && r.msg === 'table published' && r.version === dropped.version) return { tableSwappedAt: dropped.time, publishedAt: r.time };
  }
  return dropped ? { tableSwappedAt: dropped.time } : {};
}

/** The registrator's `drain` line for one service ID. */
export function registratorDrainTimes(logs: readonly LogRecord[], serviceId: string): { killEventAt?: number; killSeenAt?: number; maintenanceAt?: number; writeMs?: number } {
  const line = logs.find((l) => l.event === 'drain' && l.serviceId === serviceId);
  if (!line) return {};
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  return { killEventAt: num(line.killEventAt), killSeenAt: num(line.killSeenAt), maintenanceAt: num(line.time), writeMs: num(line.writeMs) };
}

/** One line: each step's time after SIGTERM (ms), and what each piece took. */
export function describeTimeline(t: DrainTimeline): string {
  const after = (v: number | undefined) => (v === undefined ? '?' : String(Math.round(v - t.sigtermAt)));
  const span = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? '?' : String(Math.round(b - a)));
  return `SIGTERM +0, kill event +${after(t.killEventAt)}, seen +${after(t.killSeenAt)}, maintenance written +${after(t.maintenanceAt)}, ` +
    `table swapped +${after(t.tableSwappedAt)}, all workers +${after(t.publishedAt)} ms ` +
    `(delivery ${span(t.killEventAt, t.killSeenAt)}, registrator ${span(t.killSeenAt, t.maintenanceAt)} of which the write ${t.writeMs ?? '?'}, ` +
    `consul->primary ${span(t.maintenanceAt, t.tableSwappedAt)}, primary->workers ${span(t.tableSwappedAt, t.publishedAt)})`;
}
