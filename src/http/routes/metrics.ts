import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../../config.ts';
import type { Metrics } from '../../metrics/registry.ts';

/**
 * GET /metrics in Prometheus text format. A scraper sends
 * `Authorization: Bearer <METRICS_TOKEN>`; an admin's credentials work too
 * (header or the admin page's cookie). Nothing in it names a user or a secret.
 */

function sameToken(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export function metricsRoutes(
  app: FastifyInstance,
  options: { config: Config; metrics: Metrics; requireAdmin: (request: FastifyRequest) => Promise<unknown> },
): void {
  const { config, metrics } = options;
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    const bearer = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
    const byToken = config.metricsToken !== undefined && bearer !== undefined && sameToken(bearer, config.metricsToken);
    if (!byToken) await options.requireAdmin(request);
    const body = await metrics.registry.metrics();
    return reply.header('cache-control', 'no-store').type(metrics.registry.contentType).send(body);
  });
}
