import type { PoolStats, SlowQuery } from '../../db/database.ts';
import { formatBytes } from '../../domain/limits.ts';
import { formatCount, html, type Raw, stackedBar, table } from '../html.ts';
import { type AdminContext, defineSection, NEEDS_POSTGRES } from './types.ts';

/**
 * Database health: the pool (this process), the server's connections by
 * state, the slowest recent statements — labels and text with placeholders,
 * never values — and the tables by size with their row counts.
 */

interface DatabaseData {
  available: boolean;
  pool: PoolStats | null;
  connections: Array<{ state: string; count: number }>;
  slowQueryCount: number;
  slowest: SlowQuery[];
  tables: Array<{ table: string; rows: number; bytes: number }>;
}

const SLOWEST = 10;

export const databaseSection = defineSection<DatabaseData>({
  id: 'database',
  title: 'Database health',
  async collect(ctx: AdminContext) {
    const { db } = ctx;
    if (!db) return { available: false, pool: null, connections: [], slowQueryCount: 0, slowest: [], tables: [] };
    const [connections, tables] = await Promise.all([
      db.run(
        'admin.connections',
        (sql) => sql<{ state: string; count: number }[]>`
          select coalesce(state, 'other') as state, count(*)::int as count from pg_stat_activity
           where datname = current_database() group by 1 order by 1`,
        { idempotent: true },
      ),
      db.run(
        'admin.tables',
        (sql) => sql<{ table: string; rows: number; bytes: number }[]>`
          select relname as table, n_live_tup::bigint as rows, pg_total_relation_size(relid)::bigint as bytes
            from pg_stat_user_tables where schemaname = current_schema()
           order by pg_total_relation_size(relid) desc, relname limit 20`,
        { idempotent: true },
      ),
    ]);
    return {
      available: true,
      pool: db.poolStats(),
      connections: [...connections],
      slowQueryCount: db.counters.slow,
      slowest: [...db.slowQueries].sort((a, b) => b.ms - a.ms).slice(0, SLOWEST),
      tables: tables.map((t) => ({ table: t.table, rows: Number(t.rows), bytes: Number(t.bytes) })),
    };
  },
  html(data) {
    if (!data.available) return html`<p class="muted">${NEEDS_POSTGRES}</p>`;
    const pool = data.pool!;
    const slow: Raw =
      data.slowest.length === 0
        ? html`<p class="muted">No slow statements in this process.</p>`
        : table(
            ['ms', 'label', 'statement (no values)', 'at'],
            data.slowest.map((q) => [q.ms, q.label, q.text ?? '—', q.at]),
            { numeric: [0] },
          );
    return html`<div class="split">
      <div><p>pool (this process): ${stackedBar(
        [
          { label: 'in use', value: pool.inUse, tone: 'info' },
          { label: 'free', value: pool.max - pool.inUse, tone: 'muted' },
          { label: 'waiting', value: pool.waiting, tone: 'bad' },
        ],
        { width: 200, title: `pool: ${pool.inUse} in use of ${pool.max}, ${pool.waiting} waiting` },
      )} <span class="num">${pool.inUse} in use / ${pool.max} · ${pool.waiting} waiting</span></p>
      <p>server connections: ${data.connections.map((c) => `${c.state} ${c.count}`).join(' · ') || '—'}</p>
      <p>slow statements since start: <strong>${formatCount(data.slowQueryCount)}</strong></p>${slow}</div>
      <div>${table(
        ['table', 'rows (est.)', 'size'],
        data.tables.map((t) => [t.table, formatCount(t.rows), formatBytes(t.bytes)]),
        { numeric: [1, 2] },
      )}</div></div>`;
  },
  text(data) {
    if (!data.available) return [NEEDS_POSTGRES];
    const biggest = data.tables
      .slice(0, 5)
      .map((t) => `${t.table} ${formatCount(t.rows)} rows ${formatBytes(t.bytes)}`)
      .join(', ');
    return [`connections ${data.connections.map((c) => `${c.state} ${c.count}`).join(', ')}`, `largest tables: ${biggest || '-'}`];
  },
});
