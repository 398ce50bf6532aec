import type { TierLimits } from '../../config.ts';
import type { Database } from '../../db/database.ts';
import { type Logger, redactSecrets, silentLogger } from '../../log.ts';
import { createConversationRepository } from '../core/conversations.ts';
import { createFormsRepositories } from '../core/forms.ts';
import { createUploadRepository } from '../core/uploads.ts';
import { createUsageRepository } from '../core/usage.ts';
import type { Clock, Store, StoreHealth } from '../types.ts';
import { createPostgresConversations } from './conversations.ts';
import { postgresFormsBackends } from './forms.ts';
import { createPostgresIdempotency } from './idempotency.ts';
import { createPostgresUploads } from './uploads.ts';
import { createPostgresUsage } from './usage.ts';

export { createPostgresConversations, listQuery, sendQuery } from './conversations.ts';
export { consumeQuery, createPostgresUsage } from './usage.ts';

export interface PostgresStoreOptions {
  /** A connected pgferry Database on a migrated schema. */
  db: Database;
  tierLimits: TierLimits;
  /**
   * Tests only: the instant used instead of the database clock for usage
   * periods and for conversation/message timestamps. Omit it in production,
   * where PostgreSQL's clock is the single source of time.
   */
  clock?: Clock;
  logger?: Logger;
  /** close() also closes `db` (default false: the caller owns it). */
  ownsDb?: boolean;
}

/**
 * The Store on PostgreSQL (DESIGN section 4): one statement per operation,
 * every value a parameter, all SQL through `db.run` (retries, slow-query
 * log, UNAVAILABLE mapping).
 *
 * @example
 * const db = await connectDatabase({ url: process.env.DATABASE_URL! });
 * const store = createPostgresStore({ db, tierLimits: DEFAULT_TIER_LIMITS, ownsDb: true });
 * const c = await store.conversations.create('user-1', { title: 'Hello' });
 * await store.conversations.addUserMessage('user-1', c.id, 'Hi!');
 * const { allowed } = await store.usage.consume('user-1');
 * await store.close();
 */
export function createPostgresStore(options: PostgresStoreOptions): Store {
  const { db, tierLimits, clock } = options;
  const logger = options.logger ?? silentLogger;
  const conversations = createConversationRepository(createPostgresConversations({ db, tierLimits, clock, logger }), tierLimits);
  const usage = createUsageRepository(createPostgresUsage({ db, tierLimits, clock, logger }), tierLimits);
  return {
    backend: 'postgres',
    mode: 'postgres',
    database: db,
    conversations,
    usage,
    ...createFormsRepositories(postgresFormsBackends({ db, clock })),
    uploads: createUploadRepository(createPostgresUploads({ db, clock, logger })),
    idempotency: createPostgresIdempotency({ db, tierLimits, clock, logger }),
    async health(): Promise<StoreHealth> {
      try {
        await db.ping();
        return { ok: true, backend: 'postgres', mode: 'postgres' };
      } catch (error) {
        return { ok: false, backend: 'postgres', mode: 'postgres', error: redactSecrets(String((error as Error).message ?? error)) };
      }
    },
    async close(): Promise<void> {
      if (options.ownsDb) await db.close();
    },
  };
}
