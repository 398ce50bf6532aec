import type postgres from 'postgres';
import type { Database, Sql } from '../../db/database.ts';
import {
  type AuditEntry,
  type AuditInput,
  errorOfResults,
  type Job,
  type JobState,
  reportUrls,
  type Submission,
  type SubmissionStatus,
  type UploadedFile,
} from '../../domain/forms.ts';
import { fromJsonb, toJsonb } from '../../domain/json-values.ts';
import { invalidInput } from '../../errors.ts';
import type { ListKey } from '../core/cursors.ts';
import type {
  AuditBackend,
  FileBackend,
  JobBackend,
  ListedAudit,
  ListedSubmission,
  SubmissionBackend,
  Visibility,
} from '../core/forms-backend.ts';
import type { Clock } from '../types.ts';
import { nowParam, query } from './shared.ts';

/**
 * Seed 002's tables on PostgreSQL (migration 0001/0002: submissions, jobs,
 * uploaded_files, audit_logs). Every change and its audit entry run in one
 * transaction, so the log never misses a committed change nor records one
 * that rolled back. The job state machine's rules run between a
 * `select … for update` and the update, under the row lock.
 */

const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const KEY = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;
const iso = (column: string) => `to_char(${column} at time zone 'UTC', ${ISO})`;
const key = (column: string) => `to_char(${column} at time zone 'UTC', ${KEY})`;

const jsonb = (sql: Sql, value: unknown) => sql.json((value === undefined ? null : toJsonb(value)) as postgres.JSONValue);

export interface PostgresFormsOptions {
  db: Database;
  clock?: Clock;
}

type Tx = Sql;

/** One transaction, with bad-value errors (NUL, out-of-range dates) turned into INVALID_INPUT as in query(). */
function inTransaction<T>(db: Database, label: string, work: (tx: Tx) => Promise<T>): Promise<T> {
  return query({ run: (l, w) => db.transaction(l, (tx) => w(tx as unknown as Sql)) }, label, work);
}

async function insertAudit(tx: Tx, input: AuditInput, now: Date | null): Promise<AuditEntry> {
  const [row] = await tx<AuditRow[]>`
    insert into audit_logs (user_id, action, resource_type, resource_id, details, ip_address, user_agent, created_at)
    values (${input.userId}, ${input.action}, ${input.resourceType}, ${input.resourceId}, ${jsonb(tx, input.details)},
            ${input.ip}, ${input.userAgent}, coalesce(${now}::timestamptz, now()))
    returning ${tx.unsafe(AUDIT_COLUMNS)}`;
  return toAudit(row as AuditRow);
}

// ---- submissions ------------------------------------------------------------------

interface SubmissionRow {
  submission_id: string;
  user_id: string | null;
  module: string;
  status: SubmissionStatus;
  site_name: string | null;
  visit_date: string | null;
  form_data: unknown;
  created_iso: string;
  updated_iso: string;
  created_key: string;
}

const SUBMISSION_COLUMNS = `submission_id, user_id, module, status, site_name,
  to_char(visit_date, 'YYYY-MM-DD') as visit_date, form_data,
  ${iso('created_at')} as created_iso, ${iso('updated_at')} as updated_iso, ${key('created_at')} as created_key`;

const toSubmission = (row: SubmissionRow): Submission => ({
  id: row.submission_id,
  userId: row.user_id,
  module: row.module,
  status: row.status,
  siteName: row.site_name,
  visitDate: row.visit_date,
  formData: fromJsonb(row.form_data) as Record<string, unknown>,
  createdAt: row.created_iso,
  updatedAt: row.updated_iso,
});

/** `who` sees the row: an admin every one, a user only their own (never one without a user). */
const visible = (sql: Sql, who: Visibility) => (who.all ? sql`true` : sql`user_id = ${who.userId}`);

export function createPostgresSubmissions({ db, clock }: PostgresFormsOptions): SubmissionBackend & { kind: 'postgres' } {
  return {
    kind: 'postgres',
    insert: (row, audit) =>
      inTransaction(db, 'submissions.insert', async (tx) => {
        const now = nowParam(clock);
        const [inserted] = await tx<SubmissionRow[]>`
          insert into submissions (submission_id, module, user_id, status, site_name, visit_date, form_data, created_at, updated_at)
          values (${row.id}, ${row.module}, ${row.userId}, ${row.status}, ${row.siteName}, ${row.visitDate}::date,
                  ${jsonb(tx, row.formData)}, coalesce(${now}::timestamptz, now()), coalesce(${now}::timestamptz, now()))
          on conflict (submission_id) do nothing
          returning ${tx.unsafe(SUBMISSION_COLUMNS)}`;
        if (!inserted) return undefined;
        if (audit) await insertAudit(tx, audit, now);
        return toSubmission(inserted);
      }),

    read: (who, id) =>
      query(db, 'submissions.read', async (sql) => {
        const [row] = await sql<SubmissionRow[]>`
          select ${sql.unsafe(SUBMISSION_COLUMNS)} from submissions where submission_id = ${id} and ${visible(sql, who)}`;
        return row ? toSubmission(row) : undefined;
      }),

    listAfter: (who, filter, after, count) =>
      query(db, 'submissions.list', async (sql) => {
        const rows = await sql<SubmissionRow[]>`
          select ${sql.unsafe(SUBMISSION_COLUMNS)} from submissions
           where ${visible(sql, who)}
             ${filter.module === undefined ? sql`` : sql`and module = ${filter.module}`}
             ${filter.status === undefined ? sql`` : sql`and status = ${filter.status}`}
             ${filter.visitDateFrom === undefined ? sql`` : sql`and visit_date >= ${filter.visitDateFrom}::date`}
             ${filter.visitDateTo === undefined ? sql`` : sql`and visit_date <= ${filter.visitDateTo}::date`}
             ${filter.siteName === undefined ? sql`` : sql`and strpos(lower(site_name), lower(${filter.siteName})) > 0`}
             ${after === null ? sql`` : sql`and (created_at, submission_id) < (${after.updatedKey}::text::timestamptz, ${after.id}::text)`}
           order by created_at desc, submission_id desc
           limit ${count}`;
        return rows.map((row): ListedSubmission => ({ ...toSubmission(row), createdKey: row.created_key }));
      }),

    setStatus: (who, id, status, audit) =>
      inTransaction(db, 'submissions.setStatus', async (tx) => {
        const now = nowParam(clock);
        const [row] = await tx<SubmissionRow[]>`
          update submissions set status = ${status}, updated_at = coalesce(${now}::timestamptz, now())
           where submission_id = ${id} and ${visible(tx, who)}
          returning ${tx.unsafe(SUBMISSION_COLUMNS)}`;
        if (!row) return undefined;
        if (audit) await insertAudit(tx, audit, now);
        return toSubmission(row);
      }),

    remove: (who, id, audit) =>
      inTransaction(db, 'submissions.remove', async (tx) => {
        // Jobs and files linked by key go by cascade; imported jobs linked only by meta.submission_id go here.
        const gone = await tx`delete from submissions where submission_id = ${id} and ${visible(tx, who)} returning 1`;
        if (gone.length === 0) return false;
        await tx`delete from jobs where submission_id is null and meta->>'submission_id' = ${id}`;
        if (audit) await insertAudit(tx, audit, nowParam(clock));
        return true;
      }),
  };
}

// ---- jobs -------------------------------------------------------------------------

interface JobRow {
  job_id: string;
  submission_ref: string | null;
  status: JobState;
  progress: number;
  results: unknown;
  error_message: string | null;
  meta: unknown;
  created_iso: string;
  started_iso: string | null;
  completed_iso: string | null;
  updated_iso: string;
}

/** A job's columns; the submission is the linked row's key, else the app's own link in meta. */
const JOB_COLUMNS = `j.job_id,
  coalesce((select s.submission_id from submissions s where s.id = j.submission_id), j.meta->>'submission_id') as submission_ref,
  j.status, j.progress, j.results, j.error_message, j.meta,
  ${iso('j.created_at')} as created_iso, ${iso('j.started_at')} as started_iso,
  ${iso('j.completed_at')} as completed_iso, ${iso('j.updated_at')} as updated_iso`;

const toJob = (row: JobRow): Job => ({
  id: row.job_id,
  submissionId: row.submission_ref,
  state: row.status,
  progress: row.progress,
  results: row.results === null ? null : fromJsonb(row.results),
  error: row.error_message,
  meta: (row.meta === null ? {} : fromJsonb(row.meta)) as Record<string, unknown>,
  createdAt: row.created_iso,
  startedAt: row.started_iso,
  completedAt: row.completed_iso,
  updatedAt: row.updated_iso,
});

/** The jobs of a submission: linked by key, or (imported without a submission row) by meta.submission_id. */
const ofSubmission = (sql: Sql, submissionId: string) => sql`
  (j.submission_id = (select id from submissions where submission_id = ${submissionId})
   or (j.submission_id is null and j.meta->>'submission_id' = ${submissionId}))`;

export function createPostgresJobs({ db, clock }: PostgresFormsOptions): JobBackend & { kind: 'postgres' } {
  return {
    kind: 'postgres',
    insert: (row, audit) =>
      inTransaction(db, 'jobs.insert', async (tx) => {
        const now = nowParam(clock);
        const [inserted] = await tx<JobRow[]>`
          with j as (
            insert into jobs (job_id, submission_id, status, progress, results, meta, created_at, updated_at)
            values (${row.id}, (select id from submissions where submission_id = ${row.submissionId}), 'started', 0,
                    '[]'::jsonb, ${jsonb(tx, row.meta)}, coalesce(${now}::timestamptz, now()), coalesce(${now}::timestamptz, now()))
            on conflict (job_id) do nothing
            returning *)
          select ${tx.unsafe(JOB_COLUMNS)} from j`;
        if (!inserted) return undefined;
        if (audit) await insertAudit(tx, audit, now);
        return toJob(inserted);
      }),

    read: (id) =>
      query(db, 'jobs.read', async (sql) => {
        const [row] = await sql<JobRow[]>`select ${sql.unsafe(JOB_COLUMNS)} from jobs j where j.job_id = ${id}`;
        return row ? toJob(row) : undefined;
      }),

    transition: (id, decide, auditOf) =>
      inTransaction(db, 'jobs.transition', async (tx) => {
        const now = nowParam(clock);
        const [row] = await tx<JobRow[]>`select ${tx.unsafe(JOB_COLUMNS)} from jobs j where j.job_id = ${id} for update of j`;
        if (!row) return undefined;
        const before = toJob(row);
        const change = decide(before);
        const results = change.results === undefined ? before.results : change.results;
        const urls = reportUrls(results);
        const at = tx`coalesce(${now}::timestamptz, now())`;
        const [updated] = await tx<JobRow[]>`
          with j as (
            update jobs set status = ${change.state}, progress = ${change.progress},
                   results = ${jsonb(tx, results)},
                   error_message = ${change.error ?? errorOfResults(results)},
                   excel_url = ${urls.excelUrl}, pdf_url = ${urls.pdfUrl},
                   started_at = ${change.stamp === 'started' ? at : tx`started_at`},
                   completed_at = ${change.stamp === 'completed' ? at : tx`completed_at`},
                   updated_at = ${at}
             where job_id = ${id}
            returning *)
          select ${tx.unsafe(JOB_COLUMNS)} from j`;
        const outcome = { before, after: toJob(updated as JobRow) };
        if (auditOf) await insertAudit(tx, auditOf(outcome), now);
        return outcome;
      }),

    listBySubmission: (submissionId) =>
      query(db, 'jobs.listBySubmission', async (sql) => {
        const rows = await sql<JobRow[]>`
          select ${sql.unsafe(JOB_COLUMNS)} from jobs j where ${ofSubmission(sql, submissionId)} order by j.created_at, j.job_id`;
        return rows.map(toJob);
      }),

    removeBySubmission: (submissionId) =>
      query(db, 'jobs.removeBySubmission', async (sql) => {
        const gone = await sql`delete from jobs j where ${ofSubmission(sql, submissionId)} returning 1`;
        return gone.length;
      }),

    purgeFinished: (before, auditOf) =>
      inTransaction(db, 'jobs.purgeFinished', async (tx) => {
        const gone = await tx`
          delete from jobs
           where status in ('done', 'failed') and coalesce(completed_at, created_at) < ${before}::timestamptz
          returning 1`;
        if (gone.length > 0 && auditOf) await insertAudit(tx, auditOf(gone.length), nowParam(clock));
        return gone.length;
      }),
  };
}

// ---- uploaded files -------------------------------------------------------------------

interface FileRow {
  id: number;
  submission_ref: string;
  field: string | null;
  cloudinary_url: string;
  cloudinary_public_id: string | null;
  file_type: string | null;
  original_filename: string | null;
  file_size: number | null;
  is_cloud: boolean;
  uploaded_iso: string;
}

const FILE_COLUMNS = `f.id, s.submission_id as submission_ref, f.field, f.cloudinary_url, f.cloudinary_public_id, f.file_type,
  f.original_filename, f.file_size, f.is_cloud, ${iso('f.uploaded_at')} as uploaded_iso`;

const toFile = (row: FileRow): UploadedFile => ({
  id: String(row.id),
  submissionId: row.submission_ref,
  field: row.field,
  url: row.cloudinary_url,
  publicId: row.cloudinary_public_id,
  fileType: row.file_type,
  originalFilename: row.original_filename,
  fileSize: row.file_size,
  isCloud: row.is_cloud,
  uploadedAt: row.uploaded_iso,
});

export function createPostgresFiles({ db, clock }: PostgresFormsOptions): FileBackend & { kind: 'postgres' } {
  return {
    kind: 'postgres',
    insert: (submissionId, file, audit) =>
      inTransaction(db, 'uploadedFiles.insert', async (tx) => {
        const now = nowParam(clock);
        const [row] = await tx<FileRow[]>`
          with f as (
            insert into uploaded_files (submission_id, field, cloudinary_url, cloudinary_public_id, file_type,
                                        original_filename, file_size, is_cloud, uploaded_at)
            select s.id, ${file.field}, ${file.url}, ${file.publicId}, ${file.fileType}, ${file.originalFilename},
                   ${file.fileSize}, ${file.isCloud}, coalesce(${now}::timestamptz, now())
              from submissions s where s.submission_id = ${submissionId}
            returning *)
          select ${tx.unsafe(FILE_COLUMNS)} from f join submissions s on s.id = f.submission_id`;
        if (!row) return undefined;
        if (audit) await insertAudit(tx, audit, now);
        return toFile(row);
      }),

    list: (submissionId) =>
      query(db, 'uploadedFiles.list', async (sql) => {
        const rows = await sql<FileRow[]>`
          select ${sql.unsafe(FILE_COLUMNS)} from uploaded_files f join submissions s on s.id = f.submission_id
           where s.submission_id = ${submissionId} order by f.uploaded_at, f.id`;
        return rows.map(toFile);
      }),
  };
}

// ---- audit --------------------------------------------------------------------------

interface AuditRow {
  id: number;
  user_id: string | null;
  action: string;
  resource_type: string | null;
  resource_id: string | null;
  details: unknown;
  ip_address: string | null;
  user_agent: string | null;
  created_iso: string;
  created_key: string;
}

const AUDIT_COLUMNS = `id, user_id, action, resource_type, resource_id, details, ip_address, user_agent,
  ${iso('created_at')} as created_iso, ${key('created_at')} as created_key`;

const toAudit = (row: AuditRow): ListedAudit => ({
  id: String(row.id),
  userId: row.user_id,
  action: row.action,
  resourceType: row.resource_type,
  resourceId: row.resource_id,
  details: row.details === null ? null : (fromJsonb(row.details) as Record<string, unknown>),
  ip: row.ip_address,
  userAgent: row.user_agent,
  createdAt: row.created_iso,
  createdKey: row.created_key,
});

/** Audit ids are the bigint identity: a cursor from the JSON log (not a number) cannot be a position here. */
function auditKeyset(sql: Sql, after: ListKey | null) {
  if (after === null) return sql``;
  if (!/^\d{1,18}$/.test(after.id)) throw invalidInput('invalid cursor: pass back the value exactly as returned', { field: 'cursor' });
  return sql`and (created_at, id) < (${after.updatedKey}::text::timestamptz, ${after.id}::bigint)`;
}

export function createPostgresAudit({ db, clock }: PostgresFormsOptions): AuditBackend & { kind: 'postgres' } {
  return {
    kind: 'postgres',
    append: (input) =>
      query(db, 'audit.append', async (sql) => {
        const { createdKey: _key, ...entry } = (await insertAudit(sql, input, nowParam(clock))) as ListedAudit;
        return entry;
      }),

    listAfter: (filter, after, count) =>
      query(db, 'audit.list', async (sql) => {
        const rows = await sql<AuditRow[]>`
          select ${sql.unsafe(AUDIT_COLUMNS)} from audit_logs
           where true
             ${filter.userId === undefined ? sql`` : sql`and user_id = ${filter.userId}`}
             ${filter.action === undefined ? sql`` : sql`and action = ${filter.action}`}
             ${filter.resourceType === undefined ? sql`` : sql`and resource_type = ${filter.resourceType}`}
             ${filter.resourceId === undefined ? sql`` : sql`and resource_id = ${filter.resourceId}`}
             ${filter.from === undefined ? sql`` : sql`and created_at >= ${filter.from}::timestamptz`}
             ${filter.to === undefined ? sql`` : sql`and created_at < ${filter.to}::timestamptz`}
             ${auditKeyset(sql, after)}
           order by created_at desc, id desc
           limit ${count}`;
        return rows.map(toAudit);
      }),
  };
}

/** The four forms backends on one database. */
export function postgresFormsBackends(options: PostgresFormsOptions) {
  return {
    submissions: createPostgresSubmissions(options),
    jobs: createPostgresJobs(options),
    files: createPostgresFiles(options),
    audit: createPostgresAudit(options),
  };
}
