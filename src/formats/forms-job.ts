import { isValidRecordId } from '../domain/ids.ts';
import { type FormsReadOptions, parseLocalTimestampUs } from './forms-common.ts';
import { numberValue } from './json-text.ts';
import { formatTimestamp, parseTimestampUs, styleOf } from './timestamps.ts';
import { describe, isObject, type Validated } from './validated.ts';

/**
 * The forms app's job file, `generated/jobs/<job_id>.json` (seed 002,
 * REAL-FORMATS.md A.2), read into one normalised record:
 *
 *   {job_id, state, progress, results, meta:{submission_id, module, created_at?, …}, created_at, completed_at?}
 *
 * - the link to the submission is only in `meta.submission_id`;
 * - `results` comes in four forms: `[{filename, url}]`, `{excel, pdf}`,
 *   `{excel_url, pdf_url}`, and errors as `{error}` or `[{error}]`;
 * - an HVAC failure is written `state:"done"` with `results.error`: it is a failed job;
 * - times are epoch floats (`time.time()`), except a cleaning failure's
 *   `completed_at`, an ISO string in the server's local time.
 */

export const JOB_STATES = ['started', 'running', 'done', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];

/** The app's state words and its database era's (pending|processing|completed|failed) → the seed's. */
const STATE_WORDS: Record<string, JobState> = {
  started: 'started',
  pending: 'started',
  queued: 'started',
  running: 'running',
  processing: 'running',
  done: 'done',
  completed: 'done',
  complete: 'done',
  success: 'done',
  failed: 'failed',
  error: 'failed',
};

export function jobStateOf(word: unknown): JobState | undefined {
  return typeof word === 'string' ? STATE_WORDS[word.trim().toLowerCase()] : undefined;
}

export interface FormsJob {
  jobId: string;
  /** meta.submission_id: the submission's id (the app's `sub_…`), or null when the job names none. */
  submissionId: string | null;
  /** meta.module. */
  module: string | null;
  state: JobState;
  /** The state word as written (`done` for an HVAC failure). */
  writtenState: string;
  progress: number;
  /** `results` as written (null when absent). */
  results: unknown;
  excelUrl: string | null;
  pdfUrl: string | null;
  errorMessage: string | null;
  meta: Record<string, unknown> | null;
  /** Epoch microseconds. */
  createdUs: number;
  startedUs: number | null;
  completedUs: number | null;
}

export interface JobReadOptions extends FormsReadOptions {
  /** The id the file's name gives (`<job_id>.json`): the record's key when set. */
  fileKey?: string;
  /** created_at when the job has none (e.g. the file's mtime), epoch µs. */
  fallbackUs?: number;
}

const KNOWN_KEYS = new Set([
  'job_id',
  'state',
  'status',
  'progress',
  'results',
  'meta',
  'created_at',
  'started_at',
  'completed_at',
  'submission_id',
]);

/** A parsed job file → its record, or the reason it cannot be read. */
export function readJob(doc: unknown, options: JobReadOptions = {}): Validated<FormsJob> {
  const warnings: string[] = [];
  const fileKey = options.fileKey ?? null;
  const reject = (reason: string, key: string | null = fileKey): Validated<FormsJob> => ({ ok: false, key, reason, warnings });
  if (!isObject(doc)) return reject(`expected a JSON object, found ${describe(doc)}`);

  if (doc.job_id !== undefined && typeof doc.job_id !== 'string') return reject(`job_id must be a string, found ${describe(doc.job_id)}`);
  const inner = doc.job_id as string | undefined;
  if (fileKey !== null && inner !== undefined && inner !== fileKey)
    warnings.push(`job_id in the document differs from its file name: the file name's ${JSON.stringify(fileKey)} is used`);
  const jobId = fileKey ?? inner;
  if (jobId === undefined) return reject('no job_id');
  if (!isValidRecordId(jobId))
    return reject(`job id ${describe(jobId)} does not pass the id rules (1-128 of A-Z a-z 0-9 _ -, not starting with _ or -)`, null);

  const word = doc.state ?? doc.status;
  if (word === undefined || word === null) return reject('no state', jobId);
  const mapped = jobStateOf(word);
  if (!mapped)
    return reject(
      `unknown state ${typeof word === 'string' ? JSON.stringify(word.slice(0, 40)) : describe(word)} (expected started, running, done or failed)`,
      jobId,
    );

  let meta: Record<string, unknown> | null = null;
  if (isObject(doc.meta)) meta = doc.meta;
  else if (doc.meta !== undefined && doc.meta !== null) return reject(`meta must be an object, found ${describe(doc.meta)}`, jobId);

  const link = meta?.submission_id ?? doc.submission_id;
  let submissionId: string | null = null;
  if (typeof link === 'string' && link !== '') submissionId = link;
  else if (link === undefined || link === null) warnings.push('no meta.submission_id: the job is linked to no submission');
  else warnings.push(`meta.submission_id is ${describe(link)}, not a string: the job is linked to no submission`);
  const module = typeof meta?.module === 'string' ? meta.module : null;

  const outcome = resultsOf(doc.results, warnings);
  // HVAC wrote its failures as state "done" with results.error (REAL-FORMATS A.2).
  const state: JobState = mapped === 'done' && outcome.errorMessage !== null ? 'failed' : mapped;

  const progress = progressOf(doc.progress, state, warnings);
  if (typeof progress !== 'number') return reject(progress.reason, jobId);

  const createdUs =
    timeOf(doc.created_at, 'created_at', 'UTC', warnings) ??
    timeOf(meta?.created_at, 'meta.created_at', 'UTC', warnings) ??
    options.fallbackUs ??
    null;
  if (createdUs === null) return reject('no usable created_at, and no file time to fall back on', jobId);
  if (doc.created_at === undefined) warnings.push('no created_at: meta.created_at or the file time is used');
  // A naive ISO completed_at was written with datetime.now(): the server's local time.
  const completedUs = timeOf(doc.completed_at, 'completed_at', options.sourceTimezone, warnings);
  const startedUs = timeOf(doc.started_at, 'started_at', options.sourceTimezone, warnings);

  const unknownKeys = Object.keys(doc).filter((k) => !KNOWN_KEYS.has(k));
  if (unknownKeys.length > 0) warnings.push(`fields not imported (no column for them): ${unknownKeys.length} key(s)`);
  return {
    ok: true,
    key: jobId,
    row: {
      jobId,
      submissionId,
      module,
      state,
      writtenState: typeof word === 'string' ? word : mapped,
      progress,
      results: doc.results === undefined ? null : doc.results,
      ...outcome,
      meta,
      createdUs,
      startedUs,
      completedUs,
    },
    warnings,
  };
}

function timeOf(value: unknown, name: string, zone: string | undefined, warnings: string[]): number | null {
  if (value === undefined || value === null) return null;
  const n = numberValue(value);
  const us = n !== undefined ? parseTimestampUs(n) : parseLocalTimestampUs(value, zone);
  if (us === null) warnings.push(`${name} is not a time: ${describe(value)}; left empty`);
  return us;
}

function progressOf(value: unknown, state: JobState, warnings: string[]): number | { reason: string } {
  if (value === undefined || value === null) {
    const taken = state === 'done' ? 100 : 0;
    warnings.push(`no progress: taken as ${taken}`);
    return taken;
  }
  const n = numberValue(value);
  if (n === undefined || !Number.isFinite(n)) return { reason: `progress must be a number from 0 to 100, found ${describe(value)}` };
  if (n < 0 || n > 100) return { reason: `progress must be from 0 to 100, found ${n}` };
  if (!Number.isInteger(n)) warnings.push(`progress ${n} rounded to ${Math.round(n)}`);
  return Math.round(n);
}

const stringOr = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** The four forms of `results` → report URLs and the error message. */
function resultsOf(results: unknown, warnings: string[]): { excelUrl: string | null; pdfUrl: string | null; errorMessage: string | null } {
  const out = { excelUrl: null as string | null, pdfUrl: null as string | null, errorMessage: null as string | null };
  if (results === undefined || results === null) return out;
  if (Array.isArray(results)) {
    for (const entry of results) {
      if (!isObject(entry)) {
        warnings.push(`results entry is ${describe(entry)}: kept in results only`);
        continue;
      }
      if (entry.error !== undefined && out.errorMessage === null) out.errorMessage = errorText(entry.error);
      const url = stringOr(entry.url);
      const name = stringOr(entry.filename) ?? url ?? '';
      if (url && /\.xlsx?$/i.test(name)) out.excelUrl ??= url;
      else if (url && /\.pdf$/i.test(name)) out.pdfUrl ??= url;
    }
    return out;
  }
  if (isObject(results)) {
    if (results.error !== undefined && results.error !== null) out.errorMessage = errorText(results.error);
    out.excelUrl = stringOr(results.excel_url) ?? stringOr(results.excel);
    out.pdfUrl = stringOr(results.pdf_url) ?? stringOr(results.pdf);
    return out;
  }
  warnings.push(`results is ${describe(results)}, not a list or an object: kept as written`);
  return out;
}

const errorText = (error: unknown): string => (typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)));

// ---------------------------------------------------------------------------
// Writing: the app's own shape (the JSON backend)

export interface JobToWrite {
  jobId: string;
  submissionId: string | null;
  module: string | null;
  state: JobState;
  progress: number;
  results: unknown;
  meta: Record<string, unknown> | null;
  createdUs: number;
  startedUs?: number | null;
  completedUs: number | null;
}

/**
 * The job file as the app writes it (`mark_job_started`, `update_job_progress`,
 * `mark_job_done`): keys the file already has are kept, times are written in
 * the style each already has (epoch seconds for a new file), and a failed job
 * that the file wrote as `done` + `results.error` stays written that way.
 */
export function writeJob(job: JobToWrite, previous?: unknown): Record<string, unknown> {
  const doc: Record<string, unknown> = isObject(previous) ? { ...previous } : {};
  const keepDone = job.state === 'failed' && doc.state === 'done' && isObject(job.results) && job.results.error !== undefined;
  doc.job_id = job.jobId;
  doc.state = keepDone ? 'done' : job.state;
  doc.progress = job.progress;
  doc.results = job.results ?? [];
  const meta: Record<string, unknown> = { ...(job.meta ?? {}) };
  if (job.submissionId !== null) meta.submission_id = job.submissionId;
  if (job.module !== null) meta.module = job.module;
  doc.meta = meta;
  const put = (key: string, us: number | null | undefined) => {
    if (us === null || us === undefined) {
      delete doc[key];
      return;
    }
    // time.time() writes sub-microsecond digits: an unchanged time keeps its written value.
    const written = numberValue(doc[key]);
    if ((written !== undefined ? parseTimestampUs(written) : parseLocalTimestampUs(doc[key])) === us) return;
    doc[key] = formatTimestamp(us, styleOf(doc[key]) ?? { kind: 'epoch' });
  };
  put('created_at', job.createdUs);
  if (job.startedUs !== undefined || 'started_at' in doc) put('started_at', job.startedUs);
  put('completed_at', job.completedUs);
  return doc;
}
