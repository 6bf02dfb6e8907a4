// Active health checks once per host, not once per worker: the primary probes each server once per
// interval (ActiveChecker, deduplicated by server and check), keeps rise/fall here, and broadcasts only
// state changes to the workers, which serve them through PeerHealth.setSharedActive. A new worker gets
// the current states with its first message. Passive health stays per worker (it is per-request data),
// but an ejection one worker decides is relayed to the others (see relayEjection).
import type pino from 'pino';
import type { ActiveCheckSpec, RouteTable, UpstreamSpec } from '../routing/types.js';
import { ActiveChecker, namesToApply, type AppliedChange } from './active-checker.js';
import { upstreamOf } from '../routing/table-upstreams.js';
import { RiseFall } from './rise-fall.js';

export interface ActiveStateChange {
  readonly id: string;
  readonly up: boolean;
  /** consecutive results of the current run */
  readonly consecutive: number;
  readonly error?: string;
}

export interface SharedActiveCheckerOptions {
  readonly logger: pino.Logger;
  /** called with the state changes of one tick (coalesced) */
  readonly broadcast: (changes: readonly ActiveStateChange[]) => void;
  readonly now?: () => number;
  readonly random?: () => number;
  /** --upstream-ca's PEM (check=grpc over TLS) */
  readonly upstreamCa?: string;
}

interface Tracked {
  rf: RiseFall;
  spec: ActiveCheckSpec;
  error?: string;
}

export class SharedActiveChecker {
  readonly #checker: ActiveChecker;
  readonly #tracked = new Map<string, Tracked>();
  /** server id -> the upstreams listing it, with their check, and the first of them by name (whose check counts) */
  readonly #owners = new Map<string, { readonly specs: Map<string, ActiveCheckSpec>; first: string | undefined }>();
  /** the spec of each upstream with a check, as last applied */
  readonly #applied = new Map<string, UpstreamSpec>();
  #last: RouteTable | undefined;
  readonly #opts: SharedActiveCheckerOptions;
  #pending = new Map<string, ActiveStateChange>();
  #flush: NodeJS.Immediate | undefined;
  #probes = 0;

  constructor(opts: SharedActiveCheckerOptions) {
    this.#opts = opts;
    this.#checker = new ActiveChecker({
      logger: opts.logger,
      now: opts.now,
      random: opts.random,
      upstreamCa: opts.upstreamCa,
      sink: { onActiveResult: (id, ok, _now, error) => this.#onResult(id, ok, error) },
    });
  }

  /**
   * Follow a table: probes start/stop per server; rise/fall state of kept servers is kept. With
   * `change` (from the table applied last, e.g. the holder's TableChange), only the upstreams it
   * names are looked at: a change to one service costs that service's servers.
   */
  apply(table: RouteTable, change?: AppliedChange): void {
    const touched = new Set<string>();
    for (const name of namesToApply(this.#last, table, change)) {
      const next = upstreamOf(table, name);
      this.#update(name, next?.check === undefined ? undefined : next, touched);
    }
    for (const id of touched) this.#settle(id);
    this.#last = table;
    this.#checker.apply(table, change);
  }

  #update(name: string, next: UpstreamSpec | undefined, touched: Set<string>): void {
    const prev = this.#applied.get(name);
    if (prev === next) return;
    if (prev !== undefined) {
      for (const s of prev.servers) {
        const owners = this.#owners.get(s.id);
        if (owners === undefined) continue;
        owners.specs.delete(name);
        // the first owner left: found again when settled (a server listed by many upstreams costs that only then)
        if (owners.first === name) owners.first = undefined;
        touched.add(s.id);
      }
    }
    if (next === undefined || next.check === undefined) {
      this.#applied.delete(name);
      return;
    }
    this.#applied.set(name, next);
    for (const s of next.servers) {
      let owners = this.#owners.get(s.id);
      if (owners === undefined) this.#owners.set(s.id, (owners = { specs: new Map(), first: name }));
      owners.specs.set(name, next.check);
      if (owners.first !== undefined && name < owners.first) owners.first = name;
      touched.add(s.id);
    }
  }

  /** One server after its upstreams changed: tracked while one lists it, with the check of the first by name. */
  #settle(id: string): void {
    const owners = this.#owners.get(id);
    if (owners === undefined || owners.specs.size === 0) {
      this.#owners.delete(id);
      this.#tracked.delete(id);
      return;
    }
    if (owners.first === undefined) for (const name of owners.specs.keys()) if (owners.first === undefined || name < owners.first) owners.first = name;
    const spec = owners.specs.get(owners.first!)!;
    const t = this.#tracked.get(id);
    // a new server starts up (as PeerHealth does): traffic is not blocked until a check fails
    if (!t) this.#tracked.set(id, { rf: new RiseFall(spec.rise, spec.fall, true), spec });
    else {
      if (t.spec.rise !== spec.rise || t.spec.fall !== spec.fall) t.rf = new RiseFall(spec.rise, spec.fall, t.rf.up);
      t.spec = spec;
    }
  }

  /** Every server's current state (a new worker's starting point). */
  states(): ActiveStateChange[] {
    return [...this.#tracked].map(([id, t]) => ({ id, up: t.rf.up, consecutive: t.rf.up ? t.rf.successes : t.rf.failures, ...(t.error ? { error: t.error } : {}) }));
  }

  stats(): { servers: number; probes: number; down: number } {
    let down = 0;
    for (const t of this.#tracked.values()) if (!t.rf.up) down++;
    return { servers: this.#tracked.size, probes: this.#probes, down };
  }

  stop(): void {
    this.#checker.stop();
    if (this.#flush) clearImmediate(this.#flush);
  }

  #onResult(id: string, ok: boolean, error: string | undefined): void {
    this.#probes++;
    const t = this.#tracked.get(id);
    if (!t) return;
    if (!ok) t.error = error ?? 'check failed';
    if (!t.rf.observe(ok)) return;
    this.#opts.logger.info({ server: id, up: t.rf.up, error: ok ? undefined : t.error }, t.rf.up ? 'active check: server up' : 'active check: server down');
    this.#pending.set(id, { id, up: t.rf.up, consecutive: t.rf.up ? t.rf.successes : t.rf.failures, ...(ok ? {} : { error: t.error }) });
    this.#flush ??= setImmediate(() => {
      this.#flush = undefined;
      const changes = [...this.#pending.values()];
      this.#pending = new Map();
      try {
        this.#opts.broadcast(changes);
      } catch (err) {
        this.#opts.logger.error({ err }, 'health broadcast failed');
      }
    });
  }
}
