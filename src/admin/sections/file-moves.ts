import { errorCode } from '../../db/database.ts';
import { formatBytes } from '../../domain/limits.ts';
import { formatCount, html, lineChart, type Segment, stackedBar, table } from '../html.ts';
import { type AdminContext, defineSection, NEEDS_POSTGRES } from './types.ts';

/**
 * File moves (seed 004's s3_migration_progress, over pgferry's file_moves):
 * objects and bytes by status, and the objects moved over time as a chart.
 */

interface StatusRow {
  status: string;
  objects: number;
  bytes: number;
}

interface FileMovesData {
  available: boolean;
  byStatus: StatusRow[];
  /** Cumulative objects and bytes moved, [epoch ms, value], one point per time bucket. */
  movedOverTime: { objects: Array<[number, number]>; bytes: Array<[number, number]> };
}

const BUCKETS = 24;
const TONES: Record<string, Segment['tone']> = { migrated: 'ok', pending: 'muted', failed: 'bad', skipped: 'warn' };

export const fileMovesSection = defineSection<FileMovesData>({
  id: 'file-moves',
  title: 'File moves',
  async collect(ctx: AdminContext) {
    const empty: FileMovesData = { available: false, byStatus: [], movedOverTime: { objects: [], bytes: [] } };
    if (!ctx.db) return empty;
    try {
      return await ctx.db.run(
        'admin.file_moves',
        async (sql) => {
          const byStatus = await sql<StatusRow[]>`
            select status, sum(objects)::bigint as objects, sum(bytes)::bigint as bytes
              from file_move_progress group by status order by status`;
          const buckets = await sql<{ at: Date; objects: number; bytes: number }[]>`
            with span as (
              select min(migrated_at) as lo, max(migrated_at) as hi from file_moves where status = 'migrated'
            ), bucketed as (
              select width_bucket(extract(epoch from m.migrated_at), extract(epoch from s.lo), extract(epoch from s.hi) + 0.001, ${BUCKETS}) as b,
                     count(*) as objects, coalesce(sum(m.size), 0) as bytes, max(m.migrated_at) as at
                from file_moves m, span s
               where m.status = 'migrated'
               group by 1
            )
            select at, objects::bigint as objects, bytes::bigint as bytes from bucketed order by b`;
          let objects = 0;
          let bytes = 0;
          const movedOverTime: FileMovesData['movedOverTime'] = { objects: [], bytes: [] };
          for (const bucket of buckets) {
            objects += Number(bucket.objects);
            bytes += Number(bucket.bytes);
            movedOverTime.objects.push([bucket.at.getTime(), objects]);
            movedOverTime.bytes.push([bucket.at.getTime(), bytes]);
          }
          return {
            available: true,
            byStatus: byStatus.map((r) => ({ ...r, objects: Number(r.objects), bytes: Number(r.bytes) })),
            movedOverTime,
          };
        },
        { idempotent: true },
      );
    } catch (error) {
      if (errorCode(error) === '42P01') return empty;
      throw error;
    }
  },
  html(data) {
    if (!data.available) return html`<p class="muted">${NEEDS_POSTGRES}</p>`;
    const total = data.byStatus.reduce((n, r) => n + r.objects, 0);
    if (total === 0) return html`<p class="muted">No file moves recorded (file_moves is empty).</p>`;
    const segments = (pick: (r: StatusRow) => number) =>
      data.byStatus.map((r) => ({ label: r.status, value: pick(r), tone: TONES[r.status] ?? 'info' }));
    return html`<div class="split">
      <div><p>objects ${stackedBar(
        segments((r) => r.objects),
        { width: 300 },
      )}</p>
           <p>bytes&nbsp;&nbsp; ${stackedBar(
             segments((r) => r.bytes),
             { width: 300, title: 'bytes by status' },
           )}</p>
           ${table(
             ['status', 'objects', 'bytes'],
             data.byStatus.map((r) => [r.status, formatCount(r.objects), formatBytes(r.bytes)]),
             { numeric: [1, 2] },
           )}</div>
      <div>${lineChart([{ label: 'objects moved', tone: 'ok', points: data.movedOverTime.objects }], { title: 'objects moved over time', height: 90 })}
           ${lineChart([{ label: 'bytes moved', tone: 'info', points: data.movedOverTime.bytes }], { title: 'bytes moved over time', height: 90, unit: formatBytes })}</div>
    </div>`;
  },
  text(data) {
    if (!data.available) return [NEEDS_POSTGRES];
    if (data.byStatus.length === 0) return ['no file moves recorded'];
    return [data.byStatus.map((r) => `${r.status} ${formatCount(r.objects)} (${formatBytes(r.bytes)})`).join(', ')];
  },
});
