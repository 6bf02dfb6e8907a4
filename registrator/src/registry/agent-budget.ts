// One budget for every call the registrator makes to the agent (registration, deregistration, resync
// and cleanup lists, TTL refresh, maintenance, presence): at most `maxConcurrent` calls in flight, so the
// registrator keeps to its share of the agent's per-client connection limit (Consul's
// limits.http_max_conns_per_client, 200 per client IP, shared by everything on the host).
// An agent over its limit answers 429 and closes (Consul 1.9+), or just closes: both pause every new
// call for a jittered, growing delay and retry the call, a bounded number of times; never a hot loop.
import { backoffDelay, sleep, type BackoffPolicy } from '../../../common/backoff.js';
import type { ServiceRecord } from '../mapping/types.js';
import type { RegisteredService } from '../reconcile.js';
import { RegistryError, type CheckStatus, type Registry } from './registry.js';

export const DEFAULT_AGENT_MAX_CONCURRENT = 8;
const OVER_BUDGET_BACKOFF: BackoffPolicy = { baseMs: 100, maxMs: 5000 };
/** tries of one call that keeps meeting an over-budget answer before its failure is reported */
const OVER_BUDGET_TRIES = 5;

export interface AgentBudgetOptions {
  readonly maxConcurrent: number;
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
  readonly now?: () => number;
}

export interface AgentBudgetStats {
  readonly calls: number;
  readonly inFlight: number;
  readonly maxInFlight: number;
  readonly overBudget: number;
}

export class AgentBudget {
  private readonly max: number;
  private readonly policy: BackoffPolicy;
  private readonly random: () => number;
  private readonly now: () => number;
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly urgentWaiting: Array<() => void> = [];
  private pausedUntil = 0;
  private consecutiveOverBudget = 0;
  private counters = { calls: 0, maxInFlight: 0, overBudget: 0 };

  constructor(opts: AgentBudgetOptions) {
    this.max = Math.max(1, Math.floor(opts.maxConcurrent));
    this.policy = opts.backoff ?? OVER_BUDGET_BACKOFF;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
  }

  get stats(): AgentBudgetStats {
    return { ...this.counters, inFlight: this.inFlight };
  }

  /**
   * Runs fn inside the budget; retries it (bounded) while the agent says it is over budget. `urgent`
   * calls (a drain's maintenance write: traffic still reaches a stopping container) get the next free
   * slot before every call already waiting that is not urgent.
   */
  async run<T>(signal: AbortSignal, fn: () => Promise<T>, opts: { urgent?: boolean } = {}): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.acquire(signal, opts.urgent === true);
      try {
        await this.waitOutPause(signal);
        if (signal.aborted) throw new RegistryError('ERR_REGISTRY_ABORTED', 'aborted while waiting for the agent budget');
        this.counters.calls += 1;
        const result = await fn();
        this.consecutiveOverBudget = 0;
        return result;
      } catch (err) {
        if (!(err instanceof RegistryError && err.overBudget) || signal.aborted) throw err;
        this.counters.overBudget += 1;
        this.pausedUntil = Math.max(this.pausedUntil, this.now() + backoffDelay(this.policy, this.consecutiveOverBudget++, this.random));
        if (attempt >= OVER_BUDGET_TRIES) throw err;
      } finally {
        this.release();
      }
    }
  }

  private async waitOutPause(signal: AbortSignal): Promise<void> {
    for (let wait = this.pausedUntil - this.now(); wait > 0 && !signal.aborted; wait = this.pausedUntil - this.now()) {
      await sleep(wait, signal);
    }
  }

  private acquire(signal: AbortSignal, urgent: boolean): Promise<void> {
    if (this.inFlight < this.max) {
      this.take();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        this.take();
        resolve();
      };
      // An aborted waiter gives up its place but still resolves: run() then sees the abort and throws.
      const queue = urgent ? this.urgentWaiting : this.waiting;
      const onAbort = () => {
        const i = queue.indexOf(grant);
        if (i >= 0) queue.splice(i, 1);
        this.take();
        resolve();
      };
      queue.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private take(): void {
    this.inFlight += 1;
    this.counters.maxInFlight = Math.max(this.counters.maxInFlight, this.inFlight);
  }

  private release(): void {
    this.inFlight -= 1;
    const next = this.urgentWaiting.shift() ?? this.waiting.shift();
    if (next) next();
  }
}

/** A Registry whose every call goes through one AgentBudget. */
export class BudgetedRegistry implements Registry {
  constructor(private readonly inner: Registry, readonly budget: AgentBudget) {}

  ping(signal: AbortSignal): Promise<void> {
    return this.budget.run(signal, () => this.inner.ping(signal));
  }

  register(record: ServiceRecord, signal: AbortSignal): Promise<void> {
    return this.budget.run(signal, () => this.inner.register(record, signal));
  }

  deregister(serviceId: string, signal: AbortSignal): Promise<void> {
    return this.budget.run(signal, () => this.inner.deregister(serviceId, signal));
  }

  listOurs(signal: AbortSignal): Promise<RegisteredService[]> {
    return this.budget.run(signal, () => this.inner.listOurs(signal));
  }

  updateTtlCheck(record: ServiceRecord, checkIndex: number, status: CheckStatus, output: string, signal: AbortSignal): Promise<void> {
    return this.budget.run(signal, () => this.inner.updateTtlCheck(record, checkIndex, status, output, signal));
  }

  setMaintenance(serviceId: string, enable: boolean, reason: string, signal: AbortSignal): Promise<void> {
    // entering maintenance is a drain: every moment it waits, requests still go to a stopping container
    return this.budget.run(signal, () => this.inner.setMaintenance(serviceId, enable, reason, signal), { urgent: enable });
  }

  async heartbeat(signal: AbortSignal): Promise<void> {
    if (this.inner.heartbeat) await this.budget.run(signal, () => this.inner.heartbeat!(signal));
  }

  async withdraw(signal: AbortSignal): Promise<void> {
    if (this.inner.withdraw) await this.budget.run(signal, () => this.inner.withdraw!(signal));
  }

  close(): void {
    this.inner.close();
  }
}
