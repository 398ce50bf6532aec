import { randomBytes } from 'node:crypto';
import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  type AuditEntry,
  type AuditInput,
  errorOfResults,
  isPlainObject,
  type Job,
  type Submission,
  type SubmissionFilter,
  type UploadedFile,
} from '../../domain/forms.ts';
import { isValidRecordId } from '../../domain/ids.ts';
import { PgFerryError } from '../../errors.ts';
import { readJob, writeJob } from '../../formats/forms-job.ts';
import { type FormsSubmission, readSubmission, writeSubmission } from '../../formats/forms-submission.ts';
import { formatTimestamp } from '../../formats/timestamps.ts';
import { compareListKeys, type ListKey } from '../core/cursors.ts';
import type {
  AuditBackend,
  FileBackend,
  JobBackend,
  ListedAudit,
  ListedSubmission,
  NewSubmissionRow,
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
 * - `submissions/<id>.json`: the form document as the app writes it, read
 *   and written by formats/forms-submission.ts (every real shape; module,
 *   status and times derived as the importer derives them). pgferry adds
 *   only what the app's database era also kept in form_data: `module` and
 *   `status` where the document does not give them back, `user_id`, and
 *   `created_at` when the document has no time. A file the app wrote has
 *   no user_id: only admins see it.
 * - `jobs/<job_id>.json`: the app's job document `{job_id, state, progress,
 *   results, meta:{submission_id, module}, created_at, completed_at}` with
 *   epoch-float times (formats/forms-job.ts).
 * - `audit/<YYYY-MM-DD>.jsonl`: the audit log as daily JSON Lines (UTC day),
 *   appended under a lock, one fsync'd line per entry.
 *
 * A change and its audit entry happen in one critical section: the entry
 * is appended after the data file is written, before its locks are released.
 */

const SUBMISSIONS = 'submissions';
const JOBS = 'jobs';
const AUDIT = 'audit';
/** Files read at once while scanning a directory. */
const SCAN_CONCURRENCY = 16;

/** ISO ms → the list keyset's microsecond form. */
const keyOf = (isoMs: string) => `${isoMs.slice(0, 23)}000Z`;

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

const usOf = (ms: number) => Math.round(ms * 1000);
const isoOfUs = (us: number) => new Date(Math.floor(us / 1000)).toISOString();

/** A submission file through the format reader (every real shape); CORRUPT_DATA when it cannot be read. */
function readSubmissionFile(id: string, value: unknown, mtimeMs: number, file: string): FormsSubmission {
  const read = readSubmission(value, { fileKey: id, fallbackUs: usOf(mtimeMs) });
  if (!read.ok) throw corruptFile(file, read.reason);
  return read.row;
}

function submissionOf(id: string, value: unknown, mtimeMs: number, file: string): Submission {
  const row = readSubmissionFile(id, value, mtimeMs, file);
  return {
    id,
    userId: row.userId,
    module: row.module,
    status: row.status,
    siteName: row.siteName,
    visitDate: row.visitDate,
    formData: row.formData,
    createdAt: isoOfUs(row.createdUs),
    // The app's documents carry no updated_at: the file's mtime is when it last changed (set from the store's clock).
    updatedAt: new Date(mtimeMs).toISOString(),
  };
}

/**
 * The file for a new submission: the app's shape (formats' writeSubmission)
 * plus what only pgferry knows, in the keys the reader takes them from:
 * `user_id`, and `created_at` (naive UTC, as the app's utcnow()) when the
 * document has no time of its own.
 */
function newSubmissionDocument(row: NewSubmissionRow, now: Date): Record<string, unknown> {
  const document = writeSubmission(row);
  if (row.userId !== null) document.user_id = row.userId;
  if (readSubmission(document, { fileKey: row.id }).ok === false) document.created_at = formatTimestamp(usOf(now.getTime()));
  return document;
}

const sees = (who: Visibility, submission: Submission) => who.all || submission.userId === who.userId;

function matches(filter: SubmissionFilter, s: Submission): boolean {
  if (filter.module !== undefined && s.module !== filter.module) return false;
  if (filter.status !== undefined && s.status !== filter.status) return false;
  if (filter.visitDateFrom !== undefined && (s.visitDate === null || s.visitDate < filter.visitDateFrom)) return false;
  if (filter.visitDateTo !== undefined && (s.visitDate === null || s.visitDate > filter.visitDateTo)) return false;
  if (filter.siteName !== undefined && !(s.siteName ?? '\u0000').toLowerCase().includes(filter.siteName.toLowerCase())) return false;
  return true;
}

/** The audit line of a change, appended after its file is written and before the locks are released. */
const appendAfterWrite = (auditLog: JsonAuditLog, audit: AuditInput | null | undefined) =>
  audit ? async () => void (await auditLog.append(audit)) : undefined;

export function createJsonSubmissions(ctx: JsonContext, auditLog: JsonAuditLog): SubmissionBackend & { kind: 'json' } {
  const fileOf = (id: string) => ctx.pathIn(SUBMISSIONS, `${id}.json`);
  const afterWrite = (audit: AuditInput | null) => appendAfterWrite(auditLog, audit);

  /** Read-modify-write a visible submission; undefined (nothing written) when it is not the caller's. */
  const change = <R>(
    who: Visibility,
    id: string,
    audit: AuditInput | null,
    fn: (current: Submission) => { next: unknown; result: R },
  ): Promise<R | undefined> =>
    ctx.track(() =>
      update(
        fileOf(id),
        (raw, mtimeMs) => {
          if (raw === undefined) return { result: undefined };
          const current = submissionOf(id, raw, mtimeMs, fileOf(id));
          if (!sees(who, current)) return { result: undefined };
          const { next, result } = fn(current);
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
            const now = ctx.clock();
            const document = newSubmissionDocument(row, now);
            return {
              next: document,
              result: submissionOf(row.id, document, now.getTime(), fileOf(row.id)),
              modifiedAt: now,
              afterWrite: afterWrite(audit),
            };
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
      change(who, id, audit, (current) => {
        const next = writeSubmission({ id, module: current.module, status, formData: current.formData });
        const now = ctx.clock();
        return { next, result: { ...submissionOf(id, next, now.getTime(), fileOf(id)), createdAt: current.createdAt } };
      }),

    remove: async (who, id, audit) => (await change(who, id, audit, () => ({ next: REMOVE, result: true }))) === true,
  };
}

const listKey = (s: { createdKey: string; id: string }): ListKey => ({ updatedKey: s.createdKey, id: s.id });

// ---- jobs -----------------------------------------------------------------------------

function jobOf(id: string, value: unknown, mtimeMs: number, file: string): Job {
  const read = readJob(value, { fileKey: id, fallbackUs: usOf(mtimeMs) });
  if (!read.ok) throw corruptFile(file, read.reason);
  const row = read.row;
  return {
    id,
    submissionId: row.submissionId,
    state: row.state,
    progress: row.progress,
    results: row.results,
    error: row.errorMessage,
    meta: row.meta ?? {},
    createdAt: isoOfUs(row.createdUs),
    startedAt: row.startedUs === null ? null : isoOfUs(row.startedUs),
    completedAt: row.completedUs === null ? null : isoOfUs(row.completedUs),
    updatedAt: new Date(mtimeMs).toISOString(),
  };
}

/**
 * The job file as the app writes it (formats' writeJob), keeping what the
 * previous file had — including its times to the microsecond: a Job carries
 * milliseconds, so a time that did not change is taken from the file.
 */
function jobDocument(job: Job, previous?: unknown): Record<string, unknown> {
  const prev = previous === undefined ? undefined : readJob(previous, { fileKey: job.id, fallbackUs: 0 });
  const written = prev?.ok ? prev.row : undefined;
  const usFor = (iso: string | null, was: number | null | undefined): number | null => {
    if (iso === null) return null;
    const ms = Date.parse(iso);
    return was !== null && was !== undefined && Math.floor(was / 1000) === ms ? was : usOf(ms);
  };
  return writeJob(
    {
      jobId: job.id,
      submissionId: job.submissionId,
      module: typeof job.meta.module === 'string' ? job.meta.module : null,
      state: job.state,
      progress: job.progress,
      results: job.results,
      meta: job.meta,
      createdUs: usFor(job.createdAt, written?.createdUs) as number,
      startedUs: usFor(job.startedAt, written?.startedUs),
      completedUs: usFor(job.completedAt, written?.completedUs),
    },
    previous,
  );
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
      );
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
            const now = ctx.clock();
            const job: Job = {
              id: row.id,
              submissionId: row.submissionId,
              state: 'started',
              progress: 0,
              results: [],
              error: null,
              meta: row.meta,
              createdAt: now.toISOString(),
              startedAt: null,
              completedAt: null,
              updatedAt: now.toISOString(),
            };
            return {
              next: jobDocument(job),
              result: job,
              modifiedAt: now,
              afterWrite: appendAfterWrite(auditLog, audit),
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
            const now = ctx.clock();
            const results = change.results === undefined ? before.results : change.results;
            const after: Job = {
              ...before,
              state: change.state,
              progress: change.progress,
              results,
              error: change.error ?? errorOfResults(results),
              startedAt: change.stamp === 'started' ? now.toISOString() : before.startedAt,
              completedAt: change.stamp === 'completed' ? now.toISOString() : before.completedAt,
              updatedAt: now.toISOString(),
            };
            const outcome = { before, after };
            return {
              next: jobDocument(after, raw),
              result: outcome,
              modifiedAt: now,
              afterWrite: appendAfterWrite(auditLog, auditOf?.(outcome)),
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
        // Re-checked under each file's lock, on what the file holds then.
        const purged = await removeWhere(ids, (job) => finishedBefore(job, before));
        if (purged > 0 && auditOf) await auditLog.append(auditOf(purged));
        return purged;
      }),
  };
}

// ---- uploaded files (in the submission's own document) ----------------------------------------

/**
 * The app keeps a submission's photos and signatures inside its document
 * (files[], photos[], items[].photos, *_signature …); the reader turns them
 * into rows. A file added through the store is appended to the document's
 * top-level `files` list in the app's entry shape `{field, saved, url,
 * is_cloud}`, with pgferry's own columns (`file_type`, `public_id`, `size`,
 * `uploaded_at`) beside them, which take precedence when read back.
 */
interface FileEntry {
  field: string | null;
  saved: string | null;
  url: string;
  is_cloud: boolean;
  public_id: string | null;
  size: number | null;
  file_type: string | null;
  uploaded_at: string;
}

function filesOf(submission: FormsSubmission, createdAt: string): UploadedFile[] {
  const own = Array.isArray(submission.formData.files) ? submission.formData.files : [];
  const entryFor = (url: string) => own.find((e): e is FileEntry => isPlainObject(e) && e.url === url && 'uploaded_at' in e);
  return submission.files.map((file, index): UploadedFile => {
    const entry = entryFor(file.url);
    return {
      id: String(index + 1),
      submissionId: submission.id,
      field: entry ? entry.field : file.field,
      url: file.url,
      publicId: entry ? entry.public_id : file.publicId,
      fileType: entry ? entry.file_type : file.fileType,
      originalFilename: entry ? entry.saved : file.originalFilename,
      fileSize: entry ? entry.size : file.fileSize,
      isCloud: entry ? entry.is_cloud : file.isCloud,
      uploadedAt: entry ? entry.uploaded_at : createdAt,
    };
  });
}

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
            const current = readSubmissionFile(submissionId, raw, mtimeMs, fileOf(submissionId));
            const list = current.formData.files;
            if (list !== undefined && !Array.isArray(list)) {
              throw new PgFerryError('UNPROCESSABLE', `submission ${JSON.stringify(submissionId)} has a "files" key that is not a list`);
            }
            const now = ctx.clock();
            const entry: FileEntry = {
              field: file.field,
              saved: file.originalFilename,
              url: file.url,
              is_cloud: file.isCloud,
              public_id: file.publicId,
              size: file.fileSize,
              file_type: file.fileType,
              uploaded_at: now.toISOString(),
            };
            const next = { ...current.formData, files: [...(list ?? []), entry] };
            const rows = filesOf(readSubmissionFile(submissionId, next, now.getTime(), fileOf(submissionId)), now.toISOString());
            return {
              next,
              result: rows.findLast((row) => row.url === file.url),
              modifiedAt: now,
              afterWrite: appendAfterWrite(auditLog, audit),
            };
          },
          ctx.lock,
        ),
      ),

    list: (submissionId) =>
      ctx.track(async () => {
        const read = await readJsonFileStat(fileOf(submissionId));
        if (!read) return [];
        const submission = readSubmissionFile(submissionId, read.value, read.mtimeMs, fileOf(submissionId));
        return filesOf(submission, isoOfUs(submission.createdUs));
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
