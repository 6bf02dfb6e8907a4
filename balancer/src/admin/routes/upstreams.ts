// dyups-compatible upstream routes: list, detail, one upstream, set (POST) and delete (DELETE).
// Precedence: an upstream set here replaces a Consul service of the same name (servers and options)
// until it is deleted here; Consul's own upstreams cannot be deleted through the API.
import type { FastifyInstance } from 'fastify';
import { adminUpstream, parseDyupsServers, parseJsonServers, type ServerInput } from '../../routing/server-list.js';
import { parseHashKey } from '../../routing/tag-options.js';
import { ALGORITHMS, type Algorithm, type HashKey, type UpstreamSpec } from '../../routing/types.js';
import type { AdminDeps, AppliedResult } from '../deps.js';
import { dyupsDetail, dyupsList, dyupsUpstream, upstreamJson } from '../dyups-text.js';
import { AdminError, anyObject, errorSchema, formatQuery, nameParams, sendText, wantsJson } from '../route-support.js';

const NOT_LIVE_TEXT = 'accepted: not yet confirmed by every worker';
export const DEFAULT_MAX_UPSTREAMS = 1000;
export const DEFAULT_MAX_SERVERS = 1000;

export function upstreamRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const maxUpstreams = deps.maxUpstreams ?? DEFAULT_MAX_UPSTREAMS;
  const maxServers = deps.maxServers ?? DEFAULT_MAX_SERVERS;
  const upstreamsSorted = (): UpstreamSpec[] => {
    const ups = deps.holder.current().upstreams;
    return Object.keys(ups).sort().map((n) => ups[n]);
  };
  // own keys only: a name such as "toString" or "constructor" must not reach Object.prototype
  const find = (name: string): UpstreamSpec | undefined => {
    const ups = deps.holder.current().upstreams;
    return Object.hasOwn(ups, name) ? ups[name] : undefined;
  };
  const lookup = (name: string): UpstreamSpec => {
    const u = find(name);
    if (!u) throw new AdminError(404, 'ERR_UNKNOWN_UPSTREAM', `upstream "${name}" does not exist`);
    return u;
  };
  const confirm = async (): Promise<AppliedResult | undefined> => {
    const r = await deps.applied?.(deps.holder.current().version);
    if (r === undefined) return undefined;
    return typeof r === 'boolean' ? { live: r, notAcked: [] } : r;
  };
  const notLiveText = (r: AppliedResult): string =>
    r.notAcked.length ? `${NOT_LIVE_TEXT} (not acknowledged by worker ${r.notAcked.map((w) => w.workerId).join(', ')})` : NOT_LIVE_TEXT;

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
              servers: { type: 'array', items: anyObject },
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
    if (inputs.length > maxServers) {
      throw new AdminError(400, 'ERR_TOO_MANY_SERVERS', `${inputs.length} servers given; at most ${maxServers} per upstream (--admin-max-servers)`);
    }
    const admin = deps.holder.adminUpstreams();
    if (!Object.hasOwn(admin, name) && Object.keys(admin).length >= maxUpstreams) {
      throw new AdminError(413, 'ERR_TOO_MANY_UPSTREAMS', `already ${Object.keys(admin).length} upstreams set through the API; at most ${maxUpstreams} (--admin-max-upstreams)`);
    }
    const spec = adminUpstream(name, inputs, deps.defaults, { algorithm: lb, hashKey });
    const changed = deps.holder.setAdminUpstream(spec);
    const applied = await confirm();
    const live = applied?.live !== false;
    deps.logger[live ? 'info' : 'warn']({ upstream: name, servers: spec.servers.length, changed, live, notAcked: applied?.notAcked }, 'admin upstream set');
    // "success" means live in every worker (dyups); a change some worker did not confirm in time is
    // accepted (kept in the table and the dump) but said to be so, naming those workers
    if (!live) reply.code(202);
    if (wantsJson(req)) return { ok: true, upstream: upstreamJson(find(name) ?? spec), version: deps.holder.current().version, changed, live, notAcked: applied?.notAcked ?? [] };
    return sendText(reply, applied && !live ? notLiveText(applied) : 'success');
  });

  app.delete('/upstream/:name', { schema: { params: nameParams, querystring: formatQuery, response: { 202: anyObject, 404: errorSchema, 409: errorSchema } } }, async (req, reply) => {
    if (deps.readOnlyReason) throw new AdminError(409, 'ERR_READ_ONLY', deps.readOnlyReason);
    const { name } = req.params as { name: string };
    if (!deps.holder.deleteAdminUpstream(name)) {
      if (find(name)) {
        throw new AdminError(409, 'ERR_NOT_ADMIN_UPSTREAM', `upstream "${name}" comes from Consul; only upstreams set through this API can be deleted`);
      }
      throw new AdminError(404, 'ERR_UNKNOWN_UPSTREAM', `upstream "${name}" does not exist`);
    }
    const applied = await confirm();
    const live = applied?.live !== false;
    deps.logger[live ? 'info' : 'warn']({ upstream: name, live, notAcked: applied?.notAcked }, 'admin upstream deleted');
    if (!live) reply.code(202);
    if (wantsJson(req)) return { ok: true, version: deps.holder.current().version, live, notAcked: applied?.notAcked ?? [] };
    return sendText(reply, applied && !live ? notLiveText(applied) : 'success');
  });
}
