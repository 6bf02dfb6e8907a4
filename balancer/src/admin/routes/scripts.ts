// Request scripts: PUT /scripts/<name> uploads (text body = the module, services/timeoutMs/maxFailures
// in the query; or JSON {source, services, timeoutMs, maxFailures}), GET /scripts lists name, version
// hash, load time, bound services and the calls/errors summed over the workers (as Slardar's /lua),
// GET /scripts/<name> adds the source, DELETE /scripts/<name> removes it. A script is checked before
// it enters the table: a syntax error is a 400 naming the line.
// With --scripts-kv (deps.scriptStore) an upload or delete is written to Consul KV first; when that
// write fails the answer is 503 and nothing changed. An upload shadows a KV script of the same name
// (admin wins); a DELETE removes the name from both.
import type { FastifyInstance } from 'fastify';
import { checkScript, ScriptError, SCRIPT_NAME_PATTERN } from '../../scripts/script-source.js';
import type { ScriptSpec } from '../../routing/types.js';
import { workerAnswers } from './status.js';
import type { AdminDeps } from '../deps.js';
import { AdminError, anyObject, errorSchema } from '../route-support.js';

const scriptParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: SCRIPT_NAME_PATTERN } },
  required: ['name'],
} as const;

const uploadQuery = {
  type: 'object',
  properties: {
    services: { type: 'string', maxLength: 4096 },
    timeoutMs: { type: 'string', pattern: '^[0-9]{1,5}$' },
    maxFailures: { type: 'string', pattern: '^[0-9]{1,7}$' },
  },
  additionalProperties: false,
} as const;

const refusalSchema = { ...errorSchema, properties: { ...errorSchema.properties, line: { type: 'integer' } } } as const;

interface Counters { calls: number; errors: number; disabledIn: number; lastError?: string }

export function scriptRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.addContentTypeParser(['application/javascript', 'text/javascript', 'application/ecmascript'], { parseAs: 'string' }, (_req, body, done) => done(null, body));

  const counters = async (): Promise<Map<string, Counters>> => {
    const out = new Map<string, Counters>();
    // the scripts' counts only (a whole status of every server is large at scale)
    const reports = await workerAnswers(deps, { scripts: true });
    for (const r of reports) {
      for (const s of r.answer.scripts ?? []) {
        const key = `${s.name}\u0000${s.version}`;
        const c = out.get(key) ?? { calls: 0, errors: 0, disabledIn: 0 };
        c.calls += s.calls;
        c.errors += s.errors;
        if (s.disabled) c.disabledIn++;
        if (s.lastError !== undefined) c.lastError = s.lastError;
        out.set(key, c);
      }
    }
    return out;
  };
  const view = (s: ScriptSpec, c: Map<string, Counters>, withSource = false) => ({
    name: s.name, version: s.version, loadedAt: s.loadedAt, origin: s.origin ?? 'admin', services: s.services, timeoutMs: s.timeoutMs, maxFailures: s.maxFailures,
    ...(c.get(`${s.name}\u0000${s.version}`) ?? { calls: 0, errors: 0, disabledIn: 0 }),
    ...(withSource ? { source: s.source } : {}),
  });
  const find = (name: string): ScriptSpec => {
    const s = deps.holder.scripts().find((x) => x.name === name);
    if (!s) throw new AdminError(404, 'ERR_UNKNOWN_SCRIPT', `no script named "${name}"`);
    return s;
  };

  const persist = async (write: () => Promise<void> | undefined, name: string): Promise<void> => {
    try {
      await write();
    } catch (err) {
      deps.logger.warn({ script: name, err: (err as Error).message }, 'request script not written to consul kv: nothing changed');
      throw new AdminError(503, 'ERR_SCRIPT_STORE', `${deps.scriptStore?.where ?? 'store'}: ${(err as Error).message}; nothing changed`);
    }
  };

  app.get('/scripts', { schema: { response: { 200: anyObject } } }, async () => {
    const c = await counters();
    const admin = new Set(deps.holder.adminScripts().map((s) => s.name));
    const shadowed = deps.holder.kvScripts().filter((s) => admin.has(s.name)).map((s) => ({ name: s.name, version: s.version }));
    return { scripts: deps.holder.scripts().map((s) => view(s, c)), ...(shadowed.length > 0 ? { kvShadowed: shadowed } : {}) };
  });

  app.get('/scripts/:name', { schema: { params: scriptParams, response: { 200: anyObject, 404: errorSchema } } }, async (req) => {
    const s = find((req.params as { name: string }).name);
    return view(s, await counters(), true);
  });

  app.put('/scripts/:name', {
    schema: {
      params: scriptParams, querystring: uploadQuery,
      body: {
        anyOf: [
          { type: 'string', minLength: 1 },
          {
            type: 'object',
            properties: {
              source: { type: 'string', minLength: 1 },
              services: { type: 'array', maxItems: 1000, items: { type: 'string', maxLength: 128 } },
              timeoutMs: { type: 'integer' },
              maxFailures: { type: 'integer' },
            },
            required: ['source'],
            additionalProperties: false,
          },
        ],
      },
      response: { 200: anyObject, 202: anyObject, 400: refusalSchema, 503: errorSchema },
    },
  }, async (req, reply) => {
    if (deps.readOnlyReason) throw new AdminError(409, 'ERR_READ_ONLY', deps.readOnlyReason);
    const { name } = req.params as { name: string };
    const q = req.query as { services?: string; timeoutMs?: string; maxFailures?: string };
    const body = req.body as string | { source: string; services?: string[]; timeoutMs?: number; maxFailures?: number };
    const fromQuery = q.services === undefined ? undefined : q.services.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const upload = typeof body === 'string'
      ? { name, source: body, services: fromQuery ?? ['*'], timeoutMs: q.timeoutMs === undefined ? undefined : Number(q.timeoutMs), maxFailures: q.maxFailures === undefined ? undefined : Number(q.maxFailures) }
      : { name, source: body.source, services: body.services ?? fromQuery ?? ['*'], timeoutMs: body.timeoutMs, maxFailures: body.maxFailures };
    let spec: ScriptSpec;
    try {
      spec = checkScript(upload);
    } catch (err) {
      if (err instanceof ScriptError) {
        return reply.code(400).send({ error: err.code, message: err.message, ...(err.line === undefined ? {} : { line: err.line }) });
      }
      throw err;
    }
    await persist(() => deps.scriptStore?.put(spec), name);
    const changed = deps.holder.setScript(spec);
    const live = await deps.applied?.(deps.holder.current().version);
    deps.logger[live === false ? 'warn' : 'info']({ script: name, version: spec.version, services: spec.services, changed, live }, 'request script loaded');
    if (live === false) reply.code(202);
    return { ok: true, changed, live: live !== false, tableVersion: deps.holder.current().version, ...view(spec, new Map()) };
  });

  app.delete('/scripts/:name', { schema: { params: scriptParams, response: { 200: anyObject, 202: anyObject, 404: errorSchema, 503: errorSchema } } }, async (req, reply) => {
    if (deps.readOnlyReason) throw new AdminError(409, 'ERR_READ_ONLY', deps.readOnlyReason);
    const { name } = req.params as { name: string };
    find(name);
    await persist(() => deps.scriptStore?.delete(name), name);
    deps.holder.deleteScript(name);
    deps.holder.dropKvScript(name);
    const live = await deps.applied?.(deps.holder.current().version);
    deps.logger[live === false ? 'warn' : 'info']({ script: name, live }, 'request script removed');
    if (live === false) reply.code(202);
    return { ok: true, live: live !== false, tableVersion: deps.holder.current().version };
  });
}
