import { TIERS, type Tier, type TierLimits } from '../config.ts';
import { isValidUserId } from '../domain/ids.ts';
import type { UsageCounters } from '../domain/usage.ts';
import { numberValue } from './json-text.ts';
import { formatTimestamp, parseTimestampUs, styleOf } from './timestamps.ts';
import { describe, isObject, type Validated } from './validated.ts';

/**
 * The chat app's usage file, `usage/<userId>/usage.json`, read once here for
 * both the JSON backend and the importer. Two spellings are in use and both
 * are read (and written back in the spelling the file has):
 *
 *   the app's (DESIGN 8.1):  {user_id, tier, daily_count, monthly_count, total_queries, last_daily_reset, last_monthly_reset}
 *   seed 001's columns:      {user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries,
 *                             last_reset_daily, last_reset_monthly}
 *
 * Reset dates may be dates or datetimes. The monthly reset is kept as the
 * first day of its month, which is how the store identifies the month a count
 * belongs to. Limits follow the tier (TIER_LIMITS), so a file's copies are
 * not read; they are rewritten to match when present.
 */

/** A usage file's counters (domain/usage.ts) and whose they are. */
export interface UsageRow extends UsageCounters {
  userId: string;
}

const INT4_MAX = 2_147_483_647;

/** Each field's names: the app's first, then seed 001's. */
const NAMES = {
  daily: ['daily_count', 'daily_used'],
  monthly: ['monthly_count', 'monthly_used'],
  total: ['total_queries'],
  lastDaily: ['last_daily_reset', 'last_reset_daily'],
  lastMonthly: ['last_monthly_reset', 'last_reset_monthly'],
} as const;

const KNOWN_KEYS = new Set<string>(['user_id', 'tier', 'daily_limit', 'monthly_limit', ...Object.values(NAMES).flat()]);

type Field<T> = { ok: true; value: T } | { ok: false; reason: string };

/** A parsed usage file of user `userKey` (its folder) → its row, or the reason it cannot be read. */
export function readUsage(value: unknown, userKey: string): Validated<UsageRow> {
  const warnings: string[] = [];
  const key = isValidUserId(userKey) ? userKey : null;
  const reject = (reason: string): Validated<UsageRow> => ({ ok: false, key, reason, warnings });
  if (key === null) return reject(`user folder ${JSON.stringify(userKey)} is not a valid user id`);
  if (!isObject(value)) return reject(`expected a JSON object, found ${describe(value)}`);
  if (value.user_id !== undefined && value.user_id !== null && value.user_id !== key) {
    warnings.push(
      `user_id ${describe(value.user_id)} in the document differs from its folder: the folder's user ${JSON.stringify(key)} is used`,
    );
  }
  let tier: Tier = 'free';
  if (value.tier === undefined || value.tier === null) warnings.push('no tier: taken as "free"');
  else if (typeof value.tier === 'string' && (TIERS as readonly string[]).includes(value.tier)) tier = value.tier as Tier;
  else return reject(`unknown tier ${describe(value.tier)} (expected one of ${TIERS.join(', ')})`);

  const daily = counter(value, NAMES.daily, INT4_MAX, warnings);
  if (!daily.ok) return reject(daily.reason);
  const monthly = counter(value, NAMES.monthly, INT4_MAX, warnings);
  if (!monthly.ok) return reject(monthly.reason);
  const total = counter(value, NAMES.total, Number.MAX_SAFE_INTEGER, warnings);
  if (!total.ok) return reject(total.reason);
  const lastDaily = day(value, NAMES.lastDaily, warnings);
  if (!lastDaily.ok) return reject(lastDaily.reason);
  const lastMonthly = day(value, NAMES.lastMonthly, warnings);
  if (!lastMonthly.ok) return reject(lastMonthly.reason);

  const unknownKeys = Object.keys(value).filter((k) => !KNOWN_KEYS.has(k));
  if (unknownKeys.length > 0) warnings.push(`fields not imported (no column for them): ${unknownKeys.join(', ')}`);
  return {
    ok: true,
    key,
    row: {
      userId: key,
      tier,
      dailyUsed: daily.value,
      monthlyUsed: monthly.value,
      totalQueries: total.value,
      lastResetDaily: lastDaily.value,
      lastResetMonthly: `${lastMonthly.value.slice(0, 7)}-01`,
    },
    warnings,
  };
}

const present = (doc: Record<string, unknown>, names: readonly string[]) => names.find((n) => doc[n] !== undefined && doc[n] !== null);

function counter(doc: Record<string, unknown>, names: readonly string[], max: number, warnings: string[]): Field<number> {
  const name = present(doc, names);
  if (name === undefined) {
    warnings.push(`no ${names[0]}: taken as 0`);
    return { ok: true, value: 0 };
  }
  // `3.0` (a float that is whole) counts as 3.
  const value = numberValue(doc[name]);
  if (value === undefined || !Number.isInteger(value) || value < 0 || value > max) {
    return { ok: false, reason: `${name} must be an integer from 0 to ${max}, found ${describe(doc[name])}` };
  }
  return { ok: true, value };
}

function day(doc: Record<string, unknown>, names: readonly string[], warnings: string[]): Field<string> {
  const name = present(doc, names);
  if (name === undefined) {
    warnings.push(`no ${names[0]}: taken as 1970-01-01, so the count resets on the next query`);
    return { ok: true, value: '1970-01-01' };
  }
  const us = parseTimestampUs(doc[name]);
  if (us === null) return { ok: false, reason: `${name} is not a date: ${describe(doc[name])}` };
  return { ok: true, value: new Date(Math.floor(us / 1000)).toISOString().slice(0, 10) };
}

/**
 * The row written back over `previous` (the file's content, or undefined for
 * a new file): fields pgferry does not know are kept, each field in the
 * spelling the file already uses (the app's for a new file), dates in the
 * file's form, and limits updated where the file keeps copies.
 */
export function writeUsage(previous: unknown, row: UsageRow, limits: TierLimits): Record<string, unknown> {
  const doc: Record<string, unknown> = isObject(previous) ? { ...previous } : {};
  const put = (names: readonly string[], value: unknown) => {
    doc[present(doc, names) ?? names[0]!] = value;
  };
  const putDay = (names: readonly string[], date: string) => {
    const name = present(doc, names) ?? names[0]!;
    const style = styleOf(doc[name]);
    doc[name] = style ? formatTimestamp(Date.parse(`${date}T00:00:00Z`) * 1000, style) : date;
  };
  doc.user_id = row.userId;
  put(NAMES.daily, row.dailyUsed);
  put(NAMES.monthly, row.monthlyUsed);
  putDay(NAMES.lastDaily, row.lastResetDaily);
  putDay(NAMES.lastMonthly, row.lastResetMonthly);
  put(NAMES.total, row.totalQueries);
  doc.tier = row.tier;
  if ('daily_limit' in doc) doc.daily_limit = limits[row.tier].daily;
  if ('monthly_limit' in doc) doc.monthly_limit = limits[row.tier].monthly;
  return doc;
}
