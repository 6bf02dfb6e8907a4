// GET /metrics: Prometheus exposition (text 0.0.4; OpenMetrics when the scraper asks for it in
// Accept or with ?format=openmetrics), served from the primary's aggregated state: a scrape never
// waits for a worker. The JSON figures (table statistics plus what the supervisor, discovery and
// dump report) stay available with Accept: application/json or ?format=json, and are the answer
// when no metrics are wired (tests of the admin app alone).
import type { FastifyInstance } from 'fastify';
import { renderFamilies } from '../../../../common/metrics/exposition.js';
import type { AdminDeps } from '../deps.js';

export function metricsRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.get('/metrics', {
    schema: {
      querystring: {
        type: 'object',
        properties: { format: { type: 'string', enum: ['json', 'prometheus', 'openmetrics'] } },
        additionalProperties: false,
      },
    },
  }, async (req, reply) => {
    const format = (req.query as { format?: string } | undefined)?.format;
    const accept = req.headers.accept ?? '';
    const json = format === 'json' || (format === undefined && accept.includes('application/json') && !accept.includes('openmetrics') && !accept.includes('text/plain'));
    const metrics = deps.balancerMetrics;
    if (json || metrics === undefined) {
      return reply.type('application/json; charset=utf-8').send({ table: deps.holder.stats(), ...(deps.metrics?.() ?? {}) });
    }
    const { contentType, body } = format === undefined
      ? await metrics.render(accept)
      : await renderFamilies(metrics.families(), format === 'openmetrics');
    return reply.type(contentType).send(body);
  });
}
