import { consumeCounters, freshCounters, type Periods, periodsAt, rollPeriods, type UsageCounters } from '../../domain/usage.ts';
import { readUsage, writeUsage } from '../../formats/chat-usage.ts';
import type { ConsumeState, UsageBackend } from '../core/backend.ts';
import type { JsonContext } from './context.ts';
import { corruptFile, readJsonFile, update } from './files.ts';

/**
 * Usage quotas on JSON files: `DATA_DIR/usage/<userId>/usage.json` in the
 * seed app's own shape (formats/chat-usage.ts); the storage half of the repository
 * (store/core/usage.ts validates and builds the status). `consume` reads,
 * checks and writes under the file's locks, so the check and the increment
 * are one atomic step across callers and processes. Periods come from the
 * injectable clock.
 */

const usageFile = (ctx: JsonContext, userId: string) => ctx.pathIn('usage', userId, 'usage.json');

/**
 * Read-modify-write the user's counters under the usage file's locks (fresh
 * free-tier counters when the file does not exist yet); `counters: undefined`
 * writes nothing.
 */
function changeUsage<R>(
  ctx: JsonContext,
  userId: string,
  fn: (counters: UsageCounters, periods: Periods) => { counters?: UsageCounters; result: R },
): Promise<R> {
  const file = usageFile(ctx, userId);
  return update(
    file,
    (current) => {
      const periods = periodsAt(ctx.clock());
      const counters = current === undefined ? freshCounters(periods) : countersFromFile(current, file, userId);
      const outcome = fn(counters, periods);
      const next = outcome.counters && writeUsage(current, { userId, ...outcome.counters }, ctx.tierLimits);
      return { next, result: outcome.result };
    },
    ctx.lock,
  );
}

/**
 * Check and count `n` queries under the usage file's locks (not tracked: the
 * caller's operation is). Also used by the atomic send, which holds the
 * conversation's locks around it.
 */
export function consumeInFile(ctx: JsonContext, userId: string, n: number): Promise<ConsumeState> {
  return changeUsage(ctx, userId, (counters, periods) => {
    const { allowed, counters: after } = consumeCounters(counters, n, ctx.tierLimits, periods);
    // A refused call changes nothing on disk (a period roll alone is recomputed on every read).
    return { counters: allowed ? after : undefined, result: { counters: after, periods, allowed } };
  });
}

export function createJsonUsage(ctx: JsonContext): UsageBackend {
  return {
    read: (userId) =>
      ctx.track(async () => {
        const file = usageFile(ctx, userId);
        const periods = periodsAt(ctx.clock());
        const value = await readJsonFile(file);
        // An unknown user is a fresh free-tier user; nothing is written until they consume.
        return { counters: value === undefined ? freshCounters(periods) : countersFromFile(value, file, userId), periods };
      }),

    consume: (userId, n) => ctx.track(() => consumeInFile(ctx, userId, n)),

    setTier: (userId, tier) =>
      ctx.track(() =>
        changeUsage(ctx, userId, (counters, periods) => {
          const after = { ...rollPeriods(counters, periods), tier };
          return { counters: after, result: { counters: after, periods } };
        }),
      ),
  };
}

/**
 * A parsed usage file → domain counters, read by the same reader as the
 * importer (formats/chat-usage.ts: both spellings the seeds use); anything
 * it refuses is CORRUPT_DATA naming the file.
 */
export function countersFromFile(value: unknown, file: string, userId: string): UsageCounters {
  const result = readUsage(value, userId);
  if (!result.ok) throw corruptFile(file, result.reason);
  const { userId: _user, ...counters } = result.row;
  return counters;
}
