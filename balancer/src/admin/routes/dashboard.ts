// The live dashboard: GET / and /dashboard serve the page (it holds no data, so it is public: the
// page itself asks for the token), /dashboard/state one JSON state, /dashboard/events a Server-Sent
// Events stream (`state` every second and at once after a table change, `diff` per table change).
// The data routes sit behind the admin API's token and Host/Origin rules like every other route.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { DashboardFeed } from '../../metrics/dashboard-feed.js';
import { DASHBOARD_HTML } from '../dashboard-page.js';
import type { AdminDeps } from '../deps.js';
import { mergeWorkerStatus, type MergedUpstreamStatus } from '../merge-status.js';
import type { RouteTable } from '../../routing/types.js';
import type { ServerHealthInput } from '../../metrics/dashboard-state.js';
import { workerAnswers } from './status.js';

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
    health: async () => {
      // the servers not at rest only: a whole status of every server each second cost the workers
      // seconds at 50,000 servers; the resting ones are filled in from the table
      const answers = await workerAnswers(deps, { notable: true });
      const merged = mergeWorkerStatus(answers.map((r) => r.answer.notable ?? []));
      return answers.length === 0 ? merged : withRestingServers(merged, deps.holder.current());
    },
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

/**
 * The merged status of the servers not at rest, plus every other server of the table as a resting
 * one reads (PeerHealth.notable): ok, no error, nothing in flight, its active check up. A server
 * listed by the workers but not (yet) by this table keeps what they said.
 */
export function withRestingServers(notable: readonly MergedUpstreamStatus[], table: RouteTable): { name: string; servers: ServerHealthInput[]; panic?: MergedUpstreamStatus['panic'] }[] {
  const byName = new Map(notable.map((u) => [u.name, u]));
  const out: { name: string; servers: ServerHealthInput[]; panic?: MergedUpstreamStatus['panic'] }[] = [];
  for (const name of Object.keys(table.upstreams)) {
    const u = table.upstreams[name];
    const told = byName.get(name);
    byName.delete(name);
    const listed = new Map<string, ServerHealthInput>((told?.servers ?? []).map((s) => [s.id, s]));
    const servers: ServerHealthInput[] = [...listed.values()];
    for (const s of u.servers) {
      if (listed.has(s.id)) continue;
      servers.push(u.check === undefined
        ? { id: s.id, status: s.down ? 'down' : 'ok', failCount: 0, inflight: 0 }
        : { id: s.id, status: s.down ? 'down' : 'ok', failCount: 0, inflight: 0, activeCheck: { up: true, consecutive: 0 } });
    }
    out.push(told?.panic === undefined ? { name, servers } : { name, servers, panic: told.panic });
  }
  for (const u of byName.values()) out.push(u);
  return out;
}
