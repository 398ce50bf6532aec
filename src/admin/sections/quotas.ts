import { TIERS } from '../../config.ts';
import { badge, html, table } from '../html.ts';
import { type AdminContext, defineSection, NEEDS_POSTGRES } from './types.ts';

/** Users at or near (≥ 80 %) their daily or monthly query limit; a limit of their own overrides the tier's (TIER_LIMITS). */

interface QuotaRow {
  userId: string;
  tier: string;
  dailyUsed: number;
  dailyLimit: number | null;
  monthlyUsed: number;
  monthlyLimit: number | null;
  /** The larger of the two ratios, 0..1+. */
  ratio: number;
}

interface QuotasData {
  available: boolean;
  users: QuotaRow[];
}

export const NEAR_LIMIT = 0.8;
const SHOWN = 20;

export const quotasSection = defineSection<QuotasData>({
  id: 'quotas',
  title: 'Quotas',
  async collect(ctx: AdminContext) {
    if (!ctx.db) return { available: false, users: [] };
    const limits = ctx.config.tierLimits;
    const tiers = TIERS.map((tier) => ({ tier, daily: limits[tier].daily, monthly: limits[tier].monthly }));
    const rows = await ctx.db.run(
      'admin.quotas',
      (sql) => sql<Record<string, unknown>[]>`
        with tier_limits as (
          select * from jsonb_to_recordset(${sql.json(tiers)}) as t(tier text, daily int, monthly int)
        ), used as (
          -- A counter from an earlier day or month has been reset in effect (the store resets it on the next query).
          select u.user_id, u.tier,
                 case when u.last_reset_daily = (now() at time zone 'utc')::date then u.daily_used else 0 end as daily_used,
                 case when u.last_reset_monthly = date_trunc('month', now() at time zone 'utc')::date then u.monthly_used else 0 end as monthly_used,
                 coalesce(u.daily_limit, t.daily) as daily_limit, coalesce(u.monthly_limit, t.monthly) as monthly_limit
            from usage u left join tier_limits t on t.tier = u.tier
        )
        select *, greatest(coalesce(daily_used::float / nullif(daily_limit, 0), 0),
                           coalesce(monthly_used::float / nullif(monthly_limit, 0), 0),
                           case when daily_limit = 0 or monthly_limit = 0 then 1 else 0 end) as ratio
          from used
         where greatest(coalesce(daily_used::float / nullif(daily_limit, 0), 0),
                        coalesce(monthly_used::float / nullif(monthly_limit, 0), 0),
                        case when daily_limit = 0 or monthly_limit = 0 then 1 else 0 end) >= ${NEAR_LIMIT}
         order by ratio desc, user_id limit ${SHOWN}`,
      { idempotent: true },
    );
    return {
      available: true,
      users: rows.map((r) => ({
        userId: String(r.user_id),
        tier: String(r.tier),
        dailyUsed: Number(r.daily_used),
        dailyLimit: r.daily_limit === null ? null : Number(r.daily_limit),
        monthlyUsed: Number(r.monthly_used),
        monthlyLimit: r.monthly_limit === null ? null : Number(r.monthly_limit),
        ratio: Number(r.ratio),
      })),
    };
  },
  html(data) {
    if (!data.available) return html`<p class="muted">${NEEDS_POSTGRES}</p>`;
    if (data.users.length === 0) return html`<p class="muted">No user is at or near a limit (≥ ${NEAR_LIMIT * 100} %).</p>`;
    const of = (used: number, limit: number | null) => `${used} / ${limit ?? '∞'}`;
    return table(
      ['user', 'tier', 'today', 'this month', ''],
      data.users.map((u) => [
        u.userId,
        u.tier,
        of(u.dailyUsed, u.dailyLimit),
        of(u.monthlyUsed, u.monthlyLimit),
        u.ratio >= 1 ? badge('at limit', 'bad') : badge(`${Math.round(u.ratio * 100)} %`, 'warn'),
      ]),
      { numeric: [2, 3] },
    );
  },
  text(data) {
    if (!data.available) return [NEEDS_POSTGRES];
    const at = data.users.filter((u) => u.ratio >= 1).length;
    return [`${at} users at a limit, ${data.users.length - at} near one${data.users.length >= SHOWN ? ' (first 20)' : ''}`];
  },
});
