import { randomBytes } from 'node:crypto';
import { invalidInput, PgFerryError } from '../errors.ts';
import type { JobState } from '../formats/forms-job.ts';
import { SUBMISSION_STATUSES, type SubmissionStatus } from '../formats/forms-submission.ts';
import { isValidRecordId, validateRecordId } from './ids.ts';

/**
 * Seed 002's forms app: submissions, report jobs, uploaded files and the
 * audit log (DESIGN section 3, REAL-FORMATS section A). Pure rules only —
 * validation, the derived columns and the job state machine — so both
 * backends enforce exactly the same thing.
 */

// One vocabulary with the format readers (the app's words are mapped there).
export { JOB_STATES, type JobState } from '../formats/forms-job.ts';
export { SUBMISSION_STATUSES, type SubmissionStatus } from '../formats/forms-submission.ts';

/** Who calls: the user, whether they are an admin, and where from (written to the audit log). */
export interface Actor {
  userId: string;
  admin?: boolean;
  ip?: string | null;
  userAgent?: string | null;
}

export interface Submission {
  /** `sub_<hex>` for the app's ids; any valid record id is accepted. */
  id: string;
  /** Null for the app's JSON-era submissions: only admins see them. */
  userId: string | null;
  module: string;
  status: SubmissionStatus;
  /** Derived from form_data unless given. */
  siteName: string | null;
  /** YYYY-MM-DD, derived from form_data unless given. */
  visitDate: string | null;
  /** The whole original document. */
  formData: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export interface NewSubmission {
  id?: string;
  module: string;
  status?: SubmissionStatus;
  /** The whole document as the app posts it; site name and visit date are derived from it. */
  formData: Record<string, unknown>;
}

export interface SubmissionFilter {
  module?: string;
  status?: SubmissionStatus;
  /** Inclusive YYYY-MM-DD bounds on visitDate. */
  visitDateFrom?: string;
  visitDateTo?: string;
  /** Case-insensitive substring of siteName. */
  siteName?: string;
}

export interface Job {
  /** `job_<hex>`. */
  id: string;
  /** The app links a job to its submission only in `meta.submission_id`; null when it had none. */
  submissionId: string | null;
  state: JobState;
  progress: number;
  /** As the app's frontends read it: a list (civil), `{excel, pdf}`, `{excel_url, pdf_url}` or `{error}`. */
  results: unknown;
  error: string | null;
  meta: Record<string, unknown>;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  updatedAt: string;
}

export interface UploadedFile {
  id: string;
  submissionId: string;
  field: string | null;
  url: string;
  publicId: string | null;
  /** photo, signature, report, … */
  fileType: string | null;
  originalFilename: string | null;
  fileSize: number | null;
  isCloud: boolean;
  uploadedAt: string;
}

export interface NewUploadedFile {
  field?: string | null;
  url: string;
  publicId?: string | null;
  fileType?: string | null;
  originalFilename?: string | null;
  fileSize?: number | null;
  isCloud?: boolean;
}

export interface AuditInput {
  userId: string | null;
  action: string;
  resourceType: string | null;
  resourceId: string | null;
  details: Record<string, unknown> | null;
  ip: string | null;
  userAgent: string | null;
}

export interface AuditEntry extends AuditInput {
  id: string;
  createdAt: string;
}

export interface AuditFilter {
  userId?: string;
  action?: string;
  resourceType?: string;
  resourceId?: string;
  /** ISO instants: from inclusive, to exclusive. */
  from?: string;
  to?: string;
}

// ---- ids ------------------------------------------------------------------------

/** The app's id form (`common/utils.py` random_id): prefix + 12 hex. */
export const newSubmissionId = (): string => `sub_${randomBytes(6).toString('hex')}`;
export const newJobId = (): string => `job_${randomBytes(6).toString('hex')}`;

export const validateSubmissionId = (value: unknown): string => validateRecordId(value, 'submissionId');
export const validateJobId = (value: unknown): string => validateRecordId(value, 'jobId');
export { isValidRecordId };

// ---- validation -------------------------------------------------------------------

const MODULE_PATTERN = /^[a-z][a-z0-9_]{0,63}$/;
const DATE_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;
const MAX_TEXT = 1000;
const MAX_URL = 4096;
/** A form document's serialized size; inline base64 signatures are 20-80 KB each. */
export const MAX_FORM_DATA_BYTES = 16 * 1024 * 1024;
const MAX_PROGRESS = 100;

export function validateModule(value: unknown): string {
  if (typeof value !== 'string' || !MODULE_PATTERN.test(value)) {
    throw invalidInput(`invalid module: expected lower-case letters, digits and "_" (e.g. civil, hvac_mep, cleaning)`, {
      field: 'module',
    });
  }
  return value;
}

export function validateSubmissionStatus(value: unknown): SubmissionStatus {
  if (!(SUBMISSION_STATUSES as readonly unknown[]).includes(value)) {
    throw invalidInput(`invalid status: expected one of ${SUBMISSION_STATUSES.join(', ')}`, { field: 'status' });
  }
  return value as SubmissionStatus;
}

/** A calendar-valid YYYY-MM-DD (years 1-9999). */
export function isIsoDate(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const match = DATE_PATTERN.exec(value);
  if (!match || match[1] === '0000') return false;
  const time = Date.parse(`${value}T00:00:00Z`);
  return !Number.isNaN(time) && new Date(time).toISOString().slice(0, 10) === value;
}

export function validateDate(value: unknown, field: string): string {
  if (!isIsoDate(value)) throw invalidInput(`invalid ${field}: expected a date YYYY-MM-DD`, { field });
  return value;
}

export function validateText(value: unknown, field: string, max = MAX_TEXT): string {
  if (typeof value !== 'string' || value.length > max || value.includes('\u0000')) {
    throw invalidInput(`invalid ${field}: expected text of at most ${max} characters without NUL`, { field });
  }
  return value;
}

const optionalText = (value: unknown, field: string, max = MAX_TEXT): string | null =>
  value === undefined || value === null ? null : validateText(value, field, max);

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON object within MAX_FORM_DATA_BYTES; returns it unchanged. */
export function validateJsonObject(value: unknown, field: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw invalidInput(`invalid ${field}: expected a JSON object`, { field });
  let text: string;
  try {
    text = JSON.stringify(value);
  } catch {
    throw invalidInput(`invalid ${field}: not serializable as JSON`, { field });
  }
  if (text.includes('\\u0000')) throw invalidInput(`invalid ${field}: NUL characters are not stored`, { field });
  if (Buffer.byteLength(text) > MAX_FORM_DATA_BYTES) {
    throw new PgFerryError('PAYLOAD_TOO_LARGE', `${field} is larger than ${MAX_FORM_DATA_BYTES} bytes`, { field });
  }
  return value;
}

export function validateProgress(value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_PROGRESS) {
    throw invalidInput('invalid progress: expected an integer from 0 to 100', { field: 'progress' });
  }
  return value as number;
}

export function validateNewSubmission(input: unknown): Required<NewSubmission> {
  if (!isPlainObject(input)) throw invalidInput('invalid submission: expected an object', { field: 'submission' });
  return {
    id: input.id === undefined ? newSubmissionId() : validateSubmissionId(input.id),
    module: validateModule(input.module),
    status: input.status === undefined ? 'pending' : validateSubmissionStatus(input.status),
    formData: validateJsonObject(input.formData, 'formData'),
  };
}

export function validateSubmissionFilter(filter: unknown): SubmissionFilter {
  if (filter === undefined) return {};
  if (!isPlainObject(filter)) throw invalidInput('invalid filter: expected an object', { field: 'filter' });
  const valid: SubmissionFilter = {};
  if (filter.module !== undefined) valid.module = validateModule(filter.module);
  if (filter.status !== undefined) valid.status = validateSubmissionStatus(filter.status);
  if (filter.visitDateFrom !== undefined) valid.visitDateFrom = validateDate(filter.visitDateFrom, 'visitDateFrom');
  if (filter.visitDateTo !== undefined) valid.visitDateTo = validateDate(filter.visitDateTo, 'visitDateTo');
  if (filter.siteName !== undefined) valid.siteName = validateText(filter.siteName, 'siteName', 200);
  return valid;
}

export function validateNewFile(input: unknown): Required<NewUploadedFile> {
  if (!isPlainObject(input)) throw invalidInput('invalid file: expected an object', { field: 'file' });
  const size = input.fileSize;
  if (size !== undefined && size !== null && (!Number.isSafeInteger(size) || (size as number) < 0)) {
    throw invalidInput('invalid fileSize: expected a non-negative integer', { field: 'fileSize' });
  }
  if (input.isCloud !== undefined && typeof input.isCloud !== 'boolean') {
    throw invalidInput('invalid isCloud: expected true or false', { field: 'isCloud' });
  }
  return {
    field: optionalText(input.field, 'field', 200),
    url: validateText(input.url, 'url', MAX_URL),
    publicId: optionalText(input.publicId, 'publicId', 500),
    fileType: optionalText(input.fileType, 'fileType', 50),
    originalFilename: optionalText(input.originalFilename, 'originalFilename', 500),
    fileSize: (size ?? null) as number | null,
    isCloud: (input.isCloud as boolean | undefined) ?? false,
  };
}

const AUDIT_WORD = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/;

export function validateAuditInput(input: unknown): AuditInput {
  if (!isPlainObject(input)) throw invalidInput('invalid audit entry: expected an object', { field: 'audit' });
  if (typeof input.action !== 'string' || !AUDIT_WORD.test(input.action)) {
    throw invalidInput('invalid action: expected a word such as "submission.create"', { field: 'action' });
  }
  return {
    userId: optionalText(input.userId, 'userId', 128),
    action: input.action,
    resourceType: optionalText(input.resourceType, 'resourceType', 50),
    resourceId: optionalText(input.resourceId, 'resourceId', 128),
    details: input.details === undefined || input.details === null ? null : validateJsonObject(input.details, 'details'),
    ip: optionalText(input.ip, 'ip', 100),
    userAgent: optionalText(input.userAgent, 'userAgent', 500),
  };
}

export function validateAuditFilter(filter: unknown): AuditFilter {
  if (filter === undefined) return {};
  if (!isPlainObject(filter)) throw invalidInput('invalid filter: expected an object', { field: 'filter' });
  const valid: AuditFilter = {};
  for (const key of ['userId', 'action', 'resourceType', 'resourceId'] as const) {
    if (filter[key] !== undefined) valid[key] = validateText(filter[key], key, 128);
  }
  for (const key of ['from', 'to'] as const) {
    const value = filter[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
      throw invalidInput(`invalid ${key}: expected an ISO 8601 instant`, { field: key });
    }
    valid[key] = new Date(value).toISOString();
  }
  return valid;
}

// ---- the job state machine -------------------------------------------------------------

/** What a transition asks for. */
export type JobTransition =
  | { kind: 'start' }
  | { kind: 'progress'; progress: number }
  | { kind: 'finish'; results: unknown }
  | { kind: 'fail'; error: string };

/** The job fields a transition changes. */
export interface JobChange {
  state: JobState;
  progress: number;
  results?: unknown;
  error?: string;
  /** Set startedAt / completedAt to "now". */
  stamp: 'started' | 'completed' | null;
}

const TERMINAL: ReadonlySet<JobState> = new Set(['done', 'failed']);

function illegal(jobId: string, from: JobState, what: string): PgFerryError {
  return new PgFerryError('CONFLICT', `job ${JSON.stringify(jobId)} is ${from}: cannot ${what}`, { jobId, state: from });
}

/**
 * started → running → done | failed, never back: `start` only from started;
 * `progress` from started or running (it moves a started job to running, as
 * the app's update_job_progress does), 0–100 and never lower than now;
 * `finish` and `fail` from started or running. Anything else is CONFLICT.
 */
export function applyJobTransition(jobId: string, current: { state: JobState; progress: number }, t: JobTransition): JobChange {
  const from = current.state;
  if (TERMINAL.has(from)) throw illegal(jobId, from, t.kind);
  switch (t.kind) {
    case 'start':
      if (from !== 'started') throw illegal(jobId, from, 'start');
      return { state: 'running', progress: current.progress, stamp: 'started' };
    case 'progress':
      if (t.progress < current.progress) {
        throw new PgFerryError(
          'CONFLICT',
          `job ${JSON.stringify(jobId)} is at ${current.progress}%: progress only moves forward (got ${t.progress})`,
          { jobId, progress: current.progress },
        );
      }
      return { state: 'running', progress: t.progress, stamp: from === 'started' ? 'started' : null };
    case 'finish':
      return { state: 'done', progress: 100, results: t.results, stamp: 'completed' };
    case 'fail':
      return { state: 'failed', progress: current.progress, results: { error: t.error }, error: t.error, stamp: 'completed' };
  }
}

/** The job's error as the app wrote it: `results.error` or `results[0].error` (REAL-FORMATS A.2). */
export function errorOfResults(results: unknown): string | null {
  const first = Array.isArray(results) ? results[0] : results;
  return isPlainObject(first) && typeof first.error === 'string' ? first.error : null;
}

/** The report URLs the app's frontends read, in every form of `results`. */
export function reportUrls(results: unknown): { excelUrl: string | null; pdfUrl: string | null } {
  if (Array.isArray(results)) {
    const urls = results.map((r) => (isPlainObject(r) && typeof r.url === 'string' ? r.url : '')).filter(Boolean);
    return { excelUrl: urls.find((u) => /\.xlsx?$/i.test(u)) ?? null, pdfUrl: urls.find((u) => /\.pdf$/i.test(u)) ?? null };
  }
  if (!isPlainObject(results)) return { excelUrl: null, pdfUrl: null };
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  return { excelUrl: text(results.excel_url) ?? text(results.excel), pdfUrl: text(results.pdf_url) ?? text(results.pdf) };
}

/** The results a worker sends: any JSON value within the size limit. */
export function validateResults(value: unknown): unknown {
  if (value === undefined) throw invalidInput('invalid results: expected a JSON value', { field: 'results' });
  validateJsonObject({ results: value }, 'results');
  return value;
}

/** A job's `meta`: a JSON object, `submission_id` set to the job's submission (the app's only link). */
export function jobMeta(meta: unknown, submissionId: string, module: string): Record<string, unknown> {
  const given = meta === undefined || meta === null ? {} : validateJsonObject(meta, 'meta');
  return { ...given, submission_id: submissionId, module: typeof given.module === 'string' ? given.module : module };
}

/** `7d`, `12h`, `30m`, `45s` or a number of milliseconds → milliseconds. */
export function parseDuration(value: string | number, field = 'olderThan'): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^(\d{1,6})(ms|s|m|h|d|w)$/.exec(value.trim()) : null;
  if (!match) throw invalidInput(`invalid ${field}: expected a duration such as 7d, 12h, 30m`, { field });
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[match[2] as 'ms'];
  return Number(match[1]) * unit;
}
