// Pieces every admin route file shares: the error type the app's error handler turns into
// {error, message}, common JSON schemas, and the text-or-JSON answer choice of the dyups routes.
import type { FastifyReply, FastifyRequest } from 'fastify';

export class AdminError extends Error {
  constructor(readonly statusCode: number, readonly code: string, message: string) {
    super(message);
  }
}

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
export const errorSchema = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
} as const;
export const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', pattern: NAME_PATTERN } },
  required: ['name'],
} as const;
export const formatQuery = {
  type: 'object',
  properties: { format: { type: 'string', enum: ['text', 'json'] } },
  additionalProperties: false,
} as const;
export const anyObject = { type: 'object', additionalProperties: true } as const;

/** ?format=json|text wins; otherwise JSON when the client accepts it. */
export function wantsJson(req: FastifyRequest): boolean {
  const q = req.query as { format?: string } | undefined;
  if (q?.format) return q.format === 'json';
  return (req.headers.accept ?? '').includes('application/json');
}

export function sendText(reply: FastifyReply, body: string): FastifyReply {
  return reply.type('text/plain; charset=utf-8').send(body);
}
