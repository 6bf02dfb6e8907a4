// The admin API (fastify). buildAdminApp() returns the app and never listens: main.ts listens, tests
// use app.inject(). dyups-compatible routes answer in dyups' plain text, or in JSON when the client
// asks for it (Accept: application/json). Errors are always JSON {error: code, message}.
//
// Precedence: an upstream set here replaces a Consul service of the same name (servers and options)
// until it is deleted here; Consul's own upstreams cannot be deleted through the API.
import { timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type pino from 'pino';
import { adminUpstream, parseDyupsServers, parseJsonServers, ServerListError, type ServerInput } from '../routing/server-list.js';
import type { TableHolder } from '../routing/table-holder.js';
import { parseHashKey, type TableDefaults } from '../routing/tag-options.js';
import { ALGORITHMS, type Algorithm, type HashKey, type UpstreamSpec } from '../routing/types.js';
import type { UpstreamStatus } from '../worker/runtime.js';
import { dyupsDetail, dyupsList, dyupsUpstream, upstreamJson } from './dyups-text.js';
import { mergeWorkerStatus } from './merge-status.js';

export interface WorkerStatusSource {
  status(): Promise<readonly { workerId: number; pid?: number; generation: number; upstreams: readonly UpstreamStatus[] }[]>;
}

export interface AdminDeps {
  readonly holder: TableHolder;
  readonly defaults: TableDefaults;
  readonly logger: pino.Logger;
  readonly workers?: WorkerStatusSource;
  /** bearer token; undefined = no authentication */
  readonly token?: string;
  /** extra figures for /healthz and /metrics (supervisor, discovery, dump) */
  readonly metrics?: () => Record<string, unknown>;
  /** false while Consul is unreachable (reported, never fails /healthz: the last table still serves) */
  readonly consulReachable?: () => boolean | undefined;
  /**
   * Resolves once the workers serve the given table version, so a successful POST/DELETE means
   * "live everywhere" as with dyups; absent = answer right after the table swap in the primary.
   */
  readonly applied?: (version: string) => Promise<boolean>;
  /** set when upstreams cannot be changed here (reload mode: the rendered config is the source) */
  readonly readOnlyReason?: string;
}

const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
} as const;
const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: NAME_PATTERN } },
  required: ['name'],
} as const;
const formatQuery = {
  type: 'object',
  properties: { format: { type: 'string', enum: ['text', 'json'] } },
  additionalProperties: false,
} as const;
const anyObject = { type: 'object', additionalProperties: true } as const;

const NOT_LIVE_TEXT = 'accepted: not yet confirmed by every worker';

class AdminError extends Error {
  constructor(readonly statusCode: number, readonly code: string, message: string) {
    super(message);
  }
}

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

  if (deps.token) {
    const expected = Buffer.from(`Bearer ${deps.token}`);
    app.addHook('onRequest', async (req, reply) => {
      if (req.url === '/healthz') return; // probes stay unauthenticated; /healthz reveals no upstreams
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
        reply.header('www-authenticate', 'Bearer');
        return reply.code(401).send({ error: 'ERR_UNAUTHORIZED', message: 'missing or wrong bearer token' });
      }
    });
  }

  const wantsJson = (req: FastifyRequest): boolean => {
    const q = req.query as { format?: string } | undefined;
    if (q?.format) return q.format === 'json';
    return (req.headers.accept ?? '').includes('application/json');
  };
  const text = (reply: FastifyReply, body: string) => reply.type('text/plain; charset=utf-8').send(body);
  const upstreamsSorted = (): UpstreamSpec[] => {
    const ups = deps.holder.current().upstreams;
    return Object.keys(ups).sort().map((n) => ups[n]);
  };
  const lookup = (name: string): UpstreamSpec => {
    const u = deps.holder.current().upstreams[name];
    if (!u) throw new AdminError(404, 'ERR_UNKNOWN_UPSTREAM', `upstream "${name}" does not exist`);
    return u;
  };

  app.get('/list', {
    schema: { querystring: formatQuery },
  }, async (req, reply) => {
    const names = upstreamsSorted().map((u) => u.name);
    if (wantsJson(req)) return { upstreams: names };
    return text(reply, dyupsList(names));
  });

  app.get('/detail', { schema: { querystring: formatQuery } }, async (req, reply) => {
    const ups = upstreamsSorted();
    if (wantsJson(req)) return { upstreams: ups.map(upstreamJson) };
    return text(reply, dyupsDetail(ups));
  });

  app.get('/upstream/:name', { schema: { params: nameParams, querystring: formatQuery, response: { 404: errorSchema } } }, async (req, reply) => {
    const u = lookup((req.params as { name: string }).name);
    if (wantsJson(req)) return upstreamJson(u);
    return text(reply, dyupsUpstream(u));
  });

  app.post('/upstream/:name', {
    schema: {
      params: nameParams,
      querystring: {
        type: 'object',
        properties: { format: { type: 'string', enum: ['text', 'json'] }, lb: { type: 'string', enum: [...ALGORITHMS] }, hash: { type: 'string', maxLength: 200 } },
        additionalProperties: false,
      },
      body: {
        anyOf: [
          { type: 'string', minLength: 1, maxLength: 1024 * 1024 },
          {
            type: 'object',
            properties: {
              servers: { type: 'array', maxItems: 10_000, items: anyObject },
              lb: { type: 'string', enum: [...ALGORITHMS] },
              hash: { type: 'string', maxLength: 200 },
            },
            required: ['servers'],
          },
        ],
      },
      response: { 202: anyObject, 400: errorSchema },
    },
  }, async (req, reply) => {
    if (deps.readOnlyReason) throw new AdminError(409, 'ERR_READ_ONLY', deps.readOnlyReason);
    const { name } = req.params as { name: string };
    const q = req.query as { lb?: Algorithm; hash?: string; format?: string };
    const body = req.body as unknown;
    let inputs: ServerInput[];
    let lb = q.lb;
    let hashText = q.hash;
    if (typeof body === 'string') inputs = parseDyupsServers(body);
    else {
      inputs = parseJsonServers(body);
      const o = body as { lb?: Algorithm; hash?: string };
      lb = o.lb ?? lb;
      hashText = o.hash ?? hashText;
    }
    let hashKey: HashKey | undefined;
    if (hashText !== undefined) {
      hashKey = parseHashKey(hashText);
      if (!hashKey) throw new AdminError(400, 'ERR_BAD_HASH_KEY', `hash "${hashText}": expected header:<name>, cookie:<name>, ip or uri`);
    }
    const spec = adminUpstream(name, inputs, deps.defaults, { algorithm: lb, hashKey });
    const changed = deps.holder.setAdminUpstream(spec);
    const live = await deps.applied?.(deps.holder.current().version);
    deps.logger[live === false ? 'warn' : 'info']({ upstream: name, servers: spec.servers.length, changed, live }, 'admin upstream set');
    // "success" means live in every worker (dyups); a change the workers did not confirm in time is
    // accepted (kept in the table and the dump) but said to be so
    if (live === false) reply.code(202);
    if (wantsJson(req)) return { ok: true, upstream: upstreamJson(deps.holder.current().upstreams[name] ?? spec), version: deps.holder.current().version, changed, live: live !== false };
    return text(reply, live === false ? NOT_LIVE_TEXT : 'success');
  });

  app.delete('/upstream/:name', { schema: { params: nameParams, querystring: formatQuery, response: { 202: anyObject, 404: errorSchema, 409: errorSchema } } }, async (req, reply) => {
    if (deps.readOnlyReason) throw new AdminError(409, 'ERR_READ_ONLY', deps.readOnlyReason);
    const { name } = req.params as { name: string };
    if (!deps.holder.deleteAdminUpstream(name)) {
      if (deps.holder.current().upstreams[name]) {
        throw new AdminError(409, 'ERR_NOT_ADMIN_UPSTREAM', `upstream "${name}" comes from Consul; only upstreams set through this API can be deleted`);
      }
      throw new AdminError(404, 'ERR_UNKNOWN_UPSTREAM', `upstream "${name}" does not exist`);
    }
    const live = await deps.applied?.(deps.holder.current().version);
    deps.logger[live === false ? 'warn' : 'info']({ upstream: name, live }, 'admin upstream deleted');
    if (live === false) reply.code(202);
    if (wantsJson(req)) return { ok: true, version: deps.holder.current().version, live: live !== false };
    return text(reply, live === false ? NOT_LIVE_TEXT : 'success');
  });

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

  app.get('/metrics', { schema: { response: { 200: anyObject } } }, async () => ({ table: deps.holder.stats(), ...(deps.metrics?.() ?? {}) }));

  return app as unknown as FastifyInstance;
}

function pick(o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (k in o) out[k] = o[k];
  return out;
}
