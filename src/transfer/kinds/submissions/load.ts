import type { TransactionSql } from '../../../db/database.ts';
import { formatTimestampUs } from '../../validate.ts';
import type { WriteContext } from '../types.ts';
import type { SubmissionLoad } from './index.ts';

/**
 * Writing one batch of submissions: upserted from unnest() arrays (a
 * re-imported submission keeps its row id, so its jobs keep their link),
 * then its file rows replaced. Files take the submission's created_at as
 * uploaded_at, so a re-import writes the same rows.
 */
export async function writeSubmissions(tx: TransactionSql, changed: readonly SubmissionLoad[], _context: WriteContext): Promise<void> {
  const col = <T>(pick: (r: SubmissionLoad) => T) => changed.map(pick);
  const rows = await tx<{ id: string; submission_id: string }[]>`
    insert into submissions (submission_id, module, user_id, status, site_name, visit_date, form_data, created_at, submitted_by_ip)
    select k, m, u, st, sn, vd::date, fd::jsonb, c::timestamptz, ip from unnest(
      ${col((r) => r.key)}::text[], ${col((r) => r.head.module)}::text[], ${col((r) => r.head.user_id)}::text[],
      ${col((r) => r.head.status)}::text[], ${col((r) => r.head.site_name)}::text[], ${col((r) => r.head.visit_date)}::text[],
      ${col((r) => r.formData)}::text[], ${col((r) => formatTimestampUs(r.head.created_at))}::text[],
      ${col((r) => r.head.submitted_by_ip)}::text[])
      as t(k, m, u, st, sn, vd, fd, c, ip)
    on conflict (submission_id) do update set
      module = excluded.module, user_id = excluded.user_id, status = excluded.status, site_name = excluded.site_name,
      visit_date = excluded.visit_date, form_data = excluded.form_data, created_at = excluded.created_at,
      submitted_by_ip = excluded.submitted_by_ip
    returning id::text, submission_id`;
  const idOf = new Map(rows.map((r) => [r.submission_id, r.id]));
  await tx`delete from uploaded_files where submission_id = any(${[...idOf.values()]}::int8[])`;

  const files = changed.flatMap((r) => r.files.map((f) => ({ id: idOf.get(r.key)!, at: formatTimestampUs(r.head.created_at), ...f })));
  if (files.length === 0) return;
  const fcol = <T>(pick: (f: (typeof files)[number]) => T) => files.map(pick);
  // Booleans go as text: postgres.js sends a boolean array in a form PostgreSQL will not cast.
  // `with ordinality … order by n`: the rows get their ids in document order, which verify compares.
  await tx`
    insert into uploaded_files (submission_id, field, cloudinary_url, cloudinary_public_id, file_type, original_filename, file_size, is_cloud, uploaded_at)
    select s, f, u, p, ft, o, sz, ic::bool, at::timestamptz from unnest(
      ${fcol((f) => f.id)}::int8[], ${fcol((f) => f.field)}::text[], ${fcol((f) => f.url)}::text[], ${fcol((f) => f.public_id)}::text[],
      ${fcol((f) => f.file_type)}::text[], ${fcol((f) => f.original_filename)}::text[], ${fcol((f) => f.file_size)}::int8[],
      ${fcol((f) => String(f.is_cloud))}::text[], ${fcol((f) => f.at)}::text[])
      with ordinality as t(s, f, u, p, ft, o, sz, ic, at, n)
    order by n`;
}

/** --prune: the submissions whose files are gone; their file rows and jobs go with them (on delete cascade). */
export async function pruneSubmissions(tx: TransactionSql, keys: readonly string[]): Promise<void> {
  await tx`delete from submissions where submission_id = any(${keys as string[]}::text[])`;
}
