// The admin API (fastify). buildAdminApp() returns the app and never listens: main.ts listens, tests
// use app.inject(). dyups-compatible routes answer in dyups' plain text, or in JSON when the client
// asks for it (Accept: application/json). Errors are always JSON {error: code, message}.
//
// This file holds what applies to every route (body parsers, errors, authentication); the routes
// live in routes/<topic>.ts, each `(app, deps) => void`, registered below with one line each.
import { timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { ServerListError } from '../routing/server-list.js';
import { browserRequestProblem } from './browser-guard.js';
import type { AdminDeps } from './deps.js';
import { AdminError } from './route-support.js';
import { dashboardRoutes, PUBLIC_DASHBOARD_PATHS } from './routes/dashboard.js';
import { metricsRoutes } from './routes/metrics.js';
import { policyRoutes } from './routes/policy.js';
import { scriptRoutes } from './routes/scripts.js';
import { statusRoutes } from './routes/status.js';
import { upstreamRoutes } from './routes/upstreams.js';
import { certRoutes } from './routes/certs.js';

export type { AdminDeps, AdminRoutes, WorkerStatusSource } from './deps.js';

export function buildAdminApp(deps: AdminDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });

  // dyups clients send `curl -d 'server ...'` (form-urlencoded) or text/plain; both are taken as text.
  app.addContentTypeParser(['application/x-www-form-urlencoded', 'text/*'], { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, (body as string).length === 0 ? undefined : JSON.parse(body as string));
    } catch (err) {
      done(new AdminError(400, 'ERR_BAD_JSON', `body is not valid JSON: ${(err as Error).message}`), undefined);
    }
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, _req, reply) => {
    if (err instanceof AdminError) return reply.code(err.statusCode).send({ error: err.code, message: err.message });
    if (err instanceof ServerListError) return reply.code(400).send({ error: err.code, message: err.message });
    if (err.validation) return reply.code(400).send({ error: 'ERR_VALIDATION', message: err.message });
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) deps.logger.error({ err }, 'admin request failed');
    return reply.code(status).send({ error: err.code ?? (status === 500 ? 'ERR_INTERNAL' : 'ERR_BAD_REQUEST'), message: err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: 'ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  // before authentication: a browser-borne request is refused even with a token
  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/healthz') return;
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(',') : v;
    };
    const problem = browserRequestProblem(
      { host: header('host'), origin: header('origin'), secFetchSite: header('sec-fetch-site')},
      { allowedHosts: deps.allowedHosts, listenHost: deps.listenHost },
    );
    if (problem) return reply.code(403).send({ error: 'ERR_BROWSER_REQUEST', message: problem });
  });

  if (deps.token) {
    const expected = Buffer.from(`Bearer ${deps.token}`);
    app.addHook('onRequest', async (req, reply) => {
      if (req.url === '/healthz') return; // probes stay unauthenticated; /healthz reveals no upstreams
      if (req.method === 'GET' && PUBLIC_DASHBOARD_PATHS.has(req.url.split('?')[0])) return; // the page holds no data; it asks for the token
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
        reply.header('www-authenticate', 'Bearer');
        return reply.code(401).send({ error: 'ERR_UNAUTHORIZED', message: 'missing or wrong bearer token' });
      }
    });
  }

  // one line per route file
  const routes = app as unknown as FastifyInstance;
  upstreamRoutes(routes, deps);
  statusRoutes(routes, deps);
  metricsRoutes(routes, deps);
  certRoutes(routes, deps);
  policyRoutes(routes, deps);
  dashboardRoutes(routes, deps);
  scriptRoutes(routes, deps);

  return routes;
}
