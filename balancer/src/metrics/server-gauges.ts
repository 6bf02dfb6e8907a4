// In each worker: the per-server gauges (server up, in-flight per service) as changes since the
// previous report. The worker's table can list 50,000 servers; a report that carried all of them
// every second cost the worker most of a core. The tracker remembers what it sent and, per report,
// looks only at the upstreams a table change named and the upstreams listing a server whose health
// or in-flight count moved (PeerHealth.takeGaugeChanges): an idle report costs nothing per server.
import type { RouteTable, ServerSpec } from '../routing/types.js';
import { upstreamOf } from '../routing/table-upstreams.js';

/** What the tracker reads of the worker's current table and health. */
export interface GaugeView {
  /** upstream names of the table being served */
  upstreamNames(): Iterable<string>;
  /** [serverId, up (1) or not (0), in flight] of one upstream; undefined = not in the table */
  servers(upstream: string): readonly (readonly [string, number, number])[] | undefined;
  /** upstreams of the table listing this server id */
  owners(id: string): Iterable<string>;
}

/** The health figures a GaugeView reads (PeerHealth). */
export interface GaugeHealth {
  upOf(server: ServerSpec, now: number): number;
  inflight(id: string): number;
  ownersOf(id: string): Iterable<string>;
}

/** The view of the worker runtime: its current table and its PeerHealth. */
export function tableGaugeView(table: () => RouteTable, health: GaugeHealth, now: () => number): GaugeView {
  return {
    upstreamNames: () => Object.keys(table().upstreams),
    servers: (name) => {
      // upstreamOf: a delta's table makes its record only when read whole
      const u = upstreamOf(table(), name);
      if (u === undefined) return undefined;
      const t = now();
      return u.servers.map((s) => [s.id, health.upOf(s, t), health.inflight(s.id)] as const);
    },
    owners: (id) => health.ownersOf(id),
  };
}

/** What the services and servers of the table are, as RequestMetrics.retain reads them. */
export interface LiveLookup {
  get(service: string): { has(id: string): boolean } | undefined;
  has(service: string): boolean;
}

export interface ServerGaugeChanges {
  /** true: inflight and serverUp are the whole set */
  readonly full: boolean;
  /** [service, in flight]: every service when full, else the ones whose sum changed (or are new) */
  readonly inflight: [string, number][];
  /** [service, serverId, up] */
  readonly serverUp: [string, string, number][];
  readonly serverUpRemoved: [string, string][];
  readonly servicesRemoved: string[];
}

interface SentUpstream {
  readonly up: Map<string, number>;
  inflight: number;
}

export class ServerGaugeTracker {
  readonly #sent = new Map<string, SentUpstream>();
  /** upstreams a table change named since the last report; `all` after a full table */
  readonly #tableChanged = new Set<string>();
  #allChanged = true;

  /** The worker swapped its table: `names` = the upstreams a delta upserted or removed, undefined = a full table. */
  tableChanged(names?: Iterable<string>): void {
    if (names === undefined) {
      this.#allChanged = true;
      this.#tableChanged.clear();
      return;
    }
    if (this.#allChanged) return;
    for (const n of names) this.#tableChanged.add(n);
  }

  /**
   * The report's gauges. `changedServers`: ids whose health or in-flight count may have moved.
   * `full`: the whole set (first report, or the primary asked after a gap). After a full table
   * every upstream is compared, but only differences are sent unless `full`.
   */
  next(view: GaugeView, changedServers: Iterable<string>, full: boolean): ServerGaugeChanges {
    const out: ServerGaugeChanges = { full, inflight: [], serverUp: [], serverUpRemoved: [], servicesRemoved: [] };
    if (full || this.#allChanged) {
      const names = new Set(view.upstreamNames());
      for (const name of this.#sent.keys()) if (!names.has(name)) this.#forget(name, full ? undefined : out);
      for (const name of names) this.#compare(name, view, full, out);
    } else {
      const names = new Set(this.#tableChanged);
      for (const id of changedServers) for (const name of view.owners(id)) names.add(name);
      for (const name of names) this.#compare(name, view, false, out);
    }
    this.#allChanged = false;
    this.#tableChanged.clear();
    return out;
  }

  /** The services and servers last reported (the worker's table as of the last report). */
  live(): LiveLookup {
    const sent = this.#sent;
    return {
      get: (service) => {
        const s = sent.get(service);
        return s === undefined ? undefined : { has: (id) => s.up.has(id) };
      },
      has: (service) => sent.has(service),
    };
  }

  /** How many servers the tracker remembers (tests). */
  size(): number {
    let n = 0;
    for (const s of this.#sent.values()) n += s.up.size;
    return n;
  }

  #forget(name: string, out: ServerGaugeChanges | undefined): void {
    if (this.#sent.delete(name)) out?.servicesRemoved.push(name);
  }

  #compare(name: string, view: GaugeView, full: boolean, out: ServerGaugeChanges): void {
    const servers = view.servers(name);
    if (servers === undefined) {
      this.#forget(name, full ? undefined : out);
      return;
    }
    let sent = this.#sent.get(name);
    const fresh = sent === undefined;
    if (sent === undefined) this.#sent.set(name, (sent = { up: new Map(), inflight: 0 }));
    let inflight = 0;
    const before = sent.up.size;
    let kept = 0;
    for (const [id, up, n] of servers) {
      inflight += n;
      const was = sent.up.get(id);
      if (was !== undefined) kept++;
      if (was !== up) sent.up.set(id, up);
      if (full || was !== up) out.serverUp.push([name, id, up]);
    }
    // fewer of the earlier ids listed than were there: some left the upstream
    if (kept < before) {
      const listed = new Set(servers.map((s) => s[0]));
      for (const id of [...sent.up.keys()]) {
        if (listed.has(id)) continue;
        sent.up.delete(id);
        if (!full) out.serverUpRemoved.push([name, id]);
      }
    }
    if (full || fresh || inflight !== sent.inflight) out.inflight.push([name, inflight]);
    sent.inflight = inflight;
  }
}
