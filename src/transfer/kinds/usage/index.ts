import type { Database, Sql, TransactionSql } from '../../../db/database.ts';
import { isValidUserId } from '../../../domain/ids.ts';
import { canonicalUsage, hashCanonical, type PreparedUsage, prepareUsage } from '../../canonical.ts';
import { isIgnorable } from '../../source.ts';
import { fileStem } from '../../sources/chat.ts';
import { type UsageRow, validateUsage } from '../../validate.ts';
import type { KeyQuery, KindDescriptor, KindScan, Prepared, PrepareInput, VerifyContext, VerifyItem, WriteContext } from '../types.ts';

/**
 * The chat app's usage counters (seeds 001 and 003): `usage/<userId>/usage.json`,
 * one row of `usage` per user. The key is the user folder.
 */
export const usageKind: KindDescriptor<PreparedUsage> = {
  name: 'usage',
  logKind: 'usage',
  keyLabel: 'user id',
  folders: ['usage'],
  module: import.meta.url,
  scan,
  fileKey: fileStem,
  isValidKey: isValidUserId,
  prepare,
  load: { table: 'usage', keyColumn: 'user_id', write, prune },
  verify: { compare, databaseKeys },
};

async function scan(walk: KindScan): Promise<void> {
  for (const entry of await walk.folder('usage')) {
    if (entry.type !== 'dir') {
      if (entry.type === 'file' && entry.name.endsWith('.json') && !isIgnorable(entry.name)) {
        walk.problem({
          rel: entry.rel,
          key: null,
          reason: 'usage file outside a user folder (expected usage/<userId>/usage.json): not read',
          severity: 'warning',
        });
      } else walk.ignore();
      continue;
    }
    for (const inner of await walk.list(entry)) {
      if (inner.type === 'file' && inner.name === 'usage.json') walk.add(inner);
      else walk.ignore();
    }
  }
  // A symlink problem below usage/<uid>/ names usage.json; its record key is the user folder.
  for (const problem of walk.problems) if (problem.key === 'usage') problem.key = problem.rel.split('/')[1] ?? null;
}

function prepare({ file, document }: PrepareInput): Prepared<PreparedUsage> {
  const result = validateUsage(file, document);
  if (!result.ok) return result;
  return { ok: true, record: prepareUsage(result.row, file.rel, file.size), warnings: result.warnings };
}

async function write(tx: TransactionSql, changed: readonly PreparedUsage[], context: WriteContext): Promise<void> {
  const limits = context.settings.tierLimits;
  const col = <T>(pick: (r: PreparedUsage) => T) => changed.map(pick);
  await tx`
    insert into usage (user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries, last_reset_daily, last_reset_monthly)
    select user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries, d::date, m::date from unnest(
      ${col((r) => r.key)}::text[], ${col((r) => r.row.tier)}::text[],
      ${col((r) => r.row.dailyUsed)}::int[], ${col((r) => limits[r.row.tier].daily)}::int[],
      ${col((r) => r.row.monthlyUsed)}::int[], ${col((r) => limits[r.row.tier].monthly)}::int[],
      ${col((r) => r.row.totalQueries)}::int8[],
      ${col((r) => r.row.lastResetDaily)}::text[], ${col((r) => r.row.lastResetMonthly)}::text[])
      as t(user_id, tier, daily_used, daily_limit, monthly_used, monthly_limit, total_queries, d, m)
    on conflict (user_id) do update set
      tier = excluded.tier, daily_used = excluded.daily_used, daily_limit = excluded.daily_limit,
      monthly_used = excluded.monthly_used, monthly_limit = excluded.monthly_limit, total_queries = excluded.total_queries,
      last_reset_daily = excluded.last_reset_daily, last_reset_monthly = excluded.last_reset_monthly, updated_at = now()`;
}

async function prune(tx: TransactionSql, keys: readonly string[]): Promise<void> {
  await tx`delete from usage where user_id = any(${keys}::text[])`;
}

function databaseKeys(sql: Sql): KeyQuery {
  return sql<{ key: string }[]>`select user_id as key from usage order by user_id`;
}

async function compare(items: readonly VerifyItem<PreparedUsage>[], context: VerifyContext): Promise<void> {
  const rows = await dbRows(
    context.db,
    items.map((item) => item.record.key),
  );
  const byId = new Map(rows.map((r) => [r.user_id, r]));
  for (const item of items) {
    const record = item.record;
    const row = byId.get(record.key);
    if (!row) {
      context.missing(item);
      continue;
    }
    const dbRow: UsageRow = {
      userId: row.user_id,
      tier: row.tier as UsageRow['tier'],
      dailyUsed: row.daily_used,
      monthlyUsed: row.monthly_used,
      totalQueries: Number(row.total_queries),
      lastResetDaily: row.d,
      lastResetMonthly: row.m,
    };
    if (hashCanonical(canonicalUsage(dbRow)) === record.hash) {
      context.matched(item);
      continue;
    }
    const fields = (Object.keys(dbRow) as Array<keyof UsageRow>).filter((k) => dbRow[k] !== record.row[k]);
    context.different(
      item,
      fields.map((k) => `${k}: source ${JSON.stringify(record.row[k])}, database ${JSON.stringify(dbRow[k])}`).join('; ') ||
        'content differs',
    );
  }
}

function dbRows(db: Database, keys: string[]) {
  return db.run(
    'verify.usage',
    (sql) => sql<
      { user_id: string; tier: string; daily_used: number; monthly_used: number; total_queries: string; d: string; m: string }[]
    >`
      select user_id, tier, daily_used, monthly_used, total_queries::text as total_queries,
             last_reset_daily::text as d, last_reset_monthly::text as m
        from usage where user_id = any(${keys}::text[])`,
    { idempotent: true },
  );
}
