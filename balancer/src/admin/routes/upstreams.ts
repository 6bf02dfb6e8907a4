// dyups-compatible upstream routes: list, detail, one upstream, set (POST) and delete (DELETE).
// Precedence: an upstream set here replaces a Consul service of the same name (servers and options)
// until it is deleted here; Consul's own upstreams cannot be deleted through the API.
import type { FastifyInstance } from 'fastify';
import { adminUpstream, parseDyupsServers, parseJsonServers, type ServerInput } from '../../routing/server-list.js';
import { parseHashKey } from '../../routing/tag-options.js';
import { ALGORITHMS, type Algorithm, type HashKey, type UpstreamSpec } from '../../routing/types.js';
import type { AdminDeps } from '../deps.js';
import { dyupsDetail, dyupsList, dyupsUpstream, upstreamJson } from '../dyups-text.js';
import { AdminError, anyObject, errorSchema, formatQuery, nameParams, sendText, wantsJson } from '../route-support.js';

const NOT_LIVE_TEXT = 'accepted: not yet confirmed by every worker';

export function upstreamRoutes(app: FastifyInstance, deps: AdminDeps): void {
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
    return sendText(reply, dyupsList(names));
  });

  app.get('/detail', { schema: { querystring: formatQuery } }, async (req, reply) => {
    const ups = upstreamsSorted();
    if (wantsJson(req)) return { upstreams: ups.map(upstreamJson) };
    return sendText(reply, dyupsDetail(ups));
  });

  app.get('/upstream/:name', { schema: { params: nameParams, querystring: formatQuery, response: { 404: errorSchema } } }, async (req, reply) => {
    const u = lookup((req.params as { name: string }).name);
    if (wantsJson(req)) return upstreamJson(u);
    return sendText(reply, dyupsUpstream(u));
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
    return sendText(reply, live === false ? NOT_LIVE_TEXT : 'success');
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
    return sendText(reply, live === false ? NOT_LIVE_TEXT : 'success');
  });
}
