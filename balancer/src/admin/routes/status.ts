// Operational read-only routes: merged worker status, liveness probe, the current table.
import type { FastifyInstance } from 'fastify';
import type { AdminDeps } from '../deps.js';
import { mergeWorkerStatus } from '../merge-status.js';
import { AdminError, anyObject } from '../route-support.js';
import { mergeSummaries, pageOfNames, parseStatusQuery, summaryOfStatus } from '../status-page.js';
import type { StatusAnswer, StatusQuery } from '../../worker/runtime.js';

export function statusRoutes(app: FastifyInstance, deps: AdminDeps): void {
  // paged: a table of 5,000 upstreams x 10 servers in one answer took the workers longer than the
  // primary waits (2 s); see README "GET /status"
  app.get('/status', { schema: { response: { 200: anyObject } } }, async (req) => {
    const parsed = parseStatusQuery(req.query as Record<string, string | string[] | undefined>);
    if (!parsed.ok) throw new AdminError(400, 'ERR_BAD_QUERY', parsed.error);
    const q = parsed.query;
    const table = deps.holder.current();
    const page = pageOfNames(Object.keys(table.upstreams), q);
    const ask: StatusQuery = q.view === 'summary' ? { summary: true } : { upstreams: page.names };
    const answers = await workerAnswers(deps, ask);
    const head = {
      version: table.version,
      workers: answers.map((r) => ({ workerId: r.workerId, pid: r.pid, generation: r.generation })),
      view: q.view, total: page.total, offset: q.offset, limit: q.limit,
      ...(page.next !== undefined ? { next: page.next } : {}),
      ...(page.notFound.length > 0 ? { notFound: page.notFound } : {}),
    };
    if (q.view === 'summary') {
      const { rows, totals } = mergeSummaries(answers.map((r) => r.answer.summaries ?? []), page.names);
      return { ...head, totals, upstreams: rows };
    }
    return { ...head, upstreams: mergeWorkerStatus(answers.map((r) => r.answer.upstreams ?? [])) };
  });

  app.get('/healthz', { schema: { response: { 200: anyObject } } }, async () => {
    const metrics = deps.metrics?.() ?? {};
    return { status: 'ok', version: deps.holder.current().version, consulReachable: deps.consulReachable?.() ?? null, ...pick(metrics, ['generation', 'workersAlive', 'workersReady']) };
  });

  app.get('/table', { schema: { response: { 200: anyObject } } }, async () => {
    const t = deps.holder.current();
    return { version: t.version, upstreams: t.upstreams, routes: t.routes, adminUpstreams: Object.keys(deps.holder.adminUpstreams()).sort(), warnings: deps.holder.warnings() };
  });
}

type Answered = { workerId: number; pid?: number; generation: number; answer: StatusAnswer };

/** The workers' answers to one query; a source without statusQuery is asked for its whole status. */
export async function workerAnswers(deps: AdminDeps, query: StatusQuery): Promise<readonly Answered[]> {
  const w = deps.workers;
  if (w === undefined) return [];
  if (w.statusQuery !== undefined) return w.statusQuery(query);
  const wanted = query.upstreams === undefined ? undefined : new Set(query.upstreams);
  return (await w.status()).map((r) => ({
    workerId: r.workerId, pid: r.pid, generation: r.generation,
    answer: {
      ...(wanted !== undefined ? { upstreams: r.upstreams.filter((u) => wanted.has(u.name)) } : {}),
      ...(query.summary === true ? { summaries: r.upstreams.map(summaryOfStatus) } : {}),
      // every server, resting or not: what a resting one would be filled in with is what it says
      ...(query.notable === true ? { notable: [...r.upstreams] } : {}),
      ...(query.scripts === true && r.scripts !== undefined ? { scripts: [...r.scripts] } : {}),
    },
  }));
}

function pick(o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (Object.hasOwn(o, k)) out[k] = o[k];
  return out;
}
