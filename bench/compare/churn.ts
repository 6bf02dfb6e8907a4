// The churn driver: at a fixed rate, register or deregister one instance of the service through the
// Consul agent API, never leaving fewer than minRegistered. Every probeEveryS one of the adds
// registers a never-used port instead ("probe"), and the time from its registration to the first
// request that port serves is how long traffic takes to follow a Consul change.
import { performance } from 'node:perf_hooks';
import type { BackendPool } from './backend-pool.js';
import type { ConsulAgent } from './consul-agent.js';

export interface ChurnOptions {
  readonly agent: ConsulAgent;
  readonly backends: BackendPool;
  readonly service: string;
  /** reusable backend ports: the changing subset comes from these */
  readonly poolPorts: readonly number[];
  /** fresh ports for probes, each registered at most once */
  readonly probePorts: readonly number[];
  readonly ratePerS: number;
  readonly durationS: number;
  readonly probeEveryS: number;
  readonly probeTimeoutMs: number;
  readonly minRegistered: number;
  readonly seed: number;
}

export interface ProbeResult {
  readonly port: number;
  /** seconds since the churn started */
  readonly atS: number;
  /** ms from the register call to the first request the new instance served; undefined = never */
  readonly followMs?: number;
}

export interface ChurnResult {
  readonly changes: number;
  readonly failedChanges: number;
  readonly lateTicks: number;
  readonly probes: readonly ProbeResult[];
  readonly firstError?: string;
}

export const instanceId = (service: string, port: number): string => `${service}-${port}`;

/** small deterministic PRNG (mulberry32) so two runs churn alike */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Registers the initial subset (deregistering whatever the service had). */
export async function registerInitial(agent: ConsulAgent, service: string, ports: readonly number[]): Promise<void> {
  await agent.deregisterAll(service);
  for (const port of ports) await agent.register(service, instanceId(service, port), port);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runChurn(opts: ChurnOptions, initiallyRegistered: readonly number[]): Promise<ChurnResult> {
  const registered = new Set(initiallyRegistered);
  const random = prng(opts.seed);
  const probes: Promise<ProbeResult>[] = [];
  const outstanding = new Set<number>();
  let probeIndex = 0;
  let changes = 0;
  let failedChanges = 0;
  let lateTicks = 0;
  let firstError: string | undefined;
  if (opts.ratePerS <= 0) return { changes, failedChanges, lateTicks, probes: [] };

  const t0 = performance.now();
  const endAt = t0 + opts.durationS * 1000;
  const tickMs = 1000 / opts.ratePerS;
  const ticks = Math.floor(opts.ratePerS * opts.durationS);
  let nextProbeAt = t0 + Math.min(1000, opts.probeEveryS * 500);

  const change = async (op: 'add' | 'remove', port: number): Promise<void> => {
    try {
      if (op === 'add') await opts.agent.register(opts.service, instanceId(opts.service, port), port);
      else await opts.agent.deregister(instanceId(opts.service, port));
      changes++;
      if (op === 'add') registered.add(port);
      else registered.delete(port);
    } catch (err) {
      failedChanges++;
      firstError ??= (err as Error).message;
    }
  };

  for (let i = 0; i < ticks; i++) {
    const due = t0 + i * tickMs;
    const now = performance.now();
    if (now >= endAt) break;
    if (due > now) await sleep(due - now);
    else if (now - due > tickMs) lateTicks++;

    const tickAt = performance.now();
    if (tickAt >= nextProbeAt && probeIndex < opts.probePorts.length && outstanding.size === 0) {
      const port = opts.probePorts[probeIndex++];
      nextProbeAt = tickAt + opts.probeEveryS * 1000;
      const firstHit = await opts.backends.watchFirstHit(port, opts.probeTimeoutMs);
      const startedAt = performance.timeOrigin + performance.now();
      outstanding.add(port);
      await change('add', port);
      const atS = (tickAt - t0) / 1000;
      probes.push(firstHit().then((hitAt) => {
        outstanding.delete(port);
        return { port, atS, followMs: hitAt === undefined ? undefined : hitAt - startedAt };
      }));
      continue;
    }

    const free = opts.poolPorts.filter((p) => !registered.has(p));
    const removable = [...registered].filter((p) => !outstanding.has(p));
    let op: 'add' | 'remove';
    if (registered.size <= opts.minRegistered || removable.length === 0) op = 'add';
    else if (free.length === 0) op = 'remove';
    else op = random() < 0.5 ? 'add' : 'remove';
    if (op === 'add' && free.length === 0) continue;
    const pick = op === 'add' ? free : removable;
    await change(op, pick[Math.floor(random() * pick.length)]);
  }
  return { changes, failedChanges, lateTicks, probes: await Promise.all(probes), firstError };
}
