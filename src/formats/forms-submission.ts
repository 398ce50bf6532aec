import { isValidRecordId, isValidUserId } from '../domain/ids.ts';
import { at, type FormsReadOptions, isFormsModule, parseLocalTimestampUs } from './forms-common.ts';
import { parseTimestampUs } from './timestamps.ts';
import { describe, isObject, type Validated } from './validated.ts';

/**
 * The forms app's submission file, `generated/submissions/<id>.json` (seed
 * 002, REAL-FORMATS.md A.1), read into one normalised record for the
 * importer and the JSON backend. Five layouts were written by the app:
 *
 *   fields    {id, fields:{…}, files:[…], base_url?}            S1, S1h, S1c (civil, hvac, cleaning /submit)
 *   work-items {id, project_name, visit_date, work_items:[…]}     S2 (civil /submit-with-urls)
 *   items     {id | submission_id, site_name, items:[…]}          S3, S4 (hvac)
 *   payload   the cleaning form's own JSON + submission_id, job_id S5 (and its 8790837 variant)
 *   wrapper   {submission_id, data:{…}, timestamp, base_url}      S6 (cleaning /submit-with-urls)
 *
 * The whole document is kept as `formData` (nothing is dropped); the
 * columns are derived from it. Photos and signatures, wherever a layout put
 * them, become file rows; inline base64 signatures stay in `formData` and are
 * only noted (with a warning when one is over `inlineWarnBytes`).
 */

/** The seed's submission status words (submissions.status). */
export const SUBMISSION_STATUSES = ['pending', 'processing', 'completed', 'failed'] as const;
export type SubmissionStatus = (typeof SUBMISSION_STATUSES)[number];

export type SubmissionLayout = 'fields' | 'work-items' | 'items' | 'payload' | 'wrapper';

/** Where the module came from: the document, the submission's job, a layout rule, --module, or nowhere. */
export type ModuleSource = 'document' | 'job' | 'layout' | 'option' | 'unknown';

/** One photo or signature of a submission: a row of uploaded_files. */
export interface SubmissionFile {
  /** The form field or the place in the document it came from (`items[0].photos[1]`). */
  field: string;
  url: string;
  /** Cloudinary's public id, read off a Cloudinary URL. */
  publicId: string | null;
  fileType: 'photo' | 'signature';
  /** The name the app saved the file under (`saved`), when it kept one. */
  originalFilename: string | null;
  fileSize: number | null;
  isCloud: boolean;
}

/** An inline `data:` URL (a base64 signature or photo) left in form_data. */
export interface InlineBlob {
  place: string;
  /** Length of the data URL in characters (= bytes: it is ASCII). */
  bytes: number;
}

export interface FormsSubmission {
  id: string;
  module: string;
  moduleSource: ModuleSource;
  status: SubmissionStatus;
  siteName: string | null;
  /** YYYY-MM-DD. */
  visitDate: string | null;
  userId: string | null;
  /** Epoch microseconds. */
  createdUs: number;
  submittedByIp: string | null;
  layout: SubmissionLayout;
  /** The job id the document names (cleaning S5 keeps its `job_id`). */
  jobId: string | null;
  files: SubmissionFile[];
  inline: InlineBlob[];
  /** The whole original document. */
  formData: Record<string, unknown>;
}

export interface SubmissionReadOptions extends FormsReadOptions {
  /** The id the file's name gives (`<id>.json`): the record's key when set. */
  fileKey?: string;
  /** The module of this submission's job (`meta.module`), when the caller knows it. */
  jobModule?: string;
  /** The job's state, when the caller knows it: gives the status of a document that has none. */
  jobState?: string;
  /** `--module`: the module of a submission that neither the document, its job nor a layout rule names. */
  module?: string;
  /** created_at when the document has no time (e.g. the file's mtime), epoch µs. */
  fallbackUs?: number;
  /** An inline data URL longer than this is noted as a warning (it is kept all the same). Default 256 KiB. */
  inlineWarnBytes?: number;
}

export const DEFAULT_INLINE_WARN_BYTES = 256 * 1024;

/** The app's and its database's status words → the seed's. */
const STATUS_WORDS: Record<string, SubmissionStatus> = {
  draft: 'pending',
  pending: 'pending',
  submitted: 'pending',
  queued: 'pending',
  started: 'processing',
  running: 'processing',
  processing: 'processing',
  in_progress: 'processing',
  done: 'completed',
  complete: 'completed',
  completed: 'completed',
  success: 'completed',
  failed: 'failed',
  error: 'failed',
};

/** A status word of the app (or of a job's state) in the seed's words; undefined when unknown. */
export function submissionStatusOf(word: unknown): SubmissionStatus | undefined {
  return typeof word === 'string' ? STATUS_WORDS[word.trim().toLowerCase()] : undefined;
}

/** Keys only the cleaning form's own JSON (S5) has at its top level. */
const CLEANING_KEYS = ['client_name', 'date_of_visit', 'contact_signature', 'job_id'];

/** A parsed submission file → its record, or the reason it cannot be read. */
export function readSubmission(doc: unknown, options: SubmissionReadOptions = {}): Validated<FormsSubmission> {
  const warnings: string[] = [];
  const fileKey = options.fileKey;
  const reject = (reason: string, key: string | null = fileKey ?? null): Validated<FormsSubmission> => ({
    ok: false,
    key,
    reason,
    warnings,
  });
  if (!isObject(doc)) return reject(`expected a JSON object, found ${describe(doc)}`);

  const id = submissionId(doc, fileKey, warnings);
  if (typeof id !== 'string') return reject(id.reason);
  if (!isValidRecordId(id))
    return reject(`submission id ${describe(id)} does not pass the id rules (1-128 of A-Z a-z 0-9 _ -, not starting with _ or -)`, null);

  const layout = layoutOf(doc);
  if (typeof layout !== 'string') return reject(layout.reason, id);
  const containers = containersOf(doc, layout);

  const module = moduleOf(doc, layout, containers, options, warnings);
  const status = statusOf(doc, options, warnings);
  const siteName = firstString(containers, ['site_name', 'project_name']);
  const visitDate = visitDateOf(containers, warnings);
  const createdUs = createdOf(doc, options, warnings);
  if (createdUs === null) return reject('no usable created_at or timestamp, and no file time to fall back on', id);
  const userId = isValidUserId(doc.user_id) ? doc.user_id : null;
  if (doc.user_id !== undefined && doc.user_id !== null && userId === null)
    warnings.push(`user_id ${describe(doc.user_id)} is not a valid user id: imported without a user`);
  const ip = firstString([{ value: doc }], ['submitted_by_ip', 'ip_address']);
  const jobId = typeof doc.job_id === 'string' ? doc.job_id : null;

  const files = collectFiles(containers, warnings);
  const inline = inlineBlobs(doc);
  const limit = options.inlineWarnBytes ?? DEFAULT_INLINE_WARN_BYTES;
  for (const blob of inline) {
    if (blob.bytes > limit) warnings.push(`inline data URL at ${blob.place} is ${blob.bytes} bytes (over ${limit}): kept in form_data`);
  }
  return {
    ok: true,
    key: id,
    row: { id, ...module, status, siteName, visitDate, userId, createdUs, submittedByIp: ip, layout, jobId, files, inline, formData: doc },
    warnings,
  };
}

function submissionId(doc: Record<string, unknown>, fileKey: string | undefined, warnings: string[]): string | { reason: string } {
  const inner = doc.id ?? doc.submission_id;
  if (inner !== undefined && inner !== null && typeof inner !== 'string') {
    if (fileKey === undefined) return { reason: `id must be a string, found ${describe(inner)}` };
    warnings.push(`id in the document is ${describe(inner)}, not a string: the file name's id is used`);
  }
  if (typeof doc.id === 'string' && typeof doc.submission_id === 'string' && doc.id !== doc.submission_id) {
    warnings.push('the document has both id and submission_id, and they differ: id is used');
  }
  if (fileKey !== undefined) {
    if (typeof inner === 'string' && inner !== fileKey)
      warnings.push(`the document's id differs from its file name: the file name's ${JSON.stringify(fileKey)} is used`);
    return fileKey;
  }
  if (typeof inner !== 'string') return { reason: 'no id or submission_id in the document' };
  return inner;
}

/** Which of the five layouts a document has, or why it has none. */
function layoutOf(doc: Record<string, unknown>): SubmissionLayout | { reason: string } {
  const wrongType = (key: string, expected: string) => ({ reason: `${key} must be ${expected}, found ${describe(doc[key])}` });
  if (doc.data !== undefined) return isObject(doc.data) ? 'wrapper' : wrongType('data', 'an object');
  if (doc.fields !== undefined) return isObject(doc.fields) ? 'fields' : wrongType('fields', 'an object');
  if (doc.work_items !== undefined) return Array.isArray(doc.work_items) ? 'work-items' : wrongType('work_items', 'a list');
  if (doc.items !== undefined) return Array.isArray(doc.items) ? 'items' : wrongType('items', 'a list');
  if (CLEANING_KEYS.some((k) => k in doc) || Array.isArray(doc.photos)) return 'payload';
  // A document the app's database era wrote (form_data with a module) has no fixed layout of its own.
  if (typeof doc.module === 'string') return 'payload';
  return {
    reason: `unknown submission shape: none of fields, data, items, work_items or the cleaning form's keys (${Object.keys(doc).length} keys)`,
  };
}

/** The objects whose keys hold the form's values, most specific first. */
function containersOf(doc: Record<string, unknown>, layout: SubmissionLayout): Array<{ base: string; value: Record<string, unknown> }> {
  if (layout === 'fields')
    return [
      { base: 'fields', value: doc.fields as Record<string, unknown> },
      { base: '', value: doc },
    ];
  if (layout === 'wrapper')
    return [
      { base: 'data', value: doc.data as Record<string, unknown> },
      { base: '', value: doc },
    ];
  return [{ base: '', value: doc }];
}

function moduleOf(
  doc: Record<string, unknown>,
  layout: SubmissionLayout,
  containers: Array<{ value: Record<string, unknown> }>,
  options: SubmissionReadOptions,
  warnings: string[],
): { module: string; moduleSource: ModuleSource } {
  const named = doc.module ?? doc.module_type;
  if (typeof named === 'string' && named.trim() !== '') {
    if (!isFormsModule(named))
      warnings.push(`module ${JSON.stringify(named.slice(0, 40))} is not one of civil, hvac_mep, cleaning: kept as written`);
    return { module: named, moduleSource: 'document' };
  }
  // The layout before the job: jobs are purged after 7 days (the seed's hybrid
  // option), and a submission's module must not change when its job goes.
  const ruled = moduleByLayout(doc, layout, containers);
  if (ruled !== null) return { module: ruled, moduleSource: 'layout' };
  if (options.jobModule !== undefined && options.jobModule !== '') return { module: options.jobModule, moduleSource: 'job' };
  if (options.module !== undefined && options.module !== '') return { module: options.module, moduleSource: 'option' };
  warnings.push('module unknown (no module in the document, no layout rule, no job, no --module): imported as "unknown"');
  return { module: 'unknown', moduleSource: 'unknown' };
}

/** The layout rules (REAL-FORMATS A.1): which module wrote a layout, when only one did. */
function moduleByLayout(
  doc: Record<string, unknown>,
  layout: SubmissionLayout,
  containers: Array<{ value: Record<string, unknown> }>,
): string | null {
  switch (layout) {
    case 'wrapper':
    case 'payload':
      return 'cleaning';
    case 'work-items':
      return 'civil';
    case 'items':
      return 'hvac_mep';
    case 'fields': {
      const fields = containers[0]!.value;
      if ('site_name' in fields || typeof doc.tech_signature === 'boolean') return 'hvac_mep';
      if ('client_name' in fields || 'date_of_visit' in fields || Object.keys(fields).some((k) => k.startsWith('scope_')))
        return 'cleaning';
      if ('project_name' in fields || 'work_desc[]' in fields || 'description_of_work' in fields) return 'civil';
      return null;
    }
  }
}

function statusOf(doc: Record<string, unknown>, options: SubmissionReadOptions, warnings: string[]): SubmissionStatus {
  if (doc.status !== undefined && doc.status !== null) {
    const mapped = submissionStatusOf(doc.status);
    if (mapped) return mapped;
    warnings.push(`unknown status ${describe(doc.status)}: taken as "completed"`);
    return 'completed';
  }
  if (options.jobState !== undefined) {
    const mapped = submissionStatusOf(options.jobState);
    if (mapped) return mapped;
  }
  // The JSON era kept no status; the seed's own migration marks historical data complete.
  return 'completed';
}

function firstString(containers: Array<{ value: Record<string, unknown> }>, names: readonly string[]): string | null {
  for (const { value } of containers) {
    for (const name of names) {
      const v = value[name];
      if (typeof v === 'string' && v.trim() !== '') return v;
    }
  }
  return null;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:$|[T ])/;

function visitDateOf(containers: Array<{ base: string; value: Record<string, unknown> }>, warnings: string[]): string | null {
  for (const { base, value } of containers) {
    for (const name of ['visit_date', 'date_of_visit', 'date']) {
      const v = value[name];
      if (v === undefined || v === null || v === '') continue;
      const m = typeof v === 'string' ? DATE.exec(v.trim()) : null;
      const day = m ? `${m[1]}-${m[2]}-${m[3]}` : null;
      if (day !== null && parseTimestampUs(day) !== null) return day;
      warnings.push(`${at(base, name)} is not a date (YYYY-MM-DD): ${describe(v)}; visit_date left empty`);
      return null;
    }
  }
  return null;
}

function createdOf(doc: Record<string, unknown>, options: SubmissionReadOptions, warnings: string[]): number | null {
  // created_at came from utcnow(); `timestamp` from now(), the server's local time.
  if (doc.created_at !== undefined && doc.created_at !== null) {
    const us = parseTimestampUs(doc.created_at);
    if (us !== null) return us;
    warnings.push(`created_at is not a time: ${describe(doc.created_at)}`);
  }
  if (doc.timestamp !== undefined && doc.timestamp !== null) {
    const us = parseLocalTimestampUs(doc.timestamp, options.sourceTimezone);
    if (us !== null) return us;
    warnings.push(`timestamp is not a time: ${describe(doc.timestamp)}`);
  }
  if (options.fallbackUs === undefined) return null;
  warnings.push('no created_at or timestamp: the file time is used');
  return options.fallbackUs;
}

// ---------------------------------------------------------------------------
// Photos and signatures → file rows

const CLOUDINARY =
  /^https?:\/\/res\.cloudinary\.com\/[^/]+\/(?:image|raw|video)\/upload\/(?:[^/]*\/)*?(?:v\d+\/)?(.+?)(?:\.[A-Za-z0-9]+)?$/;

const isHttpUrl = (v: unknown): v is string => typeof v === 'string' && /^https?:\/\//i.test(v);

function publicIdOf(url: string): string | null {
  const m = CLOUDINARY.exec(url);
  return m ? decodeURIComponent(m[1]!) : null;
}

const typeOfField = (field: string, fallback: SubmissionFile['fileType']): SubmissionFile['fileType'] =>
  /sig/i.test(field) ? 'signature' : fallback;

/** A file entry as the app wrote it: `{field?, saved, path?, url, is_cloud?}`, `{path, index}`, or a bare URL. */
function fileOf(
  entry: unknown,
  place: string,
  fallbackField: string,
  fileType: SubmissionFile['fileType'],
  warnings: string[],
): SubmissionFile | null {
  if (typeof entry === 'string') {
    if (entry === '' || entry.startsWith('data:')) return null;
    return {
      field: fallbackField,
      url: entry,
      publicId: publicIdOf(entry),
      fileType,
      originalFilename: null,
      fileSize: null,
      isCloud: isHttpUrl(entry) && CLOUDINARY.test(entry),
    };
  }
  if (!isObject(entry)) {
    if (entry !== null && entry !== false && entry !== true)
      warnings.push(`${place}: expected a file entry, found ${describe(entry)}: no file row`);
    return null;
  }
  const url = [entry.url, entry.path, entry.saved].find((v) => typeof v === 'string' && v !== '') as string | undefined;
  if (url === undefined) {
    warnings.push(`${place}: file entry without url, path or saved name: no file row`);
    return null;
  }
  const field = typeof entry.field === 'string' && entry.field !== '' ? entry.field : fallbackField;
  const size = typeof entry.size === 'number' && Number.isInteger(entry.size) && entry.size >= 0 ? entry.size : null;
  return {
    field,
    url,
    publicId: typeof entry.public_id === 'string' ? entry.public_id : publicIdOf(url),
    fileType: typeOfField(field, fileType),
    originalFilename: typeof entry.saved === 'string' && entry.saved !== '' ? entry.saved : null,
    fileSize: size,
    isCloud: entry.is_cloud === true || CLOUDINARY.test(url),
  };
}

function listOf(value: unknown, place: string, warnings: string[]): unknown[] {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value;
  warnings.push(`${place} must be a list, found ${describe(value)}: its files are not rows`);
  return [];
}

/** Every photo and signature of the document, in document order. */
function collectFiles(containers: Array<{ base: string; value: Record<string, unknown> }>, warnings: string[]): SubmissionFile[] {
  const out: SubmissionFile[] = [];
  const entries = (list: unknown, place: string, fileType: SubmissionFile['fileType']) => {
    for (const [i, entry] of listOf(list, place, warnings).entries()) {
      const file = fileOf(entry, at(place, i), at(place, i), fileType, warnings);
      if (file) out.push(file);
    }
  };
  for (const { base, value } of containers) {
    entries(value.files, at(base, 'files'), 'photo');
    entries(value.photos, at(base, 'photos'), 'photo');
    for (const listName of ['items', 'work_items']) {
      for (const [i, item] of listOf(value[listName], at(base, listName), warnings).entries()) {
        const place = at(at(base, listName), i);
        if (isObject(item)) entries(item.photos, at(place, 'photos'), 'photo');
        else warnings.push(`${place} must be an object, found ${describe(item)}: its photos are not rows`);
      }
    }
    for (const key in value) {
      // Cheap suffix checks first: most keys are plain form fields.
      const lower = key.length > 9 ? key.slice(-14).toLowerCase() : '';
      if (lower === '' || !(lower.endsWith('_signature') || lower.endsWith('_signature_url') || key.startsWith('photo_url_'))) continue;
      const v = value[key];
      let file: SubmissionFile | null = null;
      if (/^photo_url_\d+$/.test(key) && isHttpUrl(v)) file = fileOf(v, at(base, key), key, 'photo', warnings);
      else if (lower.endsWith('_signature_url') && isHttpUrl(v)) file = fileOf(v, at(base, key), key, 'signature', warnings);
      else if (lower.endsWith('_signature') && (isObject(v) || isHttpUrl(v))) file = fileOf(v, at(base, key), key, 'signature', warnings);
      if (file) out.push(file);
    }
  }
  return out;
}

/** Every inline `data:` URL in the document (base64 signatures), with its place and size. */
function inlineBlobs(doc: unknown): InlineBlob[] {
  const out: InlineBlob[] = [];
  // The place is spelled out only for a hit: most values are short strings.
  const trail: Array<string | number> = [];
  const walk = (value: unknown) => {
    if (typeof value === 'string') {
      if (value.length > 5 && value.charCodeAt(0) === 0x64 /* d */ && value.startsWith('data:')) {
        out.push({ place: trail.reduce<string>((p, k) => at(p, k), ''), bytes: value.length });
      }
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        trail.push(i);
        walk(value[i]);
        trail.pop();
      }
    } else if (value !== null && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      for (const key in record) {
        trail.push(key);
        walk(record[key]);
        trail.pop();
      }
    }
  };
  walk(doc);
  return out;
}

// ---------------------------------------------------------------------------
// Writing: the app's own shape (the JSON backend)

export interface SubmissionToWrite {
  id: string;
  module: string;
  status: SubmissionStatus;
  formData: Record<string, unknown>;
}

/**
 * The document the app itself would have on disk for this submission: the
 * original `formData`, its id under the key the document already uses (`id`
 * when it has none), and `module`/`status` only where reading the document
 * back would not give them — so an untouched file is written back unchanged.
 */
export function writeSubmission(s: SubmissionToWrite): Record<string, unknown> {
  const doc: Record<string, unknown> = { ...s.formData };
  const idKey = 'id' in doc || !('submission_id' in doc) ? 'id' : 'submission_id';
  doc[idKey] = s.id;
  const back = readSubmission(doc, { fileKey: s.id, fallbackUs: 0 });
  if (!back.ok || back.row.module !== s.module) doc.module = s.module;
  if (!back.ok || back.row.status !== s.status || 'status' in doc) doc.status = s.status;
  return doc;
}
