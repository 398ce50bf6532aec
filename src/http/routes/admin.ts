import type { FastifyInstance } from 'fastify';
import type { Tier } from '../../config.ts';
import { validateTier } from '../../domain/usage.ts';
import { PgFerryError } from '../../errors.ts';
import { COMMON_ERRORS, ref, responses, SECURITY, tierBody, tierParams } from '../schemas.ts';

/**
 * Admin routes: the caller's token must carry the admin claim
 * (AUTH_ADMIN_CLAIM = AUTH_ADMIN_VALUE, default `role: "admin"`).
 */
export function adminRoutes(app: FastifyInstance): void {
  app.register(async (admin) => {
    admin.addHook('preHandler', async (request) => {
      if (!request.principal.admin) throw new PgFerryError('FORBIDDEN', 'this route needs the admin role');
    });

    admin.put<{ Params: { userId: string }; Body: { tier: string } }>(
      '/admin/users/:userId/tier',
      {
        schema: {
          tags: ['admin'],
          summary: "Set a user's tier (admin)",
          description: 'Creates the usage record when the user has none yet. An unknown tier is 422.',
          security: SECURITY,
          params: tierParams,
          body: tierBody,
          response: responses({ 200: ref('Usage') }, [...COMMON_ERRORS, 403, 413, 415, 422]),
        },
      },
      async (request) => {
        const tier: Tier = validateTier(request.body.tier);
        return request.scope.usage.setTier(request.params.userId, tier);
      },
    );
  });
}
