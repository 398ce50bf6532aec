import type { Sql, TransactionSql } from '../../../db/database.ts';
import { isValidRecordId } from '../../../domain/ids.ts';
import { type FormsJob, readJob } from '../../../formats/forms-job.ts';
import { hashCanonical, jsonbText } from '../../canonical.ts';
import { formsFileKey, scanFolder } from '../../sources/forms.ts';
import { formatTimestampUs, isStorableJson, UNSTORABLE } from '../../validate.ts';
import type {
  KeyQuery,
  KindDescriptor,
  KindScan,
  PrepareContext,
  Prepared,
  PrepareInput,
  VerifyContext,
  VerifyItem,
  WriteContext,
} from '../types.ts';
import { jobsWithoutSubmission, linkJobs } from './link.ts';

/**
 * The forms app's report jobs (seed 002): `jobs/<job_id>.json`, one row of
 * `jobs` each. The state machine's words are the app's (started, running,
 * done, failed); the link to the submission is made from meta.submission_id
 * (link.ts) and is not part of the content hash (meta, which names it, is).
 */
export const jobsKind: KindDescriptor<JobLoad> = {
  name: 'jobs',
  logKind: 'job',
  keyLabel: 'job id',
  folders: ['jobs'],
  module: import.meta.url,
  scan: (walk: KindScan) => scanFolder(walk, 'jobs'),
  fileKey: formsFileKey,
  isValidKey: isValidRecordId,
  prepare,
  load: { table: 'jobs', keyColumn: 'job_id', write, prune },
  afterLoad: async (db, { since }) => {
    await linkJobs(db);
    return jobsWithoutSubmission(db, since);
  },
  verify: { compare, databaseKeys },
};

/** The job's columns, as canonical text and as written. */
export interface JobHead {
  job_id: string;
  status: string;
  progress: number;
  excel_url: string | null;
  pdf_url: string | null;
  error_message: string | null;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
}

export interface JobLoad {
  key: string;
  file: string;
  hash: string;
  head: JobHead;
  /** The app's id of the job's submission (meta.submission_id). */
  link: string | null;
  /** results and meta in jsonb's text form; null when absent. */
  results: string | null;
  meta: string | null;
}

export function headOf(row: FormsJob): JobHead {
  return {
    job_id: row.jobId,
    status: row.state,
    progress: row.progress,
    excel_url: row.excelUrl,
    pdf_url: row.pdfUrl,
    error_message: row.errorMessage,
    created_at: row.createdUs,
    started_at: row.startedUs,
    completed_at: row.completedUs,
  };
}

export const canonicalJob = (head: JobHead, results: string | null, meta: string | null): string =>
  `${jsonbText(head)}\n${results ?? 'null'}\n${meta ?? 'null'}`;

function prepare({ file, document, mtimeMs, key }: PrepareInput, context: PrepareContext): Prepared<JobLoad> {
  const result = readJob(document, {
    fileKey: key ?? formsFileKey(file),
    sourceTimezone: context.settings.forms?.sourceTimezone,
    fallbackUs: Math.round(mtimeMs * 1000),
  });
  if (!result.ok) return result;
  const head = headOf(result.row);
  const results = result.row.results === null ? null : jsonbText(result.row.results);
  const meta = result.row.meta === null ? null : jsonbText(result.row.meta);
  const text = canonicalJob(head, results, meta);
  if (!isStorableJson(text)) return { ok: false, key: result.key, reason: UNSTORABLE, warnings: result.warnings };
  return {
    ok: true,
    record: { key: head.job_id, file: file.rel, hash: hashCanonical(text), head, link: result.row.submissionId, results, meta },
    warnings: result.warnings,
  };
}

const timestamp = (us: number | null) => (us === null ? null : formatTimestampUs(us));

async function write(tx: TransactionSql, changed: readonly JobLoad[], _context: WriteContext): Promise<void> {
  const col = <T>(pick: (r: JobLoad) => T) => changed.map(pick);
  await tx`
    insert into jobs (job_id, submission_id, status, progress, results, excel_url, pdf_url, error_message, meta, created_at, started_at, completed_at)
    select k, s.id, st, p, r::jsonb, x, pdf, e, m::jsonb, c::timestamptz, sa::timestamptz, ca::timestamptz from unnest(
      ${col((r) => r.key)}::text[], ${col((r) => r.link)}::text[], ${col((r) => r.head.status)}::text[], ${col((r) => r.head.progress)}::int4[],
      ${col((r) => r.results)}::text[], ${col((r) => r.head.excel_url)}::text[], ${col((r) => r.head.pdf_url)}::text[],
      ${col((r) => r.head.error_message)}::text[], ${col((r) => r.meta)}::text[], ${col((r) => formatTimestampUs(r.head.created_at))}::text[],
      ${col((r) => timestamp(r.head.started_at))}::text[], ${col((r) => timestamp(r.head.completed_at))}::text[])
      as t(k, link, st, p, r, x, pdf, e, m, c, sa, ca)
      left join submissions s on s.submission_id = t.link
    on conflict (job_id) do update set
      submission_id = excluded.submission_id, status = excluded.status, progress = excluded.progress, results = excluded.results,
      excel_url = excluded.excel_url, pdf_url = excluded.pdf_url, error_message = excluded.error_message, meta = excluded.meta,
      created_at = excluded.created_at, started_at = excluded.started_at, completed_at = excluded.completed_at`;
}

async function prune(tx: TransactionSql, keys: readonly string[]): Promise<void> {
  await tx`delete from jobs where job_id = any(${keys as string[]}::text[])`;
}

function databaseKeys(sql: Sql): KeyQuery {
  return sql<{ key: string }[]>`select job_id as key from jobs order by job_id`;
}

interface DbJob {
  job_id: string;
  status: string;
  progress: number;
  excel_url: string | null;
  pdf_url: string | null;
  error_message: string | null;
  created_us: string;
  started_us: string | null;
  completed_us: string | null;
  results: string | null;
  meta: string | null;
}

async function compare(items: readonly VerifyItem<JobLoad>[], context: VerifyContext): Promise<void> {
  const keys = items.map((item) => item.record.key);
  const rows = await context.db.run(
    'verify.jobs',
    (sql) => sql<DbJob[]>`
      select job_id, status, progress, excel_url, pdf_url, error_message,
             (extract(epoch from created_at) * 1000000)::int8::text as created_us,
             (extract(epoch from started_at) * 1000000)::int8::text as started_us,
             (extract(epoch from completed_at) * 1000000)::int8::text as completed_us,
             results::text, meta::text
        from jobs where job_id = any(${keys}::text[])`,
    { idempotent: true },
  );
  const byKey = new Map(rows.map((r) => [r.job_id, r]));
  const us = (v: string | null) => (v === null ? null : Number(v));
  for (const item of items) {
    const row = byKey.get(item.record.key);
    if (!row) {
      context.missing(item);
      continue;
    }
    const head: JobHead = {
      job_id: row.job_id,
      status: row.status,
      progress: row.progress,
      excel_url: row.excel_url,
      pdf_url: row.pdf_url,
      error_message: row.error_message,
      created_at: Number(row.created_us),
      started_at: us(row.started_us),
      completed_at: us(row.completed_us),
    };
    if (hashCanonical(canonicalJob(head, row.results, row.meta)) === item.record.hash) {
      context.matched(item);
      continue;
    }
    const source = item.record;
    const columns = (Object.keys(head) as Array<keyof JobHead>).filter((k) => head[k] !== source.head[k]);
    const reason =
      columns.length > 0
        ? columns.map((k) => `${k}: source ${JSON.stringify(source.head[k])}, database ${JSON.stringify(head[k])}`).join('; ')
        : row.results !== source.results
          ? 'results differ'
          : 'meta differs';
    context.different(item, reason);
  }
}
