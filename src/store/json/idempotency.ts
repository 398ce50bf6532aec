import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { validateUserId } from '../../domain/ids.ts';
import { isPgFerryError } from '../../errors.ts';
import { keyInFlight, keyUsedForAnotherRequest } from '../core/idempotency.ts';
import {
  IDEMPOTENCY_TTL_MS,
  type IdempotencyOutcome,
  type IdempotencyRepository,
  type IdempotentAnswer,
  type StoreScope,
} from '../types.ts';
import type { JsonContext } from './context.ts';
import { isDataFileName, REMOVE, type UpdateOutcome, update } from './files.ts';

/**
 * Idempotency keys on JSON files: `DATA_DIR/idempotency/<userId>/<sha256(key)>.json`
 * (the key itself is not stored; its hash names the file).
 *
 * The whole request runs inside the key file's critical section (the
 * in-process mutex and the `.lock` file of files.ts `update`): the write,
 * then the key's record, written atomically and fsynced before the answer
 * leaves. A retry whose first answer was lost finds the record and replays.
 * Only a crash of this process between the write and the record can leave a
 * write without its key (there is no transaction across two files).
 *
 * A second request with a key still running in this process is 409 at once;
 * one from another process waits for the lock, then replays.
 */

interface KeyRecord {
  requestHash: string;
  answer: IdempotentAnswer;
  createdAt: string;
  expiresAt: string;
}

/** Purge a user's expired keys at most this often (ms); the scan is the user's folder only. */
const PURGE_INTERVAL_MS = 60 * 60 * 1000;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function recordOf(value: unknown): KeyRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Partial<KeyRecord>;
  const answer = record.answer as Partial<IdempotentAnswer> | undefined;
  if (typeof record.requestHash !== 'string' || typeof record.expiresAt !== 'string' || typeof answer?.status !== 'number') {
    return undefined;
  }
  return record as KeyRecord;
}

export function createJsonIdempotency(ctx: JsonContext, scope: StoreScope): IdempotencyRepository {
  const running = new Set<string>();
  const lastPurge = new Map<string, number>();
  const userDir = (userId: string) => ctx.pathIn('idempotency', userId);
  const fileOf = (userId: string, key: string) => ctx.pathIn('idempotency', userId, `${sha256(key)}.json`);

  /** Remove the user's expired records; best effort (a failure only delays the purge). */
  async function purgeExpired(userId: string, now: number): Promise<void> {
    if (now - (lastPurge.get(userId) ?? 0) < PURGE_INTERVAL_MS) return;
    lastPurge.set(userId, now);
    let names: string[];
    try {
      names = (await readdir(userDir(userId))).filter(isDataFileName);
    } catch {
      return;
    }
    for (const name of names) {
      const filePath = ctx.pathIn('idempotency', userId, name);
      try {
        await update(
          filePath,
          (current): UpdateOutcome<void> => {
            const record = recordOf(current);
            return { result: undefined, next: record && Date.parse(record.expiresAt) <= now ? REMOVE : undefined };
          },
          ctx.lock,
        );
      } catch (error) {
        ctx.logger.warn({ file: filePath, err: isPgFerryError(error) ? error.message : String(error) }, 'idempotency purge skipped a file');
      }
    }
  }

  return {
    async run(userId, key, requestHash, work): Promise<IdempotencyOutcome> {
      validateUserId(userId);
      const filePath = fileOf(userId, key);
      if (running.has(filePath)) throw keyInFlight();
      running.add(filePath);
      try {
        const outcome = await ctx.track(() =>
          update(
            filePath,
            async (current): Promise<UpdateOutcome<IdempotencyOutcome>> => {
              const now = ctx.clock();
              const record = recordOf(current);
              if (record && Date.parse(record.expiresAt) > now.getTime()) {
                if (record.requestHash !== requestHash) throw keyUsedForAnotherRequest();
                return { result: { replayed: true, answer: record.answer } };
              }
              const answer = await work(scope);
              const next: KeyRecord = {
                requestHash,
                answer,
                createdAt: now.toISOString(),
                expiresAt: new Date(now.getTime() + IDEMPOTENCY_TTL_MS).toISOString(),
              };
              return { next, result: { replayed: false, answer } };
            },
            ctx.lock,
          ),
        );
        await purgeExpired(userId, ctx.clock().getTime());
        return outcome;
      } finally {
        running.delete(filePath);
      }
    },
  };
}
