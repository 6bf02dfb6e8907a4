// Active health checks once per host, not once per worker: the primary probes each server once per
// interval (ActiveChecker, deduplicated by server and check), keeps rise/fall here, and broadcasts only
// state changes to the workers, which serve them through PeerHealth.setSharedActive. A new worker gets
// the current states with its first message. Passive health stays per worker (it is per-request data),
// but an ejection one worker decides is relayed to the others (see relayEjection).
import type pino from 'pino';
import type { ActiveCheckSpec, RouteTable } from '../routing/types.js';
import { ActiveChecker } from './active-checker.js';
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
}

interface Tracked {
  rf: RiseFall;
  spec: ActiveCheckSpec;
  error?: string;
}

export class SharedActiveChecker {
  readonly #checker: ActiveChecker;
  readonly #tracked = new Map<string, Tracked>();
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
      sink: { onActiveResult: (id, ok, _now, error) => this.#onResult(id, ok, error) },
    });
  }

  /** Follow a table: probes start/stop per server; rise/fall state of kept servers is kept. */
  apply(table: RouteTable): void {
    const wanted = new Map<string, ActiveCheckSpec>();
    for (const name of Object.keys(table.upstreams)) {
      const u = table.upstreams[name];
      if (!u.check) continue;
      for (const s of u.servers) if (!wanted.has(s.id)) wanted.set(s.id, u.check);
    }
    for (const id of [...this.#tracked.keys()]) if (!wanted.has(id)) this.#tracked.delete(id);
    for (const [id, spec] of wanted) {
      const t = this.#tracked.get(id);
      // a new server starts up (as PeerHealth does): traffic is not blocked until a check fails
      if (!t) this.#tracked.set(id, { rf: new RiseFall(spec.rise, spec.fall, true), spec });
      else if (t.spec.rise !== spec.rise || t.spec.fall !== spec.fall) t.rf = new RiseFall(spec.rise, spec.fall, t.rf.up);
      if (t) t.spec = spec;
    }
    this.#checker.apply(table);
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
