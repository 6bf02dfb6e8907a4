// What the primary does for its workers beside publishing tables: answer their ACME HTTP-01 lookups,
// run the active checks once per host and broadcast the states, relay one worker's passive ejection
// to the others.
import type pino from 'pino';
import type { ConsulBudget } from '../../discovery/consul-budget.js';
import { SharedActiveChecker } from '../../health/shared-checker.js';
import type { TableHolder } from '../../routing/table-holder.js';
import { createChallengeLookup, type ChallengeLookupOptions } from '../../tls/acme-challenge.js';
import { challengeRelayServer } from '../../tls/acme-challenge-relay.js';
import type { Supervisor } from '../supervisor.js';
import { demandOverSpan, RATE_SHARE_WINDOW_MS, sharesForWorkers, type DemandReport } from '../../policy/rate-shares.js';

export type WorkerHub = Pick<Supervisor, 'channels' | 'onWorkerInit' | 'onWorkerMessage'>;

/** ACME HTTP-01 lookups of every worker: one KV read each, in the primary's read share */
export function relayAcmeChallenges(workers: WorkerHub, lookup: ChallengeLookupOptions, budget: ConsulBudget | undefined): void {
  const serve = challengeRelayServer(createChallengeLookup({
    ...lookup, dispatcher: budget?.dispatcher, read: budget ? (s, fn) => budget.read(s, fn) : undefined,
  }));
  workers.onWorkerMessage((ch, msg) => {
    if (msg.type === 'acme-challenge') serve(msg, (answer) => ch.send(answer));
  });
}

/** Active checks once per host (one probe per server and interval), following the table's changes. */
export function shareActiveChecks(workers: WorkerHub, holder: TableHolder, logger: pino.Logger, upstreamCa?: string): SharedActiveChecker {
  const checker = new SharedActiveChecker({
    logger: logger.child({ component: 'active-check' }),
    upstreamCa,
    broadcast: (active) => {
      for (const ch of workers.channels()) ch.send({ type: 'health', update: { active } });
    },
  });
  checker.apply(holder.current());
  // only the upstreams the change names: a change costs its own servers
  holder.subscribe((change) => checker.apply(change.table, change));
  // a new or restarted worker starts from the current states (servers default to up)
  workers.onWorkerInit((ch) => {
    const down = checker.states().filter((st) => !st.up);
    if (down.length > 0) ch.send({ type: 'health', update: { active: down } });
  });
  return checker;
}

/** Passive health stays per worker, but an ejection one worker decides reaches the others. */
export function relayEjections(workers: WorkerHub): void {
  workers.onWorkerMessage((from, msg) => {
    if (msg.type !== 'ejected') return;
    for (const ch of workers.channels()) if (ch.workerId !== from.workerId) ch.send({ type: 'health', update: { ejections: [{ id: msg.id, forMs: msg.forMs }] } });
  });
}

/**
 * Rate limits held by the whole balancer (policy/rate-shares.ts): each window, every live worker of
 * any generation gets its share of each key from its demand over the last span. Sends only while
 * reports are in the span, and once more after (back to the default shares).
 */
export function shareRateLimits(workers: WorkerHub, now: () => number = Date.now): () => void {
  /** per worker, its reports of the demand span, oldest first */
  const reports = new Map<number, DemandReport[]>();
  workers.onWorkerMessage((from, msg) => {
    if (msg.type !== 'rate-demand') return;
    let list = reports.get(from.workerId);
    if (list === undefined) reports.set(from.workerId, (list = []));
    list.push({ at: now(), counts: new Map(msg.counts) });
  });
  let live = 0;
  const timer = setInterval(() => {
    const t = now();
    const fresh = new Map<number, Map<string, number>>();
    for (const [id, list] of reports) {
      const { demand, firstInSpan } = demandOverSpan(list, t);
      if (firstInSpan > 0) list.splice(0, firstInSpan);
      if (list.length === 0) reports.delete(id);
      else fresh.set(id, demand);
    }
    const channels = workers.channels();
    // nothing to say: no demand, and the live count the defaults were sent for is unchanged
    if (fresh.size === 0 && channels.length === live) return;
    live = channels.length;
    const shares = sharesForWorkers(channels.map((ch) => ch.workerId), fresh);
    for (const ch of channels) {
      const s = shares.get(ch.workerId);
      if (s !== undefined) ch.send({ type: 'rate-shares', shares: s });
    }
  }, RATE_SHARE_WINDOW_MS);
  timer.unref();
  return () => clearInterval(timer);
}
