// The consul-template loop: render every template against the latest Consul data, let the render tell
// us what to watch, and on every change (after `wait` quiescence) render again; a complete output
// that validates and differs from the file on disk replaces it atomically, then the reload action
// runs. Any failure keeps the previous file and says why.
import type { ConsulWatchDesign } from '../config.js';
import { readFile } from 'node:fs/promises';
import type pino from 'pino';
import type { ConsulEndpoint } from '../discovery/blocking-query.js';
import { ConsulBudget, DEFAULT_CONSUL_MAX_CONNS } from '../discovery/consul-budget.js';
import { contentHash, fileHash, removeStaleTempFiles, writeFileAtomic } from './atomic-write.js';
import { depKey, type Dependency, type DependencyValue } from './dependencies.js';
import { DependencyWatcher, type DependencyWatcherOptions } from './dependency-watcher.js';
import { Quiescence, REAL_CLOCK, type TimerClock, type WaitSpec } from './quiescence.js';
import { runReloadCommand, type ReloadCommandResult } from './reload-command.js';
import { SharedWatchSet, type DependencySource } from './shared-watch-set.js';
import { compileTemplate, type CompiledTemplate } from './template.js';

export interface TemplateJob {
  /** for logs; defaults to the output path */
  readonly name?: string;
  /** template text (see loadTemplateJob to read it from a file) */
  readonly source: string;
  readonly outputPath: string;
  /** checks the rendered text before it replaces the file; throw to keep the previous file */
  readonly validate?: (content: string) => void | Promise<void>;
  /**
   * Called with each new complete output that validated: on the first one (even when the file on disk
   * already had that content) and on every later change. A throw is logged; it is retried on the next
   * change.
   */
  readonly onApplied?: (content: string, info: { readonly first: boolean; readonly written: boolean; readonly changedAtMs?: number }) => Promise<void>;
  /** shell command run after this template's file was written (consul-template's per-template command) */
  readonly command?: string;
  /** false: a write of this file does not trigger the renderer-wide reloadCommand; default true */
  readonly triggersReloadCommand?: boolean;
}

export interface RendererOptions {
  readonly jobs: readonly TemplateJob[];
  readonly endpoint: ConsulEndpoint;
  readonly logger: pino.Logger;
  readonly signal: AbortSignal;
  /** quiescence for changes after the first complete render (which is never delayed); absent or min 0 = render at once */
  readonly wait?: WaitSpec;
  /** run once per render cycle in which any file was written (after the per-template commands) */
  readonly reloadCommand?: string;
  /** default 30 s */
  readonly commandTimeoutMs?: number;
  /** the environment `env` reads; default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly clock?: TimerClock;
  /**
   * tuning of the Consul watches (blocking wait, rate limit, backoff). A `fetch` double selects the
   * per-dependency watcher (one query per dependency, tests only); otherwise every template shares
   * one watch set on the connection budget.
   */
  readonly watch?: Partial<Omit<DependencyWatcherOptions, 'endpoint' | 'logger' | 'signal' | 'onValue'>>;
  /** the Consul connection budget to share (dynamic discovery's); default: one of `maxConns` of our own */
  readonly budget?: ConsulBudget;
  /** the shared catalog's settings (as --consul-max-conns, --debounce, --consul-resync) */
  readonly discovery?: {
    readonly maxConns?: number; readonly debounceMs?: number; readonly resyncMs?: number;
    /** --consul-watch (default index) and --consul-ca's PEM for its HTTP/2 sessions */
    readonly watch?: ConsulWatchDesign; readonly ca?: string;
  };
  /** observability/test hook: one report per render cycle */
  readonly onCycle?: (report: CycleReport) => void;
}

export interface JobReport {
  readonly name: string;
  readonly outputPath: string;
  readonly state: 'written' | 'unchanged' | 'incomplete' | 'render-error' | 'invalid' | 'write-error';
  readonly error?: string;
  readonly missing?: readonly string[];
}

export interface CycleReport {
  readonly seq: number;
  readonly jobs: readonly JobReport[];
  readonly commands: readonly ReloadCommandResult[];
  readonly durationMs: number;
}

export interface RendererHandle {
  /** resolves after the first cycle in which every template rendered completely (rejects on abort before) */
  readonly firstComplete: Promise<void>;
  /** keys of the Consul dependencies currently watched */
  watching(): string[];
  /** the shared catalog's figures (requests, reads, budget); undefined with the per-dependency watcher */
  catalogStats(): ReturnType<SharedWatchSet['catalogStats']>;
  /** stop watching; resolves when the in-progress cycle (if any) has finished */
  stop(): Promise<void>;
}

interface JobState {
  readonly job: TemplateJob;
  readonly name: string;
  readonly template: CompiledTemplate;
  diskHash: string | undefined;
  appliedHash: string | undefined;
  complete: boolean;
  /** the last render's warnings, joined: logged again only when they change */
  warningsSeen?: string;
}

export class RendererConfigError extends Error {
  readonly code = 'ERR_RENDERER_CONFIG';
}

/** Reads a template file into a job; a missing file is a RendererConfigError naming it. */
export async function loadTemplateJob(templatePath: string, outputPath: string, extra: Partial<TemplateJob> = {}): Promise<TemplateJob> {
  let source: string;
  try {
    source = await readFile(templatePath, 'utf8');
  } catch (err) {
    throw new RendererConfigError(`cannot read template ${templatePath}: ${(err as Error).message}`);
  }
  return { name: templatePath, ...extra, source, outputPath };
}

/** Compiles every template (a syntax error throws at once) and starts watching and rendering. */
export async function startRenderer(opts: RendererOptions): Promise<RendererHandle> {
  if (opts.jobs.length === 0) throw new RendererConfigError('no templates to render');
  const log = opts.logger.child({ component: 'renderer' });
  const env = opts.env ?? process.env;
  const states: JobState[] = [];
  for (const job of opts.jobs) {
    const name = job.name ?? job.outputPath;
    const stale = await removeStaleTempFiles(job.outputPath);
    if (stale.length > 0) log.info({ template: name, removed: stale }, 'removed temp files left by a killed writer');
    states.push({ job, name, template: compileTemplate(job.source, name), diskHash: await fileHash(job.outputPath), appliedHash: undefined, complete: false });
  }

  const values = new Map<string, DependencyValue>();
  const stopController = new AbortController();
  const signal = AbortSignal.any([opts.signal, stopController.signal]);
  let seq = 0;
  let running: Promise<void> | undefined;
  let again = false;
  let allCompleteOnce = false;
  let immediateTimer: ReturnType<typeof setTimeout> | undefined;
  /** when the first Consul answer not yet rendered arrived (reload mode's change -> swap latency) */
  let changedAtMs: number | undefined;

  let resolveFirst!: () => void;
  let rejectFirst!: (err: Error) => void;
  const firstComplete = new Promise<void>((res, rej) => {
    resolveFirst = res;
    rejectFirst = rej;
  });
  firstComplete.catch(() => undefined);

  const quiescence = new Quiescence(opts.wait ?? { minMs: 0, maxMs: 0 }, () => schedule(), opts.clock ?? REAL_CLOCK);

  const onValue = (key: string, value: DependencyValue): void => {
    values.set(key, value);
    changedAtMs ??= Date.now();
    // Until every template has rendered once, gather data as fast as it comes so a starting
    // balancer serves at once (consul-template would apply `wait` here too); afterwards every
    // change goes through quiescence.
    if (!allCompleteOnce) scheduleSoon();
    else quiescence.notify();
  };
  const ownBudget = opts.budget === undefined && opts.watch?.fetch === undefined
    ? new ConsulBudget({ maxConns: opts.discovery?.maxConns ?? DEFAULT_CONSUL_MAX_CONNS, ca: opts.discovery?.ca })
    : undefined;
  const budget = opts.budget ?? ownBudget;
  const shared = budget
    ? new SharedWatchSet({
      endpoint: opts.endpoint,
      budget,
      logger: opts.logger,
      signal,
      waitMs: opts.watch?.blockingWaitMs,
      minQueryIntervalMs: opts.watch?.minIntervalMs,
      baseBackoffMs: opts.watch?.baseBackoffMs,
      maxBackoffMs: opts.watch?.maxBackoffMs,
      debounceMs: opts.discovery?.debounceMs,
      resyncMs: opts.discovery?.resyncMs,
      watch: opts.discovery?.watch,
      ca: opts.discovery?.ca,
      onValue,
      onError: opts.watch?.onError,
    })
    : undefined;
  const watcher: DependencySource = shared ?? new DependencyWatcher({ ...opts.watch, endpoint: opts.endpoint, logger: opts.logger, signal, onValue });

  /** Coalesce a burst of first answers into one cycle. */
  function scheduleSoon(): void {
    if (immediateTimer !== undefined) return;
    immediateTimer = setTimeout(() => {
      immediateTimer = undefined;
      schedule();
    }, 0);
  }

  function schedule(): void {
    if (signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await cycle();
        } while (again && !signal.aborted);
      } finally {
        running = undefined;
      }
    })().catch((err: unknown) => log.error({ err }, 'render cycle crashed'));
  }

  async function cycle(): Promise<void> {
    const started = Date.now();
    const changedAt = changedAtMs;
    changedAtMs = undefined;
    const data = { values, env };
    const wanted = new Map<string, Dependency>();
    const reports: JobReport[] = [];
    const commands: ReloadCommandResult[] = [];
    let anyWritten = false;
    for (const st of states) {
      const report = await renderJob(st, data, wanted, changedAt);
      reports.push(report);
      if (report.state === 'written') {
        if (st.job.triggersReloadCommand !== false) anyWritten = true;
        if (st.job.command) commands.push(await runCommand(st.job.command, st.name));
      }
    }
    // Keep the data of dependencies a failed render could not reach: a transient template error
    // must not drop what the next render needs.
    if (reports.some((r) => r.state === 'render-error')) {
      for (const d of watcher.dependencies()) if (!wanted.has(depKey(d))) wanted.set(depKey(d), d);
    }
    watcher.set(wanted.values());
    for (const key of [...values.keys()]) if (!wanted.has(key)) values.delete(key);
    if (anyWritten && opts.reloadCommand) commands.push(await runCommand(opts.reloadCommand, 'reload'));
    const report: CycleReport = { seq: ++seq, jobs: reports, commands, durationMs: Date.now() - started };
    opts.onCycle?.(report);
    if (!allCompleteOnce && states.every((s) => s.complete)) {
      allCompleteOnce = true;
      resolveFirst();
    }
  }

  async function renderJob(st: JobState, data: { values: Map<string, DependencyValue>; env: typeof env }, wanted: Map<string, Dependency>, changedAt: number | undefined): Promise<JobReport> {
    const base = { name: st.name, outputPath: st.job.outputPath };
    let outcome;
    try {
      outcome = st.template.render(data);
    } catch (err) {
      const error = (err as Error).message;
      log.error({ template: st.name, code: (err as { code?: string }).code, err: error }, 'template render failed; keeping the previous file');
      return { ...base, state: 'render-error', error };
    }
    for (const d of outcome.deps) wanted.set(depKey(d), d);
    const seen = outcome.warnings.join('\n');
    if (outcome.complete && seen !== (st.warningsSeen ?? '')) {
      for (const w of outcome.warnings) log.warn({ template: st.name, warning: w }, 'consul value left out of the render');
      st.warningsSeen = seen;
    }
    if (!outcome.complete) {
      const missing = [...outcome.missing.map(depKey), ...outcome.absentKeys.map((k) => `key:${k} (absent)`)];
      log.debug({ template: st.name, missing }, 'waiting for data before writing');
      return { ...base, state: 'incomplete', missing };
    }
    st.complete = true;
    const hash = contentHash(outcome.output);
    if (hash === st.appliedHash && hash === st.diskHash) return { ...base, state: 'unchanged' };
    if (st.job.validate) {
      try {
        await st.job.validate(outcome.output);
      } catch (err) {
        const error = (err as Error).message;
        log.error({ template: st.name, code: (err as { code?: string }).code, err: error }, 'rendered output is invalid; keeping the previous file');
        return { ...base, state: 'invalid', error };
      }
    }
    let written = false;
    if (hash !== st.diskHash) {
      try {
        await writeFileAtomic(st.job.outputPath, outcome.output);
      } catch (err) {
        const error = (err as Error).message;
        log.error({ template: st.name, code: (err as { code?: string }).code, err: error }, 'writing the output failed; previous file kept');
        return { ...base, state: 'write-error', error };
      }
      st.diskHash = hash;
      written = true;
      log.info({ template: st.name, output: st.job.outputPath, hash: hash.slice(0, 12), bytes: Buffer.byteLength(outcome.output) }, 'rendered');
    }
    if (hash !== st.appliedHash) {
      const first = st.appliedHash === undefined;
      if (st.job.onApplied) {
        try {
          await st.job.onApplied(outcome.output, { first, written, changedAtMs: changedAt });
          st.appliedHash = hash;
        } catch (err) {
          log.error({ template: st.name, code: (err as { code?: string }).code, err: (err as Error).message }, 'applying the rendered output failed');
        }
      } else {
        st.appliedHash = hash;
      }
    }
    return { ...base, state: written ? 'written' : 'unchanged' };
  }

  async function runCommand(command: string, what: string): Promise<ReloadCommandResult> {
    const r = await runReloadCommand(command, { timeoutMs: opts.commandTimeoutMs ?? 30_000, signal });
    const fields = { command, for: what, exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, durationMs: r.durationMs, stderr: r.stderr || undefined };
    if (r.exitCode === 0) log.info(fields, 'reload command done');
    else log.error(fields, 'reload command failed');
    return r;
  }

  const onAbort = () => {
    quiescence.cancel();
    if (immediateTimer !== undefined) clearTimeout(immediateTimer);
    watcher.stop();
    if (!allCompleteOnce) rejectFirst(Object.assign(new Error('renderer stopped before the first complete render'), { code: 'ERR_RENDERER_STOPPED' }));
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });

  schedule();

  return {
    firstComplete,
    watching: () => watcher.keys(),
    catalogStats: () => shared?.catalogStats(),
    async stop() {
      stopController.abort();
      await running;
      await shared?.closed();
      await ownBudget?.close();
    },
  };
}
