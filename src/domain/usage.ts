import { TIERS, type Tier, type TierLimits } from '../config.ts';
import { invalidInput, PgFerryError } from '../errors.ts';

/**
 * Usage quotas (seed 003 requirement 4): per-user daily and monthly query
 * counts, reset at midnight UTC and on the first of the month — derived from
 * the clock at each call, so no cron is needed. `null` limits mean unlimited.
 */

export interface UsageWindow {
  used: number;
  limit: number | null;
  remaining: number | null;
  /** ISO 8601: when this window's count goes back to zero. */
  resetsAt: string;
}

export interface UsageStatus {
  userId: string;
  tier: Tier;
  daily: UsageWindow;
  monthly: UsageWindow;
  totalQueries: number;
}

export interface ConsumeResult extends UsageStatus {
  /** False when the call would exceed a limit; then nothing was counted. */
  allowed: boolean;
}

/** Stored counters, in the seed app's own terms. */
export interface UsageCounters {
  tier: Tier;
  dailyUsed: number;
  monthlyUsed: number;
  totalQueries: number;
  /** YYYY-MM-DD (UTC) of the day/month the counts belong to. */
  lastResetDaily: string;
  lastResetMonthly: string;
}

export interface Periods {
  day: string;
  month: string;
  dailyResetsAt: string;
  monthlyResetsAt: string;
}

export function periodsAt(now: Date): Periods {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  const d = now.getUTCDate();
  const iso = (date: Date) => date.toISOString().slice(0, 10);
  return {
    day: iso(new Date(Date.UTC(y, m, d))),
    month: iso(new Date(Date.UTC(y, m, 1))),
    dailyResetsAt: new Date(Date.UTC(y, m, d + 1)).toISOString(),
    monthlyResetsAt: new Date(Date.UTC(y, m + 1, 1)).toISOString(),
  };
}

export function validateTier(value: unknown): Tier {
  if (typeof value !== 'string' || !(TIERS as readonly string[]).includes(value)) {
    throw new PgFerryError('UNPROCESSABLE', `unknown tier ${JSON.stringify(value)}: expected one of ${TIERS.join(', ')}`, {
      field: 'tier',
    });
  }
  return value as Tier;
}

export function validateAmount(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1_000_000) {
    throw invalidInput(`amount must be an integer from 1 to 1000000, got ${String(value)}`, { field: 'n' });
  }
  return value;
}

/** Counters as of `now`: windows that ended are reset to zero. */
export function rollPeriods(counters: UsageCounters, periods: Periods): UsageCounters {
  const out = { ...counters };
  if (out.lastResetDaily !== periods.day) {
    out.dailyUsed = 0;
    out.lastResetDaily = periods.day;
  }
  if (out.lastResetMonthly !== periods.month) {
    out.monthlyUsed = 0;
    out.lastResetMonthly = periods.month;
  }
  return out;
}

export function freshCounters(periods: Periods, tier: Tier = 'free'): UsageCounters {
  return { tier, dailyUsed: 0, monthlyUsed: 0, totalQueries: 0, lastResetDaily: periods.day, lastResetMonthly: periods.month };
}

const window = (used: number, limit: number | null, resetsAt: string): UsageWindow => ({
  used,
  limit,
  remaining: limit === null ? null : Math.max(0, limit - used),
  resetsAt,
});

export function toStatus(userId: string, counters: UsageCounters, limits: TierLimits, periods: Periods): UsageStatus {
  const limit = limits[counters.tier];
  return {
    userId,
    tier: counters.tier,
    daily: window(counters.dailyUsed, limit.daily, periods.dailyResetsAt),
    monthly: window(counters.monthlyUsed, limit.monthly, periods.monthlyResetsAt),
    totalQueries: counters.totalQueries,
  };
}

/** The pure rule both backends implement: check and count in one step. */
export function consumeCounters(
  counters: UsageCounters,
  n: number,
  limits: TierLimits,
  periods: Periods,
): { allowed: boolean; counters: UsageCounters } {
  const current = rollPeriods(counters, periods);
  const limit = limits[current.tier];
  const fits = (used: number, max: number | null) => max === null || used + n <= max;
  if (!fits(current.dailyUsed, limit.daily) || !fits(current.monthlyUsed, limit.monthly)) {
    return { allowed: false, counters: current };
  }
  return {
    allowed: true,
    counters: {
      ...current,
      dailyUsed: current.dailyUsed + n,
      monthlyUsed: current.monthlyUsed + n,
      totalQueries: current.totalQueries + n,
    },
  };
}
