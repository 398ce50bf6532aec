import { randomBytes } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type AuditEntry,
  type AuditInput,
  deriveColumns,
  errorOfResults,
  isPlainObject,
  JOB_STATES,
  type Job,
  type JobState,
  SUBMISSION_STATUSES,
  type Submission,
  type SubmissionFilter,
  type SubmissionStatus,
  type UploadedFile,
} from '../../domain/forms.ts';
import { isValidRecordId } from '../../domain/ids.ts';
import { parseTimestampUs } from '../../formats/timestamps.ts';
import { compareListKeys, type ListKey } from '../core/cursors.ts';
import type {
  AuditBackend,
  FileBackend,
  JobBackend,
  ListedAudit,
  ListedSubmission,
  SubmissionBackend,
  Visibility,
} from '../core/forms-backend.ts';
import type { JsonContext } from './context.ts';
import {
  corruptFile,
  ensureDir,
  isDataFileName,
  REMOVE,
  readJsonFileStat,
  syncDir,
  update,
  withKeyedMutex,
  withLockFile,
} from './files.ts';
import { errorCode, ioError } from './locks.ts';

/**
 * Seed 002's data on JSON files in the app's own layout (REAL-FORMATS A.0),
 * so an existing `generated/` directory is a DATA_DIR as it is:
 *
 * - `submissions/<id>.json`: the form document exactly as posted (the
 *   app's form_data); what the app never wrote — module, status, owner,
 *   the uploaded_files rows — lives under one reserved key, `_pgferry`.
 *   A file the app wrote (no `_pgferry`) reads as module "unknown", status
 *   pending, no owner (admins only), its site and date derived.
 * - `jobs/<job_id>.json`: the app's job document `{job_id, state, progress,
 *   results, meta:{submission_id, module}, created_at, completed_at}` with
 *   epoch-float times, plus `started_at`/`updated_at`.
 * - `audit/<YYYY-MM-DD>.jsonl`: the audit log as daily JSON Lines (UTC day),
 *   appended under a lock, one fsync'd line per entry.
 *
 * A change and its audit entry happen in one critical section: the entry
 * is appended after the data file is written, before its locks are released.
 */

const META = '_pgferry';
const UNKNOWN_MODULE = 'unknown';
const SUBMISSIONS = 'submissions';
const JOBS = 'jobs';
const AUDIT = 'audit';
/** Files read at once while scanning a directory. */
const SCAN_CONCURRENCY = 16;

/** ISO ms → the list keyset's microsecond form. */
const keyOf = (isoMs: string) => `${isoMs.slice(0, 23)}000Z`;
const isoOf = (value: unknown): string | null => {
  const us = parseTimestampUs(value);
  return us === null ? null : new Date(Math.floor(us / 1000)).toISOString();
};
const epochOf = (isoMs: string): number => Date.parse(isoMs) / 1000;

// ---- shared: scanning a directory, the audit appender ------------------------------------

/** Every `<id>.json` in `dir` with a valid id, read in small batches; unreadable files are logged and skipped. */
async function scan<T>(
  ctx: JsonContext,
  dir: string,
  parse: (id: string, value: unknown, mtimeMs: number, file: string) => T,
): Promise<T[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw ioError('list', dir, error);
  }
  const ids = names
    .filter(isDataFileName)
    .map((name) => name.slice(0, -'.json'.length))
    .filter(isValidRecordId);
  const found: T[] = [];
  for (let i = 0; i < ids.length; i += SCAN_CONCURRENCY) {
    const batch = await Promise.all(
      ids.slice(i, i + SCAN_CONCURRENCY).map(async (id) => {
        const file = path.join(dir, `${id}.json`);
        try {
          const read = await readJsonFileStat(file);
          return read === undefined ? undefined : parse(id, read.value, read.mtimeMs, file);
        } catch (error) {
          ctx.logger.warn({ file, reason: (error as Error).message }, 'skipping an unreadable forms file');
          return undefined;
        }
      }),
    );
    for (const item of batch) if (item !== undefined) found.push(item);
  }
  return found;
}

/** Appends audit entries to DATA_DIR/audit/<day>.jsonl. */
export interface JsonAuditLog {
  append(input: AuditInput): Promise<AuditEntry>;
}

export function createJsonAuditLog(ctx: JsonContext): JsonAuditLog {
  const dir = ctx.pathIn(AUDIT);
  return {
    async append(input) {
      const createdAt = ctx.clock().toISOString();
      const entry: AuditEntry = { id: randomBytes(8).toString('hex'), createdAt, ...input };
      const file = path.join(dir, `${createdAt.slice(0, 10)}.jsonl`);
      await withKeyedMutex(dir, async () => {
        await ensureDir(dir);
        await withLockFile(path.join(dir, '.append'), () => appendLine(file, `${JSON.stringify(entry)}\n`), ctx.lock);
      });
      return entry;
    },
  };
}

async function appendLine(file: string, line: string): Promise<void> {
  let created = false;
  try {
    const handle = await open(file, 'a', 0o644);
    try {
      created = (await handle.stat()).size === 0;
      await handle.writeFile(line, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw ioError('append to', file, error);
  }
  if (created) await syncDir(path.dirname(file));
}

// ---- submissions ----------------------------------------------------------------------

interface StoredFile extends Omit<UploadedFile, 'submissionId'> {}

function submissionOf(id: string, value: unknown, mtimeMs: number, file: string): Submission {
  if (!isPlainObject(value)) throw corruptFile(file, 'a submission must be a JSON object');
  const { [META]: rawMeta, ...formData } = value;
  const meta = isPlainObject(rawMeta) ? rawMeta : {};
  const derived = deriveColumns(formData);
  const modified = new Date(mtimeMs).toISOString();
  const createdAt =
    (typeof meta.createdAt === 'string' ? meta.createdAt : null) ?? isoOf(formData.created_at) ?? isoOf(formData.timestamp) ?? modified;
  return {
    id,
    userId: typeof meta.userId === 'string' ? meta.userId : null,
    module: typeof meta.module === 'string' ? meta.module : UNKNOWN_MODULE,
    status: (SUBMISSION_STATUSES as readonly unknown[]).includes(meta.status) ? (meta.status as SubmissionStatus) : 'pending',
    siteName: 'siteName' in meta ? (meta.siteName as string | null) : derived.siteName,
    visitDate: 'visitDate' in meta ? (meta.visitDate as string | null) : derived.visitDate,
    formData,
    createdAt,
    updatedAt: typeof meta.updatedAt === 'string' ? meta.updatedAt : modified,
  };
}

/** The file's content for a submission (and its files). */
function submissionDocument(submission: Submission, files: StoredFile[]): Record<string, unknown> {
  const { formData, id: _id, ...rest } = submission;
  return { ...formData, [META]: { ...rest, files } };
}

const filesOf = (value: unknown): StoredFile[] => {
  const meta = isPlainObject(value) ? value[META] : undefined;
  return isPlainObject(meta) && Array.isArray(meta.files) ? (meta.files as StoredFile[]) : [];
};

const sees = (who: Visibility, submission: Submission) => who.all || submission.userId === who.userId;

function matches(filter: SubmissionFilter, s: Submission): boolean {
  if (filter.module !== undefined && s.module !== filter.module) return false;
  if (filter.status !== undefined && s.status !== filter.status) return false;
  if (filter.visitDateFrom !== undefined && (s.visitDate === null || s.visitDate < filter.visitDateFrom)) return false;
  if (filter.visitDateTo !== undefined && (s.visitDate === null || s.visitDate > filter.visitDateTo)) return false;
  if (filter.siteName !== undefined && !(s.siteName ?? '\u0000').toLowerCase().includes(filter.siteName.toLowerCase())) return false;
  return true;
}

export function createJsonSubmissions(ctx: JsonContext, auditLog: JsonAuditLog): SubmissionBackend & { kind: 'json' } {
  const fileOf = (id: string) => ctx.pathIn(SUBMISSIONS, `${id}.json`);
  const afterWrite = (audit: AuditInput | null) => (audit ? async () => void (await auditLog.append(audit)) : undefined);

  /** Read-modify-write a visible submission; undefined (nothing written) when it is not the caller's. */
  const change = <R>(
    who: Visibility,
    id: string,
    audit: AuditInput | null,
    fn: (current: Submission, raw: unknown) => { next: unknown; result: R },
  ): Promise<R | undefined> =>
    ctx.track(() =>
      update(
        fileOf(id),
        (raw, mtimeMs) => {
          if (raw === undefined) return { result: undefined };
          const current = submissionOf(id, raw, mtimeMs, fileOf(id));
          if (!sees(who, current)) return { result: undefined };
          const { next, result } = fn(current, raw);
          return { next, result, modifiedAt: ctx.clock(), afterWrite: afterWrite(audit) };
        },
        ctx.lock,
      ),
    );

  return {
    kind: 'json',
    insert: (row, audit) =>
      ctx.track(() =>
        update(
          fileOf(row.id),
          (raw) => {
            if (raw !== undefined) return { result: undefined };
            const now = ctx.clock().toISOString();
            const submission: Submission = { ...row, createdAt: now, updatedAt: now };
            return { next: submissionDocument(submission, []), result: submission, modifiedAt: ctx.clock(), afterWrite: afterWrite(audit) };
          },
          ctx.lock,
        ),
      ),

    read: (who, id) =>
      ctx.track(async () => {
        const read = await readJsonFileStat(fileOf(id));
        if (!read) return undefined;
        const submission = submissionOf(id, read.value, read.mtimeMs, fileOf(id));
        return sees(who, submission) ? submission : undefined;
      }),

    listAfter: (who, filter, after, count) =>
      ctx.track(async () => {
        const all = await scan(ctx, ctx.pathIn(SUBMISSIONS), submissionOf);
        const listed = all
          .filter((s) => sees(who, s) && matches(filter, s))
          .map((s): ListedSubmission => ({ ...s, createdKey: keyOf(s.createdAt) }))
          .sort((a, b) => compareListKeys(listKey(a), listKey(b)))
          .filter((s) => after === null || compareListKeys(after, listKey(s)) < 0);
        return listed.slice(0, count);
      }),

    setStatus: (who, id, status, audit) =>
      change(who, id, audit, (current, raw) => {
        const next = { ...current, status, updatedAt: ctx.clock().toISOString() };
        return { next: submissionDocument(next, filesOf(raw)), result: next };
      }),

    remove: async (who, id, audit) => (await change(who, id, audit, () => ({ next: REMOVE, result: true }))) === true,
  };
}

const listKey = (s: { createdKey: string; id: string }): ListKey => ({ updatedKey: s.createdKey, id: s.id });

// ---- jobs -----------------------------------------------------------------------------

function jobOf(id: string, value: unknown, mtimeMs: number, file: string): Job {
  if (!isPlainObject(value)) throw corruptFile(file, 'a job must be a JSON object');
  let state = value.state as JobState;
  if (!(JOB_STATES as readonly unknown[]).includes(state)) throw corruptFile(file, `unknown job state ${JSON.stringify(value.state)}`);
  const error = errorOfResults(value.results);
  // The app's HVAC worker writes a failure as state "done" with results.error (REAL-FORMATS A.2).
  if (state === 'done' && error !== null) state = 'failed';
  const meta = isPlainObject(value.meta) ? value.meta : {};
  const modified = new Date(mtimeMs).toISOString();
  const createdAt = isoOf(value.created_at) ?? modified;
  const completedAt = isoOf(value.completed_at);
  const progress = Number.isInteger(value.progress) ? Math.min(100, Math.max(0, value.progress as number)) : 0;
  return {
    id,
    submissionId: typeof meta.submission_id === 'string' ? meta.submission_id : null,
    state,
    progress,
    results: value.results ?? null,
    error,
    meta,
    createdAt,
    startedAt: isoOf(value.started_at),
    completedAt,
    updatedAt: isoOf(value.updated_at) ?? completedAt ?? createdAt,
  };
}

/** The app's job document (common/utils.py): epoch-float times. */
function jobDocument(job: Job): Record<string, unknown> {
  const document: Record<string, unknown> = {
    job_id: job.id,
    state: job.state,
    progress: job.progress,
    results: job.results,
    meta: job.meta,
    created_at: epochOf(job.createdAt),
  };
  if (job.startedAt) document.started_at = epochOf(job.startedAt);
  if (job.completedAt) document.completed_at = epochOf(job.completedAt);
  document.updated_at = epochOf(job.updatedAt);
  return document;
}

const finishedBefore = (job: Job, before: Date) =>
  (job.state === 'done' || job.state === 'failed') && Date.parse(job.completedAt ?? job.createdAt) < before.getTime();

export function createJsonJobs(ctx: JsonContext, auditLog: JsonAuditLog): JobBackend & { kind: 'json' } {
  const dir = () => ctx.pathIn(JOBS);
  const fileOf = (id: string) => ctx.pathIn(JOBS, `${id}.json`);

  /** Remove each listed job that still passes `test` under its lock; the count removed. */
  async function removeWhere(ids: string[], test: (job: Job) => boolean): Promise<number> {
    let removed = 0;
    for (const id of ids) {
      const gone = await update(
        fileOf(id),
        (raw, mtimeMs) => {
          if (raw === undefined) return { result: false };
          return test(jobOf(id, raw, mtimeMs, fileOf(id))) ? { next: REMOVE, result: true } : { result: false };
        },
        ctx.lock,
      ).catch(() => false);
      if (gone) removed++;
    }
    return removed;
  }

  return {
    kind: 'json',
    insert: (row, audit) =>
      ctx.track(() =>
        update(
          fileOf(row.id),
          (raw) => {
            if (raw !== undefined) return { result: undefined };
            const now = ctx.clock().toISOString();
            const job: Job = {
              id: row.id,
              submissionId: row.submissionId,
              state: 'started',
              progress: 0,
              results: [],
              error: null,
              meta: row.meta,
              createdAt: now,
              startedAt: null,
              completedAt: null,
              updatedAt: now,
            };
            return {
              next: jobDocument(job),
              result: job,
              modifiedAt: ctx.clock(),
              afterWrite: audit ? async () => void (await auditLog.append(audit)) : undefined,
            };
          },
          ctx.lock,
        ),
      ),

    read: (id) =>
      ctx.track(async () => {
        const read = await readJsonFileStat(fileOf(id));
        return read ? jobOf(id, read.value, read.mtimeMs, fileOf(id)) : undefined;
      }),

    transition: (id, decide, auditOf) =>
      ctx.track(() =>
        update(
          fileOf(id),
          (raw, mtimeMs) => {
            if (raw === undefined) return { result: undefined };
            const before = jobOf(id, raw, mtimeMs, fileOf(id));
            const change = decide(before); // throws CONFLICT before anything is written
            const now = ctx.clock().toISOString();
            const after: Job = {
              ...before,
              state: change.state,
              progress: change.progress,
              results: change.results === undefined ? before.results : change.results,
              error: change.error ?? (change.results === undefined ? before.error : errorOfResults(change.results)),
              startedAt: change.stamp === 'started' ? now : before.startedAt,
              completedAt: change.stamp === 'completed' ? now : before.completedAt,
              updatedAt: now,
            };
            const outcome = { before, after };
            return {
              next: jobDocument(after),
              result: outcome,
              modifiedAt: ctx.clock(),
              afterWrite: auditOf ? async () => void (await auditLog.append(auditOf(outcome))) : undefined,
            };
          },
          ctx.lock,
        ),
      ),

    listBySubmission: (submissionId) =>
      ctx.track(async () => {
        const all = await scan(ctx, dir(), jobOf);
        return all
          .filter((job) => job.submissionId === submissionId)
          .sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? -1 : 1));
      }),

    removeBySubmission: (submissionId) =>
      ctx.track(async () => {
        const ids = (await scan(ctx, dir(), jobOf)).filter((job) => job.submissionId === submissionId).map((job) => job.id);
        return removeWhere(ids, (job) => job.submissionId === submissionId);
      }),

    purgeFinished: (before, auditOf) =>
      ctx.track(async () => {
        const ids = (await scan(ctx, dir(), jobOf)).filter((job) => finishedBefore(job, before)).map((job) => job.id);
        // Re-checked under each file's lock: a job that was restarted meanwhile… cannot be (terminal), but one rewritten is re-read.
        const purged = await removeWhere(ids, (job) => finishedBefore(job, before));
        if (purged > 0 && auditOf) await auditLog.append(auditOf(purged));
        return purged;
      }),
  };
}

// ---- uploaded files (inside the submission's document) ------------------------------------------

export function createJsonFiles(ctx: JsonContext, auditLog: JsonAuditLog): FileBackend & { kind: 'json' } {
  const fileOf = (id: string) => ctx.pathIn(SUBMISSIONS, `${id}.json`);
  return {
    kind: 'json',
    insert: (submissionId, file, audit) =>
      ctx.track(() =>
        update(
          fileOf(submissionId),
          (raw, mtimeMs) => {
            if (raw === undefined) return { result: undefined };
            const submission = submissionOf(submissionId, raw, mtimeMs, fileOf(submissionId));
            const files = filesOf(raw);
            const id = String(files.reduce((max, f) => Math.max(max, Number(f.id) || 0), 0) + 1);
            const stored: StoredFile = { id, ...file, uploadedAt: ctx.clock().toISOString() };
            return {
              next: submissionDocument(submission, [...files, stored]),
              result: { ...stored, submissionId },
              modifiedAt: ctx.clock(),
              afterWrite: audit ? async () => void (await auditLog.append(audit)) : undefined,
            };
          },
          ctx.lock,
        ),
      ),

    list: (submissionId) =>
      ctx.track(async () => {
        const read = await readJsonFileStat(fileOf(submissionId));
        return read ? filesOf(read.value).map((f) => ({ ...f, submissionId })) : [];
      }),
  };
}

// ---- audit ----------------------------------------------------------------------------

const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.jsonl$/;

function auditMatches(filter: Parameters<AuditBackend['listAfter']>[0], e: AuditEntry): boolean {
  return (
    (filter.userId === undefined || e.userId === filter.userId) &&
    (filter.action === undefined || e.action === filter.action) &&
    (filter.resourceType === undefined || e.resourceType === filter.resourceType) &&
    (filter.resourceId === undefined || e.resourceId === filter.resourceId) &&
    (filter.from === undefined || e.createdAt >= filter.from) &&
    (filter.to === undefined || e.createdAt < filter.to)
  );
}

export function createJsonAudit(ctx: JsonContext, auditLog: JsonAuditLog): AuditBackend & { kind: 'json' } {
  const dir = () => ctx.pathIn(AUDIT);

  /** One day's entries; a torn last line (a crash mid-append) is skipped and logged. */
  async function readDay(file: string): Promise<AuditEntry[]> {
    const text = await readFile(file, 'utf8').catch((error) => {
      if (errorCode(error) === 'ENOENT') return '';
      throw ioError('read', file, error);
    });
    const entries: AuditEntry[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const entry = JSON.parse(line) as AuditEntry;
        if (isPlainObject(entry) && typeof entry.id === 'string' && typeof entry.createdAt === 'string') entries.push(entry);
      } catch {
        ctx.logger.warn({ file }, 'skipping an unreadable audit line');
      }
    }
    return entries;
  }

  return {
    kind: 'json',
    append: (input) => ctx.track(() => auditLog.append(input)),

    listAfter: (filter, after, count) =>
      ctx.track(async () => {
        const names = await readdir(dir()).catch((error) => {
          if (errorCode(error) === 'ENOENT') return [] as string[];
          throw ioError('list', dir(), error);
        });
        const days = names
          .map((name) => DAY_FILE.exec(name)?.[1])
          .filter((day): day is string => day !== undefined)
          .filter(
            (day) =>
              (filter.from === undefined || day >= filter.from.slice(0, 10)) && (filter.to === undefined || day <= filter.to.slice(0, 10)),
          )
          .sort()
          .reverse();
        const found: ListedAudit[] = [];
        for (const day of days) {
          const entries = (await readDay(path.join(dir(), `${day}.jsonl`)))
            .filter((e) => auditMatches(filter, e))
            .map((e): ListedAudit => ({ ...e, createdKey: keyOf(e.createdAt) }))
            .filter((e) => after === null || compareListKeys(after, listKey(e)) < 0)
            .sort((a, b) => compareListKeys(listKey(a), listKey(b)));
          found.push(...entries);
          if (found.length >= count) break;
        }
        return found.slice(0, count);
      }),
  };
}

/** The four forms backends on one DATA_DIR, sharing one audit log. */
export function jsonFormsBackends(ctx: JsonContext) {
  const auditLog = createJsonAuditLog(ctx);
  return {
    submissions: createJsonSubmissions(ctx, auditLog),
    jobs: createJsonJobs(ctx, auditLog),
    files: createJsonFiles(ctx, auditLog),
    audit: createJsonAudit(ctx, auditLog),
  };
}
