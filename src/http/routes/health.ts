import type { FastifyInstance } from 'fastify';
import type { Store, StoreHealth } from '../../store/types.ts';
import { RETRY_AFTER_UNAVAILABLE_SECONDS } from '../errors.ts';

/** A readiness probe must answer quickly even when the database hangs. */
export const READY_TIMEOUT_MS = 3000;

const readyResponse = {
  type: 'object',
  required: ['status', 'backend', 'mode'],
  properties: {
    status: { type: 'string', enum: ['ready', 'unavailable'] },
    backend: { type: 'string', enum: ['json', 'postgres'] },
    mode: { type: 'string' },
  },
} as const;

async function healthWithin(store: Store, ms: number): Promise<StoreHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<StoreHealth>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, backend: store.backend, mode: store.mode, error: `no answer within ${ms} ms` }), ms);
  });
  try {
    return await Promise.race([
      store
        .health()
        .catch((error: unknown): StoreHealth => ({ ok: false, backend: store.backend, mode: store.mode, error: String(error) })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Probes, without auth: /healthz = the process answers; /readyz = the storage answers. */
export function healthRoutes(app: FastifyInstance, store: Store): void {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up',
        response: { 200: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } } } },
      },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the storage backend answers',
        description: '503 with `Retry-After` while the database is unreachable. Reports the backend and the storage mode.',
        response: { 200: readyResponse, 503: readyResponse },
      },
    },
    async (request, reply) => {
      const health = await healthWithin(store, READY_TIMEOUT_MS);
      if (health.ok) return { status: 'ready', backend: health.backend, mode: health.mode };
      request.log.warn({ backend: health.backend, reason: health.error }, 'not ready: storage unavailable');
      return reply
        .code(503)
        .header('retry-after', String(RETRY_AFTER_UNAVAILABLE_SECONDS))
        .send({ status: 'unavailable', backend: health.backend, mode: health.mode });
    },
  );
}
