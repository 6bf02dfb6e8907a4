// Operational read-only routes: merged worker status, liveness probe, the current table.
import type { FastifyInstance } from 'fastify';
import type { AdminDeps } from '../deps.js';
import { mergeWorkerStatus } from '../merge-status.js';
import { anyObject } from '../route-support.js';

export function statusRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.get('/status', { schema: { response: { 200: anyObject } } }, async () => {
    const reports = deps.workers ? await deps.workers.status() : [];
    return {
      version: deps.holder.current().version,
      workers: reports.map((r) => ({ workerId: r.workerId, pid: r.pid, generation: r.generation })),
      upstreams: mergeWorkerStatus(reports.map((r) => r.upstreams)),
    };
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

function pick(o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (Object.hasOwn(o, k)) out[k] = o[k];
  return out;
}
