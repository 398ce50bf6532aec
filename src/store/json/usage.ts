import { TIERS, type Tier } from '../../config.ts';
import { consumeCounters, freshCounters, type Periods, periodsAt, rollPeriods, type UsageCounters } from '../../domain/usage.ts';
import type { ConsumeState, UsageBackend } from '../core/backend.ts';
import type { JsonContext } from './context.ts';
import { corruptFile, readJsonFile, update } from './files.ts';

/**
 * Usage quotas on JSON files: `DATA_DIR/usage/<userId>/usage.json` in the
 * seed app's own shape
 *   {user_id, daily_count, monthly_count, last_daily_reset, last_monthly_reset, total_queries, tier}
 * with dates as YYYY-MM-DD; the storage half of the repository
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
      const counters = current === undefined ? freshCounters(periods) : countersFromFile(current, file);
      const outcome = fn(counters, periods);
      const next = outcome.counters && toFile(userId, outcome.counters, current);
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
        return { counters: value === undefined ? freshCounters(periods) : countersFromFile(value, file), periods };
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

/** Stored counters → domain counters; anything unusable is CORRUPT_DATA naming the file. */
export function countersFromFile(value: unknown, file: string): UsageCounters {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw corruptFile(file, 'not a JSON object');
  const raw = value as Record<string, unknown>;
  const tier = raw.tier ?? 'free';
  if (typeof tier !== 'string' || !(TIERS as readonly string[]).includes(tier)) {
    throw corruptFile(file, `unknown tier ${JSON.stringify(tier)}`);
  }
  const lastDaily = dateOf(raw.last_daily_reset);
  const lastMonthly = dateOf(raw.last_monthly_reset);
  if (!lastDaily || !lastMonthly) throw corruptFile(file, '"last_daily_reset"/"last_monthly_reset" must be dates (YYYY-MM-DD)');
  return {
    tier: tier as Tier,
    dailyUsed: count(raw.daily_count, 'daily_count', file),
    monthlyUsed: count(raw.monthly_count, 'monthly_count', file),
    totalQueries: count(raw.total_queries, 'total_queries', file),
    lastResetDaily: lastDaily,
    // The seed app stores the day it reset; the domain keys months by their first day.
    lastResetMonthly: `${lastMonthly.slice(0, 7)}-01`,
  };
}

/** Domain counters → the seed's file shape, keeping any fields pgferry does not know. */
function toFile(userId: string, counters: UsageCounters, previous: unknown): Record<string, unknown> {
  const kept = previous !== null && typeof previous === 'object' && !Array.isArray(previous) ? previous : {};
  return {
    ...kept,
    user_id: userId,
    daily_count: counters.dailyUsed,
    monthly_count: counters.monthlyUsed,
    last_daily_reset: counters.lastResetDaily,
    last_monthly_reset: counters.lastResetMonthly,
    total_queries: counters.totalQueries,
    tier: counters.tier,
  };
}

/** 'YYYY-MM-DD' from a date or a datetime string (seed files sometimes hold `datetime.isoformat()`). */
function dateOf(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:$|[T ])/.exec(value.trim());
  if (!match) return undefined;
  const [, y, m, d] = match;
  const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  return date.getUTCDate() === Number(d) ? date.toISOString().slice(0, 10) : undefined;
}

function count(value: unknown, field: string, file: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw corruptFile(file, `"${field}" must be a non-negative integer`);
  }
  return value;
}
