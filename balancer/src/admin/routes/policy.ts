// Traffic policy per service: PUT/GET/DELETE /policy/<service>, GET /policy. A policy set here wins
// over Consul KV (`balancer/policy/<service>`) and tags, until it is deleted here (as for upstreams).
// PUT may name a service that does not exist yet: the policy applies when it appears.
import type { FastifyInstance } from 'fastify';
import { parsePolicyJson, policyDocumentToJson } from '../../policy/policy-spec.js';
import type { AdminDeps } from '../deps.js';
import { AdminError, anyObject, errorSchema, nameParams } from '../route-support.js';

export function policyRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const view = (name: string) => {
    const o = deps.holder.policyOverrides();
    const upstream = deps.holder.current().upstreams[name];
    const source = Object.hasOwn(o.admin, name) ? 'admin' : Object.hasOwn(o.kv, name) ? 'kv' : upstream?.policy ? 'tags' : 'none';
    return {
      service: name,
      source,
      ...(source === 'admin' ? { document: policyDocumentToJson(o.admin[name]) } : source === 'kv' ? { document: policyDocumentToJson(o.kv[name]) } : {}),
      effective: upstream?.policy ?? null,
      canaryServers: upstream ? upstream.servers.filter((s) => s.canary === true).map((s) => s.id) : [],
      stableServers: upstream ? upstream.servers.filter((s) => s.canary !== true).map((s) => s.id) : [],
    };
  };

  app.get('/policy', { schema: { response: { 200: anyObject } } }, async () => {
    const o = deps.holder.policyOverrides();
    const ups = deps.holder.current().upstreams;
    const names = new Set([...Object.keys(o.admin), ...Object.keys(o.kv), ...Object.keys(ups).filter((n) => ups[n].policy !== undefined)]);
    return { policies: [...names].sort().map(view) };
  });

  app.get('/policy/:name', { schema: { params: nameParams, response: { 200: anyObject, 404: errorSchema } } }, async (req) => {
    const { name } = req.params as { name: string };
    const v = view(name);
    if (v.source === 'none' && deps.holder.current().upstreams[name] === undefined) {
      throw new AdminError(404, 'ERR_UNKNOWN_POLICY', `no policy and no upstream named "${name}"`);
    }
    return v;
  });

  app.put('/policy/:name', { schema: { params: nameParams, body: anyObject, response: { 200: anyObject, 202: anyObject, 400: errorSchema } } }, async (req, reply) => {
    if (deps.readOnlyReason) throw new AdminError(409, 'ERR_READ_ONLY', deps.readOnlyReason);
    const { name } = req.params as { name: string };
    const parsed = parsePolicyJson(req.body);
    if (!parsed.ok) throw new AdminError(400, 'ERR_BAD_POLICY', parsed.reason);
    const changed = deps.holder.setAdminPolicy(name, parsed.policy);
    const live = await deps.applied?.(deps.holder.current().version);
    deps.logger[live === false ? 'warn' : 'info']({ service: name, changed, live }, 'admin policy set');
    if (live === false) reply.code(202);
    return { ok: true, changed, live: live !== false, version: deps.holder.current().version, ...view(name) };
  });

  app.delete('/policy/:name', { schema: { params: nameParams, response: { 200: anyObject, 202: anyObject, 404: errorSchema } } }, async (req, reply) => {
    if (deps.readOnlyReason) throw new AdminError(409, 'ERR_READ_ONLY', deps.readOnlyReason);
    const { name } = req.params as { name: string };
    if (!Object.hasOwn(deps.holder.policyOverrides().admin, name)) {
      throw new AdminError(404, 'ERR_UNKNOWN_POLICY', `no policy for "${name}" was set through this API`);
    }
    const changed = deps.holder.setAdminPolicy(name, undefined);
    const live = await deps.applied?.(deps.holder.current().version);
    deps.logger[live === false ? 'warn' : 'info']({ service: name, changed, live }, 'admin policy deleted');
    if (live === false) reply.code(202);
    return { ok: true, changed, live: live !== false, version: deps.holder.current().version, ...view(name) };
  });
}
