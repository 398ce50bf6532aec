import { createHash } from 'node:crypto';
import type { TierLimits } from '../../config.ts';
import type { Database, Sql, TransactionSql } from '../../db/database.ts';
import type { Logger } from '../../log.ts';
import { createConversationRepository } from '../core/conversations.ts';
import { keyInFlight, keyUsedForAnotherRequest } from '../core/idempotency.ts';
import { createUsageRepository } from '../core/usage.ts';
import { type Clock, IDEMPOTENCY_TTL_MS, type IdempotencyRepository, type IdempotentAnswer, type StoreScope } from '../types.ts';
import { createPostgresConversations } from './conversations.ts';
import { nowParam, type SqlRunner } from './shared.ts';
import { createPostgresUsage } from './usage.ts';

/**
 * Idempotency keys on PostgreSQL (table idempotency_keys, migration 0003).
 *
 * One transaction holds everything: an advisory lock on (user, key) — taken
 * without waiting, so a second request with a key still in flight is 409 at
 * once — the lookup, the write itself (the repositories run on the
 * transaction) and the key's row. The write and its key therefore commit
 * together or not at all. Database.transaction re-runs the whole callback
 * after a lost connection; when the COMMIT had in fact gone through, the
 * re-run finds the key and replays instead of writing twice.
 */

/** Expired rows deleted per call (lazily: the table stays small without a timer). */
const PURGE_BATCH = 100;

interface KeyRow {
  request_hash: string;
  status_code: number;
  response_body: string | null;
  response_headers: Record<string, string>;
}

/** A transaction seen as the repositories' SqlRunner: every statement runs on it, once (the transaction is what is retried). */
const runnerOn = (tx: TransactionSql): SqlRunner => ({ run: (_label, work) => work(tx as unknown as Sql) });

/** The advisory lock's 64-bit key for a (user, key) pair. */
function lockKeyOf(userId: string, key: string): bigint {
  return createHash('sha256').update(userId).update('\0').update(key).digest().readBigInt64BE(0);
}

export interface PostgresIdempotencyOptions {
  db: Database;
  tierLimits: TierLimits;
  clock?: Clock;
  logger: Logger;
}

export function createPostgresIdempotency(options: PostgresIdempotencyOptions): IdempotencyRepository {
  const { db, tierLimits, clock, logger } = options;

  function scopeOn(tx: TransactionSql): StoreScope {
    const runner = runnerOn(tx);
    return {
      conversations: createConversationRepository(createPostgresConversations({ db: runner, tierLimits, clock, logger }), tierLimits),
      usage: createUsageRepository(createPostgresUsage({ db: runner, tierLimits, clock, logger }), tierLimits),
    };
  }

  return {
    async run(userId, key, requestHash, work) {
      return db.transaction('idempotency.run', async (tx) => {
        const at = nowParam(clock);
        const [lock] = await tx<{ held: boolean }[]>`select pg_try_advisory_xact_lock(${String(lockKeyOf(userId, key))}::int8) as held`;
        if (!lock?.held) throw keyInFlight();

        await tx`
          delete from idempotency_keys
           where (user_id, key) in (
                 select user_id, key from idempotency_keys
                  where expires_at <= coalesce(${at}::timestamptz, now())
                  order by expires_at
                  limit ${PURGE_BATCH}
                  for update skip locked)`;
        const [stored] = await tx<KeyRow[]>`
          select request_hash, status_code, response_body, response_headers
            from idempotency_keys
           where user_id = ${userId} and key = ${key} and expires_at > coalesce(${at}::timestamptz, now())`;
        if (stored) {
          if (stored.request_hash !== requestHash) throw keyUsedForAnotherRequest();
          return { replayed: true, answer: answerOf(stored) };
        }

        const answer = await work(scopeOn(tx));
        await tx`
          insert into idempotency_keys (user_id, key, request_hash, status_code, response_body, response_headers, created_at, expires_at)
          values (${userId}, ${key}, ${requestHash}, ${answer.status}, ${answer.body}, ${tx.json(answer.headers)},
                  coalesce(${at}::timestamptz, now()),
                  coalesce(${at}::timestamptz, now()) + ${`${IDEMPOTENCY_TTL_MS} milliseconds`}::interval)
          on conflict (user_id, key) do update
             set request_hash = excluded.request_hash, status_code = excluded.status_code,
                 response_body = excluded.response_body, response_headers = excluded.response_headers,
                 created_at = excluded.created_at, expires_at = excluded.expires_at`;
        return { replayed: false, answer };
      });
    },
  };
}

const answerOf = (row: KeyRow): IdempotentAnswer => ({
  status: row.status_code,
  body: row.response_body,
  headers: row.response_headers ?? {},
});
