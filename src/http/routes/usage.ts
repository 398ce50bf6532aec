import type { FastifyInstance } from 'fastify';
import { COMMON_ERRORS, ref, responses, SECURITY } from '../schemas.ts';

/** The caller's own quota: tier, daily and monthly windows (seed 003 requirement 4). */
export function usageRoutes(app: FastifyInstance): void {
  app.get(
    '/usage',
    {
      schema: {
        tags: ['usage'],
        summary: "The caller's usage and limits",
        security: SECURITY,
        response: responses({ 200: ref('Usage') }, COMMON_ERRORS),
      },
    },
    async (request) => request.scope.usage.get(request.principal.userId),
  );
}
