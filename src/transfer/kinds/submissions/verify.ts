import type { Sql } from '../../../db/database.ts';
import { hashCanonical, jsonbText } from '../../canonical.ts';
import type { KeyQuery, VerifyContext, VerifyItem } from '../types.ts';
import { canonicalSubmission, type FileRow, type SubmissionHead, type SubmissionLoad } from './index.ts';

/**
 * Verifying submissions: the database side's canonical text is built from
 * the rows (form_data as the server prints it, jsonb::text, never parsed
 * here; the file rows in id order) and hashed like the source's.
 */

export const submissionKeys = (sql: Sql): KeyQuery =>
  sql<{ key: string }[]>`select submission_id as key from submissions order by submission_id`;

interface DbSubmission {
  id: string;
  submission_id: string;
  module: string;
  user_id: string | null;
  status: string;
  site_name: string | null;
  visit_date: string | null;
  created_us: string;
  submitted_by_ip: string | null;
  form_data: string;
}

interface DbFile {
  submission_id: string;
  field: string | null;
  cloudinary_url: string;
  cloudinary_public_id: string | null;
  file_type: string | null;
  original_filename: string | null;
  file_size: string | null;
  is_cloud: boolean;
}

export async function compareSubmissions(items: readonly VerifyItem<SubmissionLoad>[], context: VerifyContext): Promise<void> {
  const keys = items.map((item) => item.record.key);
  const { rows, files } = await context.db.run(
    'verify.submissions',
    async (sql) => ({
      rows: await sql<DbSubmission[]>`
        select id::text, submission_id, module, user_id, status, site_name, visit_date::text,
               (extract(epoch from created_at) * 1000000)::int8::text as created_us, submitted_by_ip, form_data::text
          from submissions where submission_id = any(${keys}::text[])`,
      files: await sql<DbFile[]>`
        select s.submission_id, f.field, f.cloudinary_url, f.cloudinary_public_id, f.file_type, f.original_filename,
               f.file_size::text, f.is_cloud
          from uploaded_files f join submissions s on s.id = f.submission_id
         where s.submission_id = any(${keys}::text[])
         order by f.id`,
    }),
    { idempotent: true },
  );
  const filesOf = new Map<string, FileRow[]>();
  for (const f of files) {
    const list = filesOf.get(f.submission_id) ?? [];
    list.push({
      field: f.field ?? '',
      url: f.cloudinary_url,
      public_id: f.cloudinary_public_id,
      file_type: f.file_type ?? '',
      original_filename: f.original_filename,
      file_size: f.file_size === null ? null : Number(f.file_size),
      is_cloud: f.is_cloud,
    });
    filesOf.set(f.submission_id, list);
  }
  const byKey = new Map(rows.map((r) => [r.submission_id, r]));
  for (const item of items) {
    const row = byKey.get(item.record.key);
    if (!row) {
      context.missing(item);
      continue;
    }
    const head: SubmissionHead = {
      submission_id: row.submission_id,
      module: row.module,
      user_id: row.user_id,
      status: row.status,
      site_name: row.site_name,
      visit_date: row.visit_date,
      created_at: Number(row.created_us),
      submitted_by_ip: row.submitted_by_ip,
    };
    const dbFiles = filesOf.get(row.submission_id) ?? [];
    if (hashCanonical(canonicalSubmission(head, row.form_data, dbFiles)) === item.record.hash) context.matched(item);
    else context.different(item, firstDifference(item.record, head, row.form_data, dbFiles));
  }
}

/** What differs, named for the report (values by type and length only where they may be large). */
function firstDifference(source: SubmissionLoad, head: SubmissionHead, formData: string, files: readonly FileRow[]): string {
  const columns = (Object.keys(head) as Array<keyof SubmissionHead>).filter((k) => head[k] !== source.head[k]);
  if (columns.length > 0) {
    return columns.map((k) => `${k}: source ${JSON.stringify(source.head[k])}, database ${JSON.stringify(head[k])}`).join('; ');
  }
  if (formData !== source.formData) return `form_data differs (${formDataDifference(source.formData, formData)})`;
  if (files.length !== source.files.length) return `file rows: source ${source.files.length}, database ${files.length}`;
  const i = files.findIndex((f, n) => jsonbText(f) !== jsonbText(source.files[n]));
  return i >= 0 ? `file row ${i} (${source.files[i]!.field}) differs` : 'content differs';
}

/** The first top-level key of form_data whose value differs. */
function formDataDifference(source: string, database: string): string {
  try {
    const a = JSON.parse(source) as Record<string, unknown>;
    const b = JSON.parse(database) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const key = keys.find((k) => jsonbText(a[k]) !== jsonbText(b[k]));
    return key === undefined ? 'in number form' : `at key ${JSON.stringify(key.slice(0, 60))}`;
  } catch {
    return 'not comparable';
  }
}
