import { clampLimit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from '../../domain/conversations.ts';
import {
  type Actor,
  type AuditInput,
  applyJobTransition,
  type Job,
  type JobTransition,
  jobMeta,
  newJobId,
  parseDuration,
  type SubmissionStatus,
  validateAuditFilter,
  validateAuditInput,
  validateJobId,
  validateNewFile,
  validateNewSubmission,
  validateProgress,
  validateResults,
  validateSubmissionFilter,
  validateSubmissionId,
  validateSubmissionStatus,
  validateText,
} from '../../domain/forms.ts';
import { validateUserId } from '../../domain/ids.ts';
import { invalidInput, notFound, PgFerryError } from '../../errors.ts';
import { readSubmission, writeSubmission } from '../../formats/forms-submission.ts';
import type { AuditRepository, JobRepository, SubmissionRepository, UploadedFileRepository } from '../types.ts';
import { decodeListCursor, encodeListCursor } from './cursors.ts';
import type { FormsBackends, TransitionOutcome, Visibility } from './forms-backend.ts';

/**
 * Seed 002's repositories, once for every backend and every mix of them
 * (hybrid mode: jobs on JSON, the rest on PostgreSQL). Here: validation,
 * who sees what (a user their own submissions, an admin every one, a
 * submission without a user only an admin), the job state machine's rules
 * (domain/forms.ts), cursors and the audit entries. A backend that also
 * holds the audit log writes the entry with the change, atomically; when the
 * audit log is elsewhere the entry is recorded right after the change.
 */

const MAX_ERROR_TEXT = 10_000;

function validateActor(actor: Actor): Visibility {
  if (typeof actor !== 'object' || actor === null) throw invalidInput('invalid actor', { field: 'actor' });
  return { userId: validateUserId(actor.userId), all: actor.admin === true };
}

export interface FormsRepositories {
  submissions: SubmissionRepository;
  jobs: JobRepository;
  uploadedFiles: UploadedFileRepository;
  audit: AuditRepository;
}

export function createFormsRepositories(backends: FormsBackends): FormsRepositories {
  const { submissions: subs, jobs, files, audit } = backends;

  /** The entry for a change by `actor`. */
  const entry = (actor: Actor, action: string, resourceType: string, resourceId: string, details: Record<string, unknown> | null = null) =>
    ({
      userId: actor.userId,
      action,
      resourceType,
      resourceId,
      details,
      ip: actor.ip ?? null,
      userAgent: actor.userAgent ?? null,
    }) satisfies AuditInput;

  /**
   * Run a change on a backend of `kind`: the backend writes the audit entry
   * itself when it holds the audit log (same transaction); otherwise it gets
   * null and the entry goes to the audit backend once the change is done.
   */
  async function audited<T>(
    kind: string,
    change: (inline: AuditInput | null) => Promise<T>,
    auditInput: AuditInput,
    happened: (result: T) => boolean,
  ): Promise<T> {
    if (kind === audit.kind) return change(auditInput);
    const result = await change(null);
    if (happened(result)) await audit.append(auditInput);
    return result;
  }

  async function visibleSubmission(who: Visibility, id: string) {
    const found = await subs.read(who, id);
    if (!found) throw notFound('submission', id);
    return found;
  }

  /** The job, when the actor sees its submission (a job without one: admins only). */
  async function visibleJob(who: Visibility, id: string): Promise<Job> {
    const job = await jobs.read(id);
    if (job && (who.all || (job.submissionId !== null && (await subs.read(who, job.submissionId))))) return job;
    throw notFound('job', id);
  }

  async function transition(actor: Actor, id: string, t: JobTransition): Promise<Job> {
    const who = validateActor(actor);
    validateJobId(id);
    await visibleJob(who, id);
    const auditOf = ({ before, after }: TransitionOutcome) =>
      entry(actor, `job.${t.kind}`, 'job', id, { from: before.state, to: after.state, progress: after.progress });
    if (jobs.kind === audit.kind) {
      const done = await jobs.transition(id, (current) => applyJobTransition(id, current, t), auditOf);
      if (!done) throw notFound('job', id);
      return done.after;
    }
    const done = await jobs.transition(id, (current) => applyJobTransition(id, current, t), null);
    if (!done) throw notFound('job', id);
    await audit.append(auditOf(done));
    return done.after;
  }

  const submissionRepository: SubmissionRepository = {
    async create(actor, input) {
      const who = validateActor(actor);
      const valid = validateNewSubmission(input);
      const owner = ownerOf(who, input);
      const row = { ...valid, ...derivedColumns(valid), userId: owner };
      const created = await audited(
        subs.kind,
        (inline) => subs.insert(row, inline),
        entry(actor, 'submission.create', 'submission', valid.id, { module: valid.module, owner }),
        (result) => result !== undefined,
      );
      if (!created) throw new PgFerryError('CONFLICT', `submission ${JSON.stringify(valid.id)} already exists`, { id: valid.id });
      return created;
    },

    async get(actor, id) {
      return visibleSubmission(validateActor(actor), validateSubmissionId(id));
    },

    async list(actor, options = {}) {
      const who = validateActor(actor);
      const { limit: rawLimit, cursor, ...rest } = options;
      const filter = validateSubmissionFilter(rest);
      const limit = clampLimit(rawLimit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
      const after = cursor === undefined ? null : decodeListCursor(cursor);
      const rows = await subs.listAfter(who, filter, after, limit + 1);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(({ createdKey: _key, ...submission }) => submission),
        nextCursor: rows.length > limit && last ? encodeListCursor({ updatedKey: last.createdKey, id: last.id }) : null,
      };
    },

    async updateStatus(actor, id, status) {
      const who = validateActor(actor);
      validateSubmissionId(id);
      const valid = validateSubmissionStatus(status);
      const updated = await audited(
        subs.kind,
        (inline) => subs.setStatus(who, id, valid, inline),
        entry(actor, 'submission.status', 'submission', id, { status: valid }),
        (result) => result !== undefined,
      );
      if (!updated) throw notFound('submission', id);
      return updated;
    },

    async delete(actor, id) {
      const who = validateActor(actor);
      validateSubmissionId(id);
      const removed = await audited(
        subs.kind,
        (inline) => subs.remove(who, id, inline),
        entry(actor, 'submission.delete', 'submission', id),
        (result) => result,
      );
      if (!removed) throw notFound('submission', id);
      // Jobs go with their submission: on PostgreSQL the cascade already took them (this finds none);
      // on JSON files, or on another backend in hybrid mode, they are removed here.
      await jobs.removeBySubmission(id);
    },
  };

  const jobRepository: JobRepository = {
    async create(actor, submissionId, meta) {
      const who = validateActor(actor);
      validateSubmissionId(submissionId);
      const submission = await visibleSubmission(who, submissionId);
      const row = { id: newJobId(), submissionId, meta: jobMeta(meta, submissionId, submission.module) };
      const created = await audited(
        jobs.kind,
        (inline) => jobs.insert(row, inline),
        entry(actor, 'job.create', 'job', row.id, { submissionId }),
        (result) => result !== undefined,
      );
      if (!created) throw new PgFerryError('CONFLICT', `job ${JSON.stringify(row.id)} already exists`, { id: row.id });
      return created;
    },

    async get(actor, id) {
      return visibleJob(validateActor(actor), validateJobId(id));
    },

    start: async (actor, id) => transition(actor, id, { kind: 'start' }),
    progress: async (actor, id, progress) => transition(actor, id, { kind: 'progress', progress: validateProgress(progress) }),
    finish: async (actor, id, results) => transition(actor, id, { kind: 'finish', results: validateResults(results) }),
    fail: async (actor, id, error) => transition(actor, id, { kind: 'fail', error: validateText(error, 'error', MAX_ERROR_TEXT) }),

    async listBySubmission(actor, submissionId) {
      const who = validateActor(actor);
      validateSubmissionId(submissionId);
      await visibleSubmission(who, submissionId);
      return jobs.listBySubmission(submissionId);
    },

    async purgeFinished(olderThan, actor) {
      const ms = parseDuration(olderThan);
      const before = new Date(Date.now() - ms);
      const auditOf = (count: number): AuditInput => ({
        ...entry(actor ?? { userId: 'pgferry' }, 'jobs.purge', 'job', '*', { olderThanMs: ms, before: before.toISOString(), count }),
        userId: actor?.userId ?? null,
      });
      if (jobs.kind === audit.kind) return { purged: await jobs.purgeFinished(before, auditOf), before: before.toISOString() };
      const purged = await jobs.purgeFinished(before, null);
      if (purged > 0) await audit.append(auditOf(purged));
      return { purged, before: before.toISOString() };
    },
  };

  const fileRepository: UploadedFileRepository = {
    async add(actor, submissionId, file) {
      const who = validateActor(actor);
      validateSubmissionId(submissionId);
      const valid = validateNewFile(file);
      await visibleSubmission(who, submissionId);
      const added = await audited(
        files.kind,
        (inline) => files.insert(submissionId, valid, inline),
        entry(actor, 'file.add', 'submission', submissionId, { url: valid.url, fileType: valid.fileType }),
        (result) => result !== undefined,
      );
      if (!added) throw notFound('submission', submissionId);
      return added;
    },

    async list(actor, submissionId) {
      const who = validateActor(actor);
      validateSubmissionId(submissionId);
      await visibleSubmission(who, submissionId);
      return files.list(submissionId);
    },
  };

  const auditRepository: AuditRepository = {
    async record(input) {
      return audit.append(validateAuditInput(input));
    },
    async list(options = {}) {
      const { limit: rawLimit, cursor, ...rest } = options;
      const filter = validateAuditFilter(rest);
      const limit = clampLimit(rawLimit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
      const after = cursor === undefined ? null : decodeListCursor(cursor);
      const rows = await audit.listAfter(filter, after, limit + 1);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(({ createdKey: _key, ...item }) => item),
        nextCursor: rows.length > limit && last ? encodeListCursor({ updatedKey: last.createdKey, id: last.id }) : null,
      };
    },
  };

  return { submissions: submissionRepository, jobs: jobRepository, uploadedFiles: fileRepository, audit: auditRepository };
}

/**
 * site_name and visit_date as the format reader derives them from the
 * document the JSON backend writes (formats/forms-submission.ts), so both
 * backends derive the same columns from the same form_data.
 */
function derivedColumns(s: { id: string; module: string; status: SubmissionStatus; formData: Record<string, unknown> }) {
  const read = readSubmission(writeSubmission(s), { fileKey: s.id, fallbackUs: 0 });
  return read.ok ? { siteName: read.row.siteName, visitDate: read.row.visitDate } : { siteName: null, visitDate: null };
}

/** A submission is its creator's; only an admin may create one for another user or for none (the app's own records). */
function ownerOf(who: Visibility, input: { userId?: string | null }): string | null {
  if (input.userId === undefined) return who.userId;
  if (!who.all) {
    if (input.userId === who.userId) return who.userId;
    throw new PgFerryError('FORBIDDEN', 'only an admin creates a submission for another user or for none', { field: 'userId' });
  }
  return input.userId === null ? null : validateUserId(input.userId);
}
