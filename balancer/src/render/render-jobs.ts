// The generic `--render <template>:<output>` + `--reload-command` pipeline, usable beside any mode
// (dynamic, reload) and standalone (render/cli.ts): it is what replaces consul-template in front of
// nginx or haproxy.
import type pino from 'pino';
import type { ConsulEndpoint } from '../discovery/blocking-query.js';
import type { ConsulBudget } from '../discovery/consul-budget.js';
import type { ConsulWatchDesign } from '../config.js';
import type { WaitSpec } from './quiescence.js';
import { loadTemplateJob, startRenderer, type CycleReport, type RendererHandle, type TemplateJob } from './renderer.js';

export interface RenderJobsOptions {
  readonly consul: {
    readonly baseUrl: string; readonly token?: string; readonly waitMs?: number; readonly minQueryIntervalMs?: number;
    readonly debounceMs?: number; readonly maxConns?: number; readonly stale?: boolean; readonly maxBodyBytes?: number; readonly resyncMs?: number;
    /** --consul-watch: how the shared catalog watch follows Consul (default index) */
    readonly watch?: ConsulWatchDesign;
    /** --consul-ca PEM (the per-service sessions; the budget's pool has it already) */
    readonly ca?: string;
  };
  /** the Consul connection budget to share (the primary's); default: one of consul.maxConns of our own */
  readonly budget?: ConsulBudget;
  readonly renders: readonly { readonly template: string; readonly output: string }[];
  readonly reloadCommand?: string;
  readonly wait?: WaitSpec;
  readonly commandTimeoutMs?: number;
  readonly logger: pino.Logger;
  readonly signal: AbortSignal;
  /** jobs added before the --render ones (reload mode adds the balancer's own config) */
  readonly extraJobs?: readonly TemplateJob[];
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly onCycle?: (report: CycleReport) => void;
}

export function consulEndpoint(consul: RenderJobsOptions['consul']): ConsulEndpoint {
  return { baseUrl: consul.baseUrl, token: consul.token, stale: consul.stale, maxBodyBytes: consul.maxBodyBytes };
}

export async function startRenderJobs(opts: RenderJobsOptions): Promise<RendererHandle> {
  const jobs: TemplateJob[] = [...(opts.extraJobs ?? [])];
  for (const r of opts.renders) jobs.push(await loadTemplateJob(r.template, r.output));
  return startRenderer({
    jobs,
    endpoint: consulEndpoint(opts.consul),
    logger: opts.logger,
    signal: opts.signal,
    wait: opts.wait,
    reloadCommand: opts.reloadCommand,
    commandTimeoutMs: opts.commandTimeoutMs,
    env: opts.env,
    onCycle: opts.onCycle,
    // one watch set for every template, on the budget (no connection per dependency)
    budget: opts.budget,
    discovery: { maxConns: opts.consul.maxConns, debounceMs: opts.consul.debounceMs, resyncMs: opts.consul.resyncMs, watch: opts.consul.watch, ca: opts.consul.ca },
    watch: {
      ...(opts.consul.waitMs !== undefined ? { blockingWaitMs: opts.consul.waitMs } : {}),
      ...(opts.consul.minQueryIntervalMs !== undefined ? { minIntervalMs: opts.consul.minQueryIntervalMs } : {}),
    },
  });
}
