// Admin routes of TLS: certificates (PUT/GET/DELETE /certs/<name>; GET never returns a key) and ACME
// (GET /acme, POST /certs/<name>/renew). A refused certificate is a 400 with the reason and changes
// nothing; a success answers 200 once every worker serves it (202 when not confirmed in time).
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AdminDeps } from '../deps.js';
import { ADMIN_CERT_NAME } from '../../tls/admin-certs.js';
import { certInfo, CertificateError } from '../../tls/certificate.js';

/** how long a PUT/DELETE waits for the workers */
const APPLY_TIMEOUT_MS = 5_000;

const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: ADMIN_CERT_NAME.source } },
  required: ['name'],
} as const;

function notEnabled(reply: FastifyReply, what: string): FastifyReply {
  return reply.code(409).send({ error: 'ERR_TLS_DISABLED', message: `${what} is not enabled (start the balancer with ${what === 'ACME' ? '--acme-directory' : '--tls-listen'})` });
}

/** Body of a PUT: JSON {cert, key} or PEM text holding the chain and the key. */
function pemBody(body: unknown): { chain: string; key: string } | undefined {
  if (typeof body === 'string') return { chain: body, key: '' };
  if (typeof body === 'object' && body !== null) {
    const b = body as { cert?: unknown; key?: unknown };
    if (typeof b.cert === 'string' && (b.key === undefined || typeof b.key === 'string')) return { chain: b.cert, key: b.key ?? '' };
  }
  return undefined;
}

export function certRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const applyTimeoutMs = APPLY_TIMEOUT_MS;

  app.get('/certs', async (_req, reply) => {
    if (!deps.tls) return notEnabled(reply, 'TLS');
    const snap = deps.tls.store.current();
    return { version: snap.version, defaultName: snap.defaultName ?? null, certificates: deps.tls.store.list() };
  });

  app.get('/certs/:name', { schema: { params: nameParams } }, async (req, reply) => {
    if (!deps.tls) return notEnabled(reply, 'TLS');
    const { name } = req.params as { name: string };
    const own = deps.tls.admin.get(name);
    const serving = deps.tls.store.servingFor(name);
    if (!own && !serving) return reply.code(404).send({ error: 'ERR_UNKNOWN_CERT', message: `no certificate named or serving "${name}"` });
    return { name, admin: own ? certInfo(own) : null, serving: serving ?? null };
  });

  app.put('/certs/:name', { schema: { params: nameParams } }, async (req, reply) => {
    const tls = deps.tls;
    if (!tls) return notEnabled(reply, 'TLS');
    const { name } = req.params as { name: string };
    const pem = pemBody(req.body);
    if (!pem) return reply.code(400).send({ error: 'ERR_CERT_BODY', message: 'expected JSON {"cert": "<PEM chain>", "key": "<PEM key>"} or PEM text with the chain and the key' });
    let entry;
    try {
      entry = tls.admin.put(name, pem.chain, pem.key);
    } catch (err) {
      if (!(err instanceof CertificateError)) throw err;
      req.log.warn({ name, code: err.code }, `admin certificate refused: ${err.message}`);
      return reply.code(400).send({ error: err.code, message: err.message });
    }
    const version = tls.store.current().version;
    const applied = await tls.distributor.whenApplied(version, applyTimeoutMs);
    return reply.code(applied ? 200 : 202).send({ certificate: certInfo(entry), version, applied });
  });

  app.delete('/certs/:name', { schema: { params: nameParams } }, async (req, reply) => {
    const tls = deps.tls;
    if (!tls) return notEnabled(reply, 'TLS');
    const { name } = req.params as { name: string };
    if (!tls.admin.delete(name)) return reply.code(404).send({ error: 'ERR_UNKNOWN_CERT', message: `no admin certificate "${name}" (directory and KV certificates are removed at their source)` });
    const version = tls.store.current().version;
    const applied = await tls.distributor.whenApplied(version, applyTimeoutMs);
    return reply.code(applied ? 200 : 202).send({ deleted: name, version, applied });
  });

  app.get('/acme', async (_req, reply) => {
    if (!deps.tls?.acme) return notEnabled(reply, 'ACME');
    return deps.tls.acme.status();
  });

  app.post('/certs/:name/renew', { schema: { params: nameParams } }, async (req, reply) => {
    if (!deps.tls?.acme) return notEnabled(reply, 'ACME');
    const { name } = req.params as { name: string };
    const ok = await deps.tls.acme.forceRenew(name.toLowerCase());
    if (!ok) return reply.code(404).send({ error: 'ERR_UNKNOWN_ACME_NAME', message: `"${name}" is not a name wanted by a tls=acme service` });
    return reply.code(202).send({ name, renewal: 'requested' });
  });
}
