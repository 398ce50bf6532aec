import type postgres from 'postgres';
import type { Tier, TierLimits } from '../../config.ts';
import type { Sql } from '../../db/database.ts';
import { freshCounters, periodsAt } from '../../domain/usage.ts';
import { PgFerryError } from '../../errors.ts';
import { type Logger, silentLogger } from '../../log.ts';
import type { UsageBackend, UsageState } from '../core/backend.ts';
import type { Clock } from '../types.ts';
import { nowParam, query, type SqlRunner } from './shared.ts';

/**
 * Usage quotas on PostgreSQL: the rule of domain/usage.ts (consumeCounters)
 * as one atomic statement; the storage half of the repository
 * (store/core/usage.ts validates and builds the status).
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

export interface StateRow {
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

export interface ConsumeRow extends StateRow {
  allowed: boolean;
}

/** How often consume() re-runs when a brand-new user's first row was inserted concurrently. */
const FIRST_ROW_ATTEMPTS = 5;

/** A piece of SQL to splice into a statement. */
type Fragment = postgres.Fragment;

/** Six limit parameters in a fixed order: free, pro, enterprise × daily, monthly (null = unlimited). */
export type LimitParams = [number | null, number | null, number | null, number | null, number | null, number | null];

export const limitParams = (limits: TierLimits): LimitParams => [
  limits.free.daily,
  limits.free.monthly,
  limits.pro.daily,
  limits.pro.monthly,
  limits.enterprise.daily,
  limits.enterprise.monthly,
];

/** The CTE that fixes "now": the current UTC day and month (database clock, or the injected instant `at`). */
const periodsCte = (sql: Sql, at: Date | null) => sql`
    p as (
      select (t at time zone 'utc')::date as day, date_trunc('month', t at time zone 'utc')::date as month
        from (select coalesce(${at}::timestamptz, now()) as t) clock
    )`;

/**
 * The check-and-count as CTEs, shared by consume() and the atomic send
 * (conversations.ts): `gate` is a boolean SQL expression that must hold for
 * anything to be counted (`true` for consume; "the conversation exists" for
 * a send).
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
 * 6. `decision`: one row — the outcome and the counts after it — unless (5)
 *    lost that race or the gate is false.
 */
export function consumeCtes(sql: Sql, userId: string, n: number, at: Date | null, limits: LimitParams, gate: Fragment) {
  const [freeDaily, freeMonthly, proDaily, proMonthly, entDaily, entMonthly] = limits;
  return sql`
    ${periodsCte(sql, at)},
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
                from cur cross join p
               where ${gate}) r
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
       where not exists (select 1 from cur) and ${gate}
      on conflict (user_id) do nothing
      returning tier, daily_used, monthly_used, total_queries, last_reset_daily, last_reset_monthly
    ),
    decision as (
      select d.allowed, d.tier,
             d.daily_used + case when d.allowed then ${n}::int else 0 end as daily_used,
             d.monthly_used + case when d.allowed then ${n}::int else 0 end as monthly_used,
             d.total_queries + case when d.allowed then ${n}::int else 0 end as total_queries,
             d.day::text as last_reset_daily, d.month::text as last_reset_monthly, d.day::text as today
        from d
      union all
      select ins.total_queries > 0, ins.tier, ins.daily_used, ins.monthly_used, ins.total_queries,
             ins.last_reset_daily::text, ins.last_reset_monthly::text, p.day::text
        from ins cross join p
    )`;
}

/** The consume() statement, exported for the benchmark and tests (@internal). */
export function consumeQuery(sql: Sql, userId: string, n: number, at: Date | null, limits: LimitParams) {
  return sql<ConsumeRow[]>`with ${consumeCtes(sql, userId, n, at, limits, sql`true`)} select * from decision`;
}

/** What a statement built on consumeCtes answers when it must run again. */
export const RERUN: unique symbol = Symbol('rerun');

/**
 * Run a statement built on consumeCtes until it decides: no decision row
 * means a brand-new user's first row was inserted concurrently (`run`
 * answers RERUN), and the re-run finds it.
 */
export async function untilDecided<T>(logger: Logger, userId: string, run: () => Promise<T | typeof RERUN>): Promise<T> {
  for (let attempt = 1; attempt <= FIRST_ROW_ATTEMPTS; attempt++) {
    const decided = await run();
    if (decided !== RERUN) return decided;
    logger.debug({ userId, attempt }, 'usage row created concurrently; re-running consume');
  }
  throw new PgFerryError('CONFLICT', `could not record usage for ${JSON.stringify(userId)}: its row kept changing; retry`);
}

/** Stored counters and periods of a row (the core rolls them to the current periods). */
export function usageStateOf(row: StateRow): UsageState {
  return {
    periods: periodsOf(row.today),
    counters: {
      tier: row.tier,
      dailyUsed: row.daily_used,
      monthlyUsed: row.monthly_used,
      totalQueries: Number(row.total_queries),
      lastResetDaily: row.last_reset_daily,
      lastResetMonthly: row.last_reset_monthly,
    },
  };
}

export interface PostgresUsageOptions {
  db: SqlRunner;
  tierLimits: TierLimits;
  clock?: Clock;
  logger?: Logger;
}

export function createPostgresUsage(options: PostgresUsageOptions): UsageBackend {
  const { db, clock } = options;
  const limits = options.tierLimits;
  const params = limitParams(limits);
  const logger = options.logger ?? silentLogger;
  return {
    async read(userId) {
      const at = nowParam(clock);
      // A user without a row reads as a fresh free-tier user; nothing is inserted.
      const rows = await query(
        db,
        'usage.get',
        (sql) => sql<(Omit<StateRow, 'tier'> & { tier: Tier | null })[]>`
          with ${periodsCte(sql, at)}
          select u.tier, u.daily_used, u.monthly_used, u.total_queries,
                 u.last_reset_daily::text as last_reset_daily, u.last_reset_monthly::text as last_reset_monthly,
                 p.day::text as today
            from p left join usage u on u.user_id = ${userId}`,
        { idempotent: true },
      );
      const row = rows[0]!;
      if (row.tier === null) {
        const periods = periodsOf(row.today);
        return { counters: freshCounters(periods), periods };
      }
      return usageStateOf(row as StateRow);
    },

    async consume(userId, n) {
      const at = nowParam(clock);
      return untilDecided(logger, userId, async () => {
        const [row] = await query(db, 'usage.consume', (sql) => consumeQuery(sql, userId, n, at, params));
        return row ? { ...usageStateOf(row), allowed: row.allowed } : RERUN;
      });
    },

    async setTier(userId, tier) {
      const at = nowParam(clock);
      const limit = limits[tier];
      const rows = await query(
        db,
        'usage.setTier',
        (sql) => sql<StateRow[]>`
          with ${periodsCte(sql, at)},
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
      return usageStateOf(rows[0]!);
    },
  };
}

/** Periods (day, month, reset instants) of a 'YYYY-MM-DD' UTC day. */
const periodsOf = (day: string) => periodsAt(new Date(`${day}T00:00:00Z`));
