// `balancer --mode reload`: the nginx + consul-template way, inside the balancer. Every Consul change
// renders templates/balancer.conf.hbs (or --template) to --config-out; a file that parses becomes a
// RouteTable, and the supervisor starts a NEW worker generation with it (then drains the old one).
// Nothing in-process survives a reload, exactly as with nginx: that is the point of the comparison.
// --render/--reload-command jobs run in the same renderer (same watches, same quiescence).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pino from 'pino';
import type { Config } from '../config.js';
import type { ConsulBudget } from '../discovery/consul-budget.js';
import { parseBalancerConf } from '../render/balancer-conf.js';
import { startRenderJobs } from '../render/render-jobs.js';
import type { CycleReport, RendererHandle } from '../render/renderer.js';
import { loadTemplateJob } from '../render/renderer.js';
import { DEFAULT_TABLE_DEFAULTS, type TableDefaults } from '../routing/tag-options.js';
import { tableFromUpstreams } from '../routing/build-table.js';
import type { RouteTable } from '../routing/types.js';
import type { ReloadPhases } from '../cluster/supervisor.js';

/** What reload mode needs from the supervisor (cluster/supervisor.ts implements it). */
export interface ReloadModeSupervisor {
  /** first generation; resolves once it listens */
  start(table: RouteTable): Promise<unknown>;
  /** new generation with the table, waits until it listens, drains the old one; may say where the time went */
  reload(table: RouteTable): Promise<{ readonly phases?: ReloadPhases } | void>;
}

export type ReloadModeConfig = Pick<Config, 'consul' | 'reload'> & Partial<Pick<Config, 'defaultLb' | 'services' | 'passingOnly'>>;

export interface ReloadModeDeps {
  readonly config: ReloadModeConfig;
  readonly supervisor: ReloadModeSupervisor;
  readonly logger: pino.Logger;
  readonly signal: AbortSignal;
  /** the primary's Consul connection budget: the renderer's one watch set runs on it */
  readonly budget?: ConsulBudget;
  /** observability/test hook */
  readonly onCycle?: (report: CycleReport) => void;
  /** observability/test hook: a generation was started (first) or reloaded with this table */
  readonly onGeneration?: (event: { readonly table: RouteTable; readonly first: boolean; readonly durationMs: number; readonly changedAtMs?: number }) => void;
}

export interface ReloadModeHandle {
  /** the rendered balancer config */
  readonly configOut: string;
  /** resolves when the first generation listens; rejects if it could not start */
  readonly ready: Promise<void>;
  /** generations started so far (1 after the first start) */
  generations(): number;
  stop(): Promise<void>;
}

export class ReloadModeError extends Error {
  constructor(readonly code: 'ERR_RELOAD_NEEDS_CONSUL' | 'ERR_RELOAD_TEMPLATE', message: string) {
    super(message);
  }
}

/** templates/balancer.conf.hbs of this package, found from src/ (tsx) or dist/ (compiled). */
export function defaultBalancerTemplate(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'templates', 'balancer.conf.hbs');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new ReloadModeError('ERR_RELOAD_TEMPLATE', 'templates/balancer.conf.hbs not found; pass --template');
}

export async function startReloadMode(deps: ReloadModeDeps): Promise<ReloadModeHandle> {
  const { config, supervisor, signal } = deps;
  const log = deps.logger.child({ component: 'reload-mode' });
  if (!config.consul) throw new ReloadModeError('ERR_RELOAD_NEEDS_CONSUL', 'reload mode renders from Consul: --no-consul is not supported');
  const templatePath = config.reload.template ?? defaultBalancerTemplate();
  const configOut = config.reload.configOut ?? join(os.tmpdir(), `balancer-${process.pid}.conf`);
  const defaults: TableDefaults = { ...DEFAULT_TABLE_DEFAULTS, ...(config.defaultLb ? { algorithm: config.defaultLb } : {}) };
  const allow = config.services ? new Set(config.services) : undefined;
  const toTable = (text: string): RouteTable => {
    const parsed = parseBalancerConf(text, { source: configOut, defaults });
    return allow ? restrict(parsed, allow) : parsed;
  };

  let generations = 0;
  /** version of the table the current generation serves */
  let servingVersion: string | undefined;
  let resolveReady!: () => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => undefined);

  const balancerJob = await loadTemplateJob(templatePath, configOut, {
    name: 'balancer.conf',
    triggersReloadCommand: false,
    // A file that does not parse never replaces the previous one: the running generation keeps serving.
    validate: (text) => void toTable(text),
    onApplied: async (text, info) => {
      const appliedAt = Date.now();
      const table = toTable(text);
      if (table.version === servingVersion) return;
      const first = generations === 0;
      const started = Date.now();
      let phases: ReloadPhases | undefined;
      if (first) await startFirst(table);
      else {
        phases = (await supervisor.reload(table))?.phases;
        generations++;
        servingVersion = table.version;
      }
      // where a change's time went: Consul answer -> rendered, validated and written (renderMs), parse, the generation
      const timings = info.changedAtMs === undefined ? {} : { renderMs: appliedAt - info.changedAtMs, parseMs: started - appliedAt, sinceChangeMs: Date.now() - info.changedAtMs };
      log.info({ ...summary(table), generation: generations, durationMs: Date.now() - started, ...timings, ...(phases ? { phases } : {}) }, first ? 'first generation listening' : 'reloaded: new generation serving, old one draining');
      deps.onGeneration?.({ table, first, durationMs: Date.now() - started, changedAtMs: info.changedAtMs });
    },
  });

  async function startFirst(table: RouteTable): Promise<void> {
    try {
      await supervisor.start(table);
    } catch (err) {
      rejectReady(err as Error);
      throw err;
    }
    generations = 1;
    servingVersion = table.version;
    resolveReady();
  }

  // Like nginx after a restart: the last rendered file serves at once, even with Consul down; the
  // first render replaces it if Consul says otherwise.
  const previous = await readFile(configOut, 'utf8').catch(() => undefined);
  if (previous !== undefined) {
    try {
      const table = toTable(previous);
      const started = Date.now();
      await startFirst(table);
      log.info({ ...summary(table), configOut, durationMs: Date.now() - started }, 'first generation started from the previous rendered config');
      deps.onGeneration?.({ table, first: true, durationMs: Date.now() - started });
    } catch (err) {
      log.warn({ configOut, code: (err as { code?: string }).code, err: (err as Error).message }, 'previous rendered config not usable; waiting for the first render');
      if ((err as { code?: string }).code !== 'ERR_BALANCER_CONF') throw err;
    }
  }

  let renderer: RendererHandle;
  try {
    renderer = await startRenderJobs({
      consul: config.consul,
      renders: config.reload.renders,
      reloadCommand: config.reload.reloadCommand,
      wait: config.reload.wait,
      logger: deps.logger,
      signal,
      extraJobs: [balancerJob],
      budget: deps.budget,
      onCycle: deps.onCycle,
      // --passing-only false lists warning instances too, as dynamic mode does (the template reads it)
      env: config.passingOnly === false ? { ...process.env, BALANCER_HEALTH_FILTER: 'passing,warning' } : process.env,
    });
  } catch (err) {
    throw new ReloadModeError('ERR_RELOAD_TEMPLATE', (err as Error).message);
  }
  signal.addEventListener('abort', () => rejectReady(Object.assign(new Error('reload mode stopped before the first generation started'), { code: 'ERR_RELOAD_STOPPED' })), { once: true });
  log.info({ template: templatePath, configOut, renders: config.reload.renders.length, wait: config.reload.wait }, 'reload mode: rendering from Consul');

  return {
    configOut,
    ready,
    generations: () => generations,
    stop: () => renderer.stop(),
  };
}

function summary(table: RouteTable): { version: string; upstreams: number; servers: number } {
  const servers = Object.values(table.upstreams).reduce((n, u) => n + u.servers.length, 0);
  return { version: table.version, upstreams: Object.keys(table.upstreams).length, servers };
}

/** Keep only allowed upstreams (--services) and the routes pointing at them. */
function restrict(table: RouteTable, allow: ReadonlySet<string>): RouteTable {
  const upstreams = Object.fromEntries(Object.entries(table.upstreams).filter(([name]) => allow.has(name)));
  return tableFromUpstreams(upstreams, table.routes.filter((r) => allow.has(r.upstream)));
}
