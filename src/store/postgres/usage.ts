import type { Tier, TierLimits } from '../../config.ts';
import type { Database, Sql } from '../../db/database.ts';
import { validateUserId } from '../../domain/ids.ts';
import {
  type ConsumeResult,
  freshCounters,
  periodsAt,
  rollPeriods,
  toStatus,
  type UsageCounters,
  type UsageStatus,
  validateAmount,
  validateTier,
} from '../../domain/usage.ts';
import { PgFerryError } from '../../errors.ts';
import { type Logger, silentLogger } from '../../log.ts';
import type { Clock, UsageRepository } from '../types.ts';
import { nowParam, query } from './shared.ts';

/**
 * Usage quotas on PostgreSQL: the rule of domain/usage.ts (consumeCounters)
 * as one atomic statement.
 *
 * Periods come from the database clock in UTC — `(now() at time zone 'utc')::date`
 * and the first of its month — unless a test injects a Clock, whose instant
 * is passed as `$now` instead. A row whose last_reset_* is not the current
 * day/month counts as zero for that window: no cron resets anything.
 *
 * Limits come from TierLimits (configuration), passed as parameters, and are
 * applied to the row's tier. The row's daily_limit/monthly_limit columns are
 * written with the limits in force at the last write, for people reading the
 * table; they are not what the check uses.
 */

interface StateRow {
  tier: Tier;
  daily_used: number;
  monthly_used: number;
  total_queries: number | bigint;
  /** 'YYYY-MM-DD' of the counts' day and month. */
  last_reset_daily: string;
  last_reset_monthly: string;
  /** 'YYYY-MM-DD': the current UTC day (database or injected clock). */
  today: string;
}

interface ConsumeRow extends StateRow {
  allowed: boolean;
}

/** How often consume() re-runs when a brand-new user's first row was inserted concurrently. */
const FIRST_ROW_ATTEMPTS = 5;

/** Six limit parameters in a fixed order: free, pro, enterprise × daily, monthly (null = unlimited). */
type LimitParams = [number | null, number | null, number | null, number | null, number | null, number | null];

const limitParams = (limits: TierLimits): LimitParams => [
  limits.free.daily,
  limits.free.monthly,
  limits.pro.daily,
  limits.pro.monthly,
  limits.enterprise.daily,
  limits.enterprise.monthly,
];

/**
 * The consume() statement, exported for the benchmark and tests (@internal).
 *
 * 1. `p`: the current UTC day and month.
 * 2. `cur`: the user's row, locked FOR UPDATE. Under READ COMMITTED a locked
 *    row is re-read at its latest committed version, so concurrent callers
 *    queue here and each sees its predecessors' counts.
 * 3. `d`: counts rolled to the current periods, the row tier's limits, and
 *    the decision (daily AND monthly must fit).
 * 4. `upd`: counts only when allowed; a refused call writes nothing.
 * 5. `ins`: a user without a row gets one (free tier) with the same decision.
 *    If another caller inserted it first, ON CONFLICT DO NOTHING returns no
 *    row and the caller re-runs the statement, which then takes path 2.
 */
export function consumeQuery(sql: Sql, userId: string, n: number, at: Date | null, limits: LimitParams) {
  const [freeDaily, freeMonthly, proDaily, proMonthly, entDaily, entMonthly] = limits;
  return sql<ConsumeRow[]>`
    with p as (
      select (t at time zone 'utc')::date as day, date_trunc('month', t at time zone 'utc')::date as month
        from (select coalesce(${at}::timestamptz, now()) as t) clock
    ),
    cur as materialized (
      select user_id, tier, daily_used, monthly_used, total_queries, last_reset_daily, last_reset_monthly
        from usage
       where user_id = ${userId}
         for update
    ),
    d as materialized (
      select r.*,
             (r.daily_limit is null or r.daily_used + ${n}::int <= r.daily_limit)
               and (r.monthly_limit is null or r.monthly_used + ${n}::int <= r.monthly_limit) as allowed
        from (select cur.user_id, cur.tier, cur.total_queries, p.day, p.month,
                     case when cur.last_reset_daily = p.day then cur.daily_used else 0 end as daily_used,
                     case when cur.last_reset_monthly = p.month then cur.monthly_used else 0 end as monthly_used,
                     case cur.tier when 'free' then ${freeDaily}::int when 'pro' then ${proDaily}::int else ${entDaily}::int end
                       as daily_limit,
                     case cur.tier when 'free' then ${freeMonthly}::int when 'pro' then ${proMonthly}::int else ${entMonthly}::int end
                       as monthly_limit
                from cur cross join p) r
    ),
    upd as (
      update usage u
         set daily_used = d.daily_used + ${n}::int,
             monthly_used = d.monthly_used + ${n}::int,
             total_queries = u.total_queries + ${n}::int,
             last_reset_daily = d.day,
             last_reset_monthly = d.month,
             daily_limit = d.daily_limit,
             monthly_limit = d.monthly_limit,
             updated_at = now()
        from d
       where u.user_id = d.user_id and d.allowed
    ),
    ins as (
      insert into usage (user_id, tier, daily_used, monthly_used, total_queries,
                         last_reset_daily, last_reset_monthly, daily_limit, monthly_limit)
      select ${userId}, 'free', o.counted, o.counted, o.counted, p.day, p.month, ${freeDaily}::int, ${freeMonthly}::int
        from p
       cross join lateral (
             select case when (${freeDaily}::int is null or ${n}::int <= ${freeDaily}::int)
                          and (${freeMonthly}::int is null or ${n}::int <= ${freeMonthly}::int)
                         then ${n}::int else 0 end as counted
           ) o
       where not exists (select 1 from cur)
      on conflict (user_id) do nothing
      returning tier, daily_used, monthly_used, total_queries, last_reset_daily, last_reset_monthly
    )
    select d.allowed, d.tier,
           d.daily_used + case when d.allowed then ${n}::int else 0 end as daily_used,
           d.monthly_used + case when d.allowed then ${n}::int else 0 end as monthly_used,
           d.total_queries + case when d.allowed then ${n}::int else 0 end as total_queries,
           d.day::text as last_reset_daily, d.month::text as last_reset_monthly, d.day::text as today
      from d
    union all
    select ins.total_queries > 0, ins.tier, ins.daily_used, ins.monthly_used, ins.total_queries,
           ins.last_reset_daily::text, ins.last_reset_monthly::text, p.day::text
      from ins cross join p`;
}

export interface PostgresUsageOptions {
  db: Database;
  tierLimits: TierLimits;
  clock?: Clock;
  logger?: Logger;
}

export class PostgresUsage implements UsageRepository {
  private readonly db: Database;
  private readonly limits: TierLimits;
  private readonly limitParams: LimitParams;
  private readonly clock: Clock | undefined;
  private readonly logger: Logger;

  constructor(options: PostgresUsageOptions) {
    this.db = options.db;
    this.limits = options.tierLimits;
    this.limitParams = limitParams(options.tierLimits);
    this.clock = options.clock;
    this.logger = options.logger ?? silentLogger;
  }

  async get(userId: string): Promise<UsageStatus> {
    validateUserId(userId);
    const at = nowParam(this.clock);
    // A user without a row reads as a fresh free-tier user; nothing is inserted.
    const rows = await query(
      this.db,
      'usage.get',
      (sql) => sql<(Omit<StateRow, 'tier'> & { tier: Tier | null })[]>`
        with p as (
          select (t at time zone 'utc')::date as day, date_trunc('month', t at time zone 'utc')::date as month
            from (select coalesce(${at}::timestamptz, now()) as t) clock
        )
        select u.tier, u.daily_used, u.monthly_used, u.total_queries,
               u.last_reset_daily::text as last_reset_daily, u.last_reset_monthly::text as last_reset_monthly,
               p.day::text as today
          from p left join usage u on u.user_id = ${userId}`,
      { idempotent: true },
    );
    const row = rows[0]!;
    if (row.tier === null) {
      const periods = periodsOf(row.today);
      return toStatus(userId, freshCounters(periods), this.limits, periods);
    }
    return this.status(userId, row as StateRow);
  }

  async consume(userId: string, n = 1): Promise<ConsumeResult> {
    validateUserId(userId);
    validateAmount(n);
    const at = nowParam(this.clock);
    for (let attempt = 1; attempt <= FIRST_ROW_ATTEMPTS; attempt++) {
      const rows = await query(this.db, 'usage.consume', (sql) => consumeQuery(sql, userId, n, at, this.limitParams));
      const row = rows[0];
      if (row) return { ...this.status(userId, row), allowed: row.allowed };
      this.logger.debug({ userId, attempt }, 'usage row created concurrently; re-running consume');
    }
    throw new PgFerryError('CONFLICT', `could not record usage for ${JSON.stringify(userId)}: its row kept changing; retry`);
  }

  async setTier(userId: string, tier: Tier): Promise<UsageStatus> {
    validateUserId(userId);
    validateTier(tier);
    const at = nowParam(this.clock);
    const limit = this.limits[tier];
    const rows = await query(
      this.db,
      'usage.setTier',
      (sql) => sql<StateRow[]>`
        with p as (
          select (t at time zone 'utc')::date as day, date_trunc('month', t at time zone 'utc')::date as month
            from (select coalesce(${at}::timestamptz, now()) as t) clock
        ),
        up as (
          insert into usage as u (user_id, tier, last_reset_daily, last_reset_monthly, daily_limit, monthly_limit)
          select ${userId}, ${tier}, p.day, p.month, ${limit.daily}::int, ${limit.monthly}::int from p
          on conflict (user_id) do update
             set tier = excluded.tier, daily_limit = excluded.daily_limit, monthly_limit = excluded.monthly_limit, updated_at = now()
          returning u.tier, u.daily_used, u.monthly_used, u.total_queries, u.last_reset_daily, u.last_reset_monthly
        )
        select up.tier, up.daily_used, up.monthly_used, up.total_queries,
               up.last_reset_daily::text as last_reset_daily, up.last_reset_monthly::text as last_reset_monthly,
               p.day::text as today
          from up cross join p`,
      { idempotent: true },
    );
    return this.status(userId, rows[0]!);
  }

  private status(userId: string, row: StateRow): UsageStatus {
    const periods = periodsOf(row.today);
    const counters: UsageCounters = rollPeriods(
      {
        tier: row.tier,
        dailyUsed: row.daily_used,
        monthlyUsed: row.monthly_used,
        totalQueries: Number(row.total_queries),
        lastResetDaily: row.last_reset_daily,
        lastResetMonthly: row.last_reset_monthly,
      },
      periods,
    );
    return toStatus(userId, counters, this.limits, periods);
  }
}

/** Periods (day, month, reset instants) of a 'YYYY-MM-DD' UTC day. */
const periodsOf = (day: string) => periodsAt(new Date(`${day}T00:00:00Z`));
