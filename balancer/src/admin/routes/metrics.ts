// Figures as JSON: table statistics plus what the supervisor, discovery and dump report.
import type { FastifyInstance } from 'fastify';
import type { AdminDeps } from '../deps.js';
import { anyObject } from '../route-support.js';

export function metricsRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.get('/metrics', { schema: { response: { 200: anyObject } } }, async () => ({ table: deps.holder.stats(), ...(deps.metrics?.() ?? {}) }));
}
