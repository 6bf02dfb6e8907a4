// The live dashboard: GET / and /dashboard serve the page (it holds no data, so it is public: the
// page itself asks for the token), /dashboard/state one JSON state, /dashboard/events a Server-Sent
// Events stream (`state` every second and at once after a table change, `diff` per table change).
// The data routes sit behind the admin API's token and Host/Origin rules like every other route.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { DashboardFeed } from '../../metrics/dashboard-feed.js';
import { DASHBOARD_HTML } from '../dashboard-page.js';
import type { AdminDeps } from '../deps.js';
import { mergeWorkerStatus } from '../merge-status.js';

/** Paths that answer without the admin token (the page only; its data needs the token). */
export const PUBLIC_DASHBOARD_PATHS: ReadonlySet<string> = new Set(['/', '/dashboard']);

export function dashboardRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const feed = dashboardFeedFor(deps);
  const streams = new Set<{ end: () => void }>();
  const page = async (_req: unknown, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('x-frame-options', 'DENY').send(DASHBOARD_HTML);
  app.get('/', page);
  app.get('/dashboard', page);

  app.get('/dashboard/state', async () => feed.state());

  app.get('/dashboard/events', (_req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    res.write(': dashboard stream\n\n');
    const off = feed.listen((event, data) => {
      if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    });
    const stream = {
      end: () => {
        off();
        streams.delete(stream);
        if (!res.writableEnded) res.end();
      },
    };
    streams.add(stream);
    // the response's close (not the request's: that fires once a GET's empty body is read)
    res.on('close', stream.end);
    res.on('error', stream.end);
  });

  // open streams would keep the admin server from closing
  app.addHook('preClose', async () => {
    for (const s of [...streams]) s.end();
    feed.close();
  });
}

function dashboardFeedFor(deps: AdminDeps): DashboardFeed {
  return new DashboardFeed({
    mode: deps.mode ?? 'dynamic',
    table: () => deps.holder.current(),
    snapshot: () => deps.holder.currentSnapshot(),
    onTableChange: (l) => deps.holder.subscribe(l),
    health: async () => mergeWorkerStatus((deps.workers ? await deps.workers.status() : []).map((r) => r.upstreams)),
    workers: () => {
      const m = deps.metrics?.() ?? {};
      const n = (k: string) => (typeof m[k] === 'number' ? (m[k] as number) : 0);
      return { generation: n('generation'), workersAlive: n('workersAlive'), workersReady: n('workersReady'), restarts: n('restarts') };
    },
    consulEnabled: deps.consulEnabled ?? deps.consulReachable !== undefined,
    consulReachable: () => deps.consulReachable?.(),
    metrics: deps.balancerMetrics,
  });
}
