// Health and load figures per server id, kept beside the table (never in it): passive ejection,
// active-check rise/fall, peak EWMA latency, in-flight count, last error. Implements the PeerState
// the pickers read. Time always comes in as `now` (ms); nothing here reads a clock.
//
// Keyed by server id ("host:port"): the same instance listed by two upstreams shares one record, since
// health is a property of the instance. A new server whose upstream has an active check starts *up*
// (traffic is not blocked until the first check passes); a failing check takes it out after `fall`
// results. This trades Envoy's "first check before use" for never failing a fresh deploy's traffic.
import type { PeerState } from '../balancing/types.js';
import type { ActiveCheckSpec, RouteTable, ServerSpec, UpstreamSpec } from '../routing/types.js';
import { PassiveHealth } from './passive.js';
import { RiseFall } from './rise-fall.js';
import { upstreamOf } from '../routing/table-upstreams.js';

export interface AttemptResult {
  readonly ok: boolean;
  readonly latencyMs: number;
  readonly error?: string;
}

export interface ActiveStatus {
  readonly up: boolean;
  /** consecutive successful checks */
  readonly successes: number;
  /** consecutive failed checks */
  readonly failures: number;
}

export interface PeerServerStatus {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly backup: boolean;
  /** ok = serving; err = last attempt failed, not ejected; ejected = passive ejection or active check down; down = admin down */
  readonly status: 'ok' | 'err' | 'ejected' | 'down';
  readonly lastError?: string;
  /** consecutive failed attempts (passive) */
  readonly failCount: number;
  /** ms since epoch of the last status change (0 = never changed) */
  readonly lastModified: number;
  /** active check state, null when the upstream has no check (lua-resty-checkups shape) */
  readonly active: ActiveStatus | null;
  /** the same figures in the worker contract's shape */
  readonly activeCheck?: { readonly up: boolean; readonly consecutive: number; readonly lastError?: string };
  readonly inflight: number;
  readonly ewmaMs?: number;
}

export interface PeerUpstreamStatus {
  readonly name: string;
  readonly algorithm: string;
  readonly servers: readonly PeerServerStatus[];
}

export interface PeerHealthOptions {
  /** EWMA decay time constant in ms (Finagle's peak EWMA uses 10 s) */
  readonly ewmaDecayMs?: number;
  /** latency sample recorded for a failed attempt when it was faster, so fast failures do not look fast */
  readonly failureLatencyMs?: number;
  /**
   * Active checks run once per host (the primary's SharedActiveChecker): states arrive through
   * setSharedActive instead of onActiveResult.
   */
  readonly sharedActive?: boolean;
  /** a passive ejection this process decided (so the primary can relay it to the other workers) */
  readonly onEjected?: (id: string, forMs: number) => void;
}

/** One server's active state as the shared checker reports it. */
export interface SharedActiveState {
  readonly id: string;
  readonly up: boolean;
  readonly consecutive: number;
  readonly error?: string;
}

type StatusLabel = PeerServerStatus['status'];

const NO_OWNERS: ReadonlySet<string> = new Set();

interface PeerRecord {
  readonly passive: PassiveHealth;
  active: RiseFall | null;
  activeSpec: ActiveCheckSpec | undefined;
  activeError: string | undefined;
  ewma: number | undefined;
  ewmaAt: number;
  inflight: number;
  lastOk: boolean;
  lastError: string | undefined;
  failCount: number;
  label: 'ok' | 'err' | 'ejected';
  lastModified: number;
}

export class PeerHealth implements PeerState {
  private readonly records = new Map<string, PeerRecord>();
  private readonly decayMs: number;
  private readonly failureLatencyMs: number;
  /** the latest `now` seen, for onAttemptStart which has none */
  private lastNow = 0;

  private readonly shared: boolean;
  private readonly onEjected: ((id: string, forMs: number) => void) | undefined;
  /** latest shared states, also for servers not (yet) in the table */
  private readonly sharedStates = new Map<string, SharedActiveState>();
  /** per server ID: the upstreams of the table listing it (what retainChanged keeps up to date) */
  private readonly owners = new Map<string, Set<string>>();
  /** per server ID: the owner whose settings it took at the last retainChanged (see settingsOwner) */
  private readonly chosenOwner = new Map<string, string>();
  /**
   * Server IDs whose in-flight count or up state may have moved since takeGaugeChanges (the metrics
   * report reads only these); undefined until the first call, so nothing is tracked without metrics.
   */
  private gaugeChanged: Set<string> | undefined;
  /** IDs passively ejected at the last takeGaugeChanges: an ejection ends with time, not an event */
  private readonly ejectedWatch = new Set<string>();

  constructor(options: PeerHealthOptions = {}) {
    this.decayMs = options.ewmaDecayMs ?? 10_000;
    this.failureLatencyMs = options.failureLatencyMs ?? 1_000;
    this.shared = options.sharedActive ?? false;
    this.onEjected = options.onEjected;
  }

  /** A state change from the shared active checker. */
  setSharedActive(state: SharedActiveState, now: number = this.lastNow): void {
    this.sharedStates.set(state.id, state);
    const r = this.records.get(state.id);
    if (!r || !r.active) return;
    r.active.force(state.up, state.consecutive);
    if (!state.up) {
      r.activeError = state.error ?? 'check failed';
      r.lastError = r.activeError;
    }
    this.relabel(r, now);
    this.gaugeChanged?.add(state.id);
  }

  /** A passive ejection another worker decided: this one stops sending there too. */
  ejectShared(id: string, forMs: number, now: number = this.lastNow): void {
    const r = this.records.get(id);
    if (!r || !(forMs > 0)) return;
    r.passive.ejectUntil(now + forMs);
    this.relabel(r, now);
    this.gaugeChanged?.add(id);
  }

  isAvailable(server: ServerSpec, now: number): boolean {
    this.lastNow = now;
    const r = this.records.get(server.id);
    if (!r) return true; // unknown server: optimistic, retain() has not seen it yet
    return (r.active === null || r.active.up) && !r.passive.isEjected(now);
  }

  latencyEwma(serverId: string): number | undefined {
    return this.records.get(serverId)?.ewma;
  }

  inflight(serverId: string): number {
    return this.records.get(serverId)?.inflight ?? 0;
  }

  onAttemptStart(id: string, now: number = this.lastNow): void {
    const r = this.records.get(id);
    if (!r) return;
    r.inflight++;
    r.passive.noteAttempt(now);
    this.gaugeChanged?.add(id);
  }

  onAttemptEnd(id: string, result: AttemptResult, now: number): void {
    this.lastNow = now;
    const r = this.records.get(id);
    if (!r) return;
    if (r.inflight > 0) r.inflight--;
    this.gaugeChanged?.add(id);
    const sample = result.ok ? result.latencyMs : Math.max(result.latencyMs, this.failureLatencyMs);
    this.observeLatency(r, Math.max(0, sample), now);
    r.lastOk = result.ok;
    if (result.ok) {
      r.failCount = 0;
      r.passive.recordSuccess(now);
    } else {
      r.failCount++;
      r.lastError = result.error ?? 'failed';
      const wasEjected = r.passive.isEjected(now);
      r.passive.recordFailure(now);
      if (!wasEjected && this.onEjected && r.passive.isEjected(now)) {
        try {
          this.onEjected(id, r.passive.snapshot(now).ejectedUntil - now);
        } catch {
          // relaying is best effort; local ejection already holds
        }
      }
    }
    this.relabel(r, now);
  }

  onActiveResult(id: string, ok: boolean, now: number, error?: string): void {
    if (this.shared) return; // states come from the shared checker
    this.lastNow = now;
    const r = this.records.get(id);
    if (!r || !r.active) return;
    r.active.observe(ok);
    if (!ok) {
      r.activeError = error ?? 'check failed';
      r.lastError = r.activeError;
    }
    this.relabel(r, now);
    this.gaugeChanged?.add(id);
  }

  /**
   * Follows a new table: records of servers no longer in it are dropped, new servers get a record
   * with their settings, servers present in both keep their state (settings updated in place).
   */
  retain(table: RouteTable, now: number = this.lastNow): void {
    const wanted = new Map<string, { server: ServerSpec; check: ActiveCheckSpec | undefined }>();
    this.owners.clear();
    this.chosenOwner.clear();
    for (const name of Object.keys(table.upstreams)) {
      const u = table.upstreams[name];
      for (const s of u.servers) {
        const prev = wanted.get(s.id);
        this.ownerOf(s.id).add(name);
        // a server listed twice takes the check of the first upstream that has one
        if (!prev || (!prev.check && u.check)) wanted.set(s.id, { server: s, check: u.check });
      }
    }
    for (const id of [...this.records.keys()]) if (!wanted.has(id)) this.records.delete(id);
    // a full table: the metrics report compares every upstream anyway (ServerGaugeTracker.tableChanged)
    for (const id of [...this.sharedStates.keys()]) if (!wanted.has(id)) this.sharedStates.delete(id);
    for (const [id, { server, check }] of wanted) this.follow(id, server, check, now);
  }

  /**
   * retain() for a delta: only the servers of the `changed` upstreams (upserted or removed since
   * `prevTable`) are looked at, so the cost follows the change. Returns the IDs of servers no upstream
   * lists any more (their pools can go). A server listed by several upstreams takes its settings and
   * check as retain() does: from the first upstream (by name) that has a check, else the first.
   */
  retainChanged(prevTable: RouteTable, table: RouteTable, changed: ReadonlySet<string>, now: number = this.lastNow): string[] {
    if (this.owners.size === 0 && this.records.size > 0) {
      const before = [...this.records.keys()];
      this.retain(table, now); // owners not built yet (records from elsewhere): one full pass
      return before.filter((id) => !this.records.has(id));
    }
    const affected = new Set<string>();
    for (const name of changed) {
      const before = upstreamOf(prevTable, name);
      for (const s of before?.servers ?? []) {
        this.owners.get(s.id)?.delete(name);
        affected.add(s.id);
      }
    }
    for (const name of changed) {
      const u = upstreamOf(table, name);
      for (const s of u?.servers ?? []) {
        this.ownerOf(s.id).add(name);
        affected.add(s.id);
      }
    }
    const dropped: string[] = [];
    for (const id of affected) {
      const owners = this.owners.get(id);
      if (owners === undefined || owners.size === 0) {
        this.owners.delete(id);
        this.chosenOwner.delete(id);
        if (this.records.delete(id)) dropped.push(id);
        this.sharedStates.delete(id);
        continue;
      }
      const name = this.settingsOwner(id, owners, table, changed);
      const chosen = upstreamOf(table, name)!;
      const server = chosen.servers.find((s) => s.id === id)!;
      this.follow(id, server, chosen.check, now);
    }
    return dropped;
  }

  /**
   * The upstream whose settings a server takes: the first owner by name that has a check, else the
   * first. A server can be listed by thousands of upstreams: the last choice stands unless it changed
   * or a changed owner beats it, so a change costs its own upstreams, not every owner.
   */
  private settingsOwner(id: string, owners: ReadonlySet<string>, table: RouteTable, changed: ReadonlySet<string>): string {
    const better = (a: string, b: string | undefined): boolean => {
      if (b === undefined) return true;
      const ca = upstreamOf(table, a)!.check !== undefined;
      const cb = upstreamOf(table, b)!.check !== undefined;
      return ca !== cb ? ca : a < b;
    };
    const last = this.chosenOwner.get(id);
    let pick: string | undefined;
    if (last !== undefined && owners.has(last) && !changed.has(last)) {
      pick = last;
      for (const name of changed) if (owners.has(name) && better(name, pick)) pick = name;
    } else {
      for (const name of owners) if (better(name, pick)) pick = name;
    }
    this.chosenOwner.set(id, pick!);
    return pick!;
  }

  private ownerOf(id: string): Set<string> {
    let set = this.owners.get(id);
    if (set === undefined) this.owners.set(id, (set = new Set()));
    return set;
  }

  /** Creates or updates one server's record. */
  private follow(id: string, server: ServerSpec, check: ActiveCheckSpec | undefined, now: number): void {
    let r = this.records.get(id);
    // new settings can change an existing server's state (max_fails 0, a new rise/fall); a new
    // server is in a changed upstream, which the metrics report reads whole anyway
    const before = r === undefined ? undefined : this.label(r, now);
    if (!r) {
      r = {
        passive: new PassiveHealth(server.maxFails, server.failTimeoutMs),
        active: null,
        activeSpec: undefined,
        activeError: undefined,
        ewma: undefined,
        ewmaAt: now,
        inflight: 0,
        lastOk: true,
        lastError: undefined,
        failCount: 0,
        label: 'ok',
        lastModified: now,
      };
      this.records.set(id, r);
    } else {
      r.passive.reconfigure(server.maxFails, server.failTimeoutMs);
    }
    if (!check) {
      r.active = null;
      r.activeSpec = undefined;
    } else if (!r.active || !r.activeSpec || r.activeSpec.rise !== check.rise || r.activeSpec.fall !== check.fall) {
      r.active = new RiseFall(check.rise, check.fall, r.active?.up ?? true);
      const known = this.shared ? this.sharedStates.get(id) : undefined;
      if (known) r.active.force(known.up, known.consecutive);
    }
    r.activeSpec = check;
    // not marked for every follow: a server listed by thousands of upstreams would make the next
    // report read all of them for a change to one
    if (before !== undefined && before !== this.label(r, now)) this.gaugeChanged?.add(id);
  }

  /**
   * The server IDs whose in-flight count or up state may have changed since the previous call (the
   * first call starts the tracking and returns none: its caller reads everything once). Servers
   * passively ejected are returned at every call until the ejection ends, since that happens with
   * time. Costs what changed, never a pass over every server.
   */
  takeGaugeChanges(now: number = this.lastNow): string[] {
    const changed = this.gaugeChanged;
    if (changed === undefined) {
      this.gaugeChanged = new Set();
      return [];
    }
    for (const id of this.ejectedWatch) changed.add(id);
    const out = [...changed];
    changed.clear();
    for (const id of out) {
      if (this.records.get(id)?.passive.isEjected(now) === true) this.ejectedWatch.add(id);
      else this.ejectedWatch.delete(id);
    }
    return out;
  }

  /** 1 when the server takes traffic (status ok or err), 0 when ejected or marked down. */
  upOf(s: ServerSpec, now: number): number {
    if (s.down) return 0;
    const r = this.records.get(s.id);
    return r === undefined || this.label(r, now) !== 'ejected' ? 1 : 0;
  }

  /** The upstreams of the current table listing this server ID. */
  ownersOf(id: string): ReadonlySet<string> {
    return this.owners.get(id) ?? NO_OWNERS;
  }

  status(table: RouteTable, now: number): PeerUpstreamStatus[] {
    return Object.keys(table.upstreams).sort().map((name) => {
      const u = table.upstreams[name];
      return { name, algorithm: u.algorithm, servers: u.servers.map((s) => this.serverStatus(s, now)) };
    });
  }

  /** The status of the named upstreams only (those the table has), in the order given. */
  statusOf(table: RouteTable, names: Iterable<string>, now: number): PeerUpstreamStatus[] {
    const out: PeerUpstreamStatus[] = [];
    for (const name of names) {
      if (!Object.hasOwn(table.upstreams, name)) continue;
      const u = table.upstreams[name];
      out.push({ name, algorithm: u.algorithm, servers: u.servers.map((s) => this.serverStatus(s, now)) });
    }
    return out;
  }

  /**
   * The status of the servers not at rest, per upstream (upstreams with none are left out). At rest:
   * status ok, no last error, no failure counted, nothing in flight, an active check (if and only if
   * the upstream has one) up with no error: a server's status then says only that, so a reader can
   * fill it in (admin/routes/dashboard.ts). One pass without allocation for the resting ones.
   */
  notable(table: RouteTable, now: number): PeerUpstreamStatus[] {
    const out: PeerUpstreamStatus[] = [];
    for (const name of Object.keys(table.upstreams)) {
      const u = table.upstreams[name];
      let servers: PeerServerStatus[] | undefined;
      for (const s of u.servers) {
        if (this.atRest(s, u.check !== undefined, now)) continue;
        (servers ??= []).push(this.serverStatus(s, now));
      }
      if (servers !== undefined) out.push({ name, algorithm: u.algorithm, servers });
    }
    return out;
  }

  private atRest(s: ServerSpec, checked: boolean, now: number): boolean {
    const r = this.records.get(s.id);
    if (s.down || r === undefined) return false;
    if (r.lastError !== undefined || r.failCount > 0 || r.inflight > 0) return false;
    if ((r.active !== null) !== checked) return false;
    if (r.active !== null && (!r.active.up || r.activeError !== undefined)) return false;
    return this.label(r, now) === 'ok';
  }

  /** One upstream in a few numbers, without building a status object per server. */
  summarize(u: UpstreamSpec, now: number): { servers: number; inflight: number; notOk: [string, 'err' | 'ejected' | 'down'][] } {
    let inflight = 0;
    const notOk: [string, 'err' | 'ejected' | 'down'][] = [];
    for (const s of u.servers) {
      const r = this.records.get(s.id);
      if (r !== undefined) inflight += r.inflight;
      const label: StatusLabel = s.down ? 'down' : r === undefined ? 'ok' : this.label(r, now);
      if (label !== 'ok') notOk.push([s.id, label]);
    }
    return { servers: u.servers.length, inflight, notOk };
  }

  // Built key by key in one order (as the spread form did) rather than with object spreads: those
  // cost ~10 µs a server, and a whole status of 50,000 servers took most of a second.
  private serverStatus(s: ServerSpec, now: number): PeerServerStatus {
    const r = this.records.get(s.id);
    if (!r) {
      return { id: s.id, host: s.host, port: s.port, weight: s.weight, backup: s.backup, status: s.down ? 'down' : 'ok', failCount: 0, lastModified: 0, active: null, inflight: 0 };
    }
    const out: { -readonly [K in keyof PeerServerStatus]: PeerServerStatus[K] } = {
      id: s.id, host: s.host, port: s.port, weight: s.weight, backup: s.backup, status: s.down ? 'down' : this.label(r, now),
    } as PeerServerStatus;
    if (r.lastError !== undefined) out.lastError = r.lastError;
    out.failCount = r.failCount;
    out.lastModified = r.lastModified;
    const a = r.active;
    out.active = a ? { up: a.up, successes: a.successes, failures: a.failures } : null;
    if (a) {
      out.activeCheck = r.activeError !== undefined
        ? { up: a.up, consecutive: a.up ? a.successes : a.failures, lastError: r.activeError }
        : { up: a.up, consecutive: a.up ? a.successes : a.failures };
    }
    out.inflight = r.inflight;
    if (r.ewma !== undefined) out.ewmaMs = Math.round(r.ewma * 1000) / 1000;
    return out;
  }

  private label(r: PeerRecord, now: number): 'ok' | 'err' | 'ejected' {
    if ((r.active && !r.active.up) || r.passive.isEjected(now)) return 'ejected';
    return r.lastOk ? 'ok' : 'err';
  }

  private relabel(r: PeerRecord, now: number): void {
    const label = this.label(r, now);
    if (label !== r.label) {
      r.label = label;
      r.lastModified = now;
    }
  }

  /** Peak EWMA: a slower sample is taken at once, faster ones pull the figure down with time decay. */
  private observeLatency(r: PeerRecord, sample: number, now: number): void {
    if (r.ewma === undefined || sample > r.ewma) {
      r.ewma = sample;
    } else {
      const elapsed = Math.max(0, now - r.ewmaAt);
      const w = Math.exp(-elapsed / this.decayMs);
      r.ewma = r.ewma * w + sample * (1 - w);
    }
    r.ewmaAt = now;
  }
}
