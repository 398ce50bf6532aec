import { isValidRecordId } from '../../../domain/ids.ts';
import { type FormsSubmission, readSubmission, type SubmissionFile } from '../../../formats/forms-submission.ts';
import { hashCanonical, jsonbText } from '../../canonical.ts';
import { formsFileKey, jobModuleOf, scanFolder, scanTopLevelSubmissions } from '../../sources/forms.ts';
import { isStorableJson, UNSTORABLE } from '../../validate.ts';
import { linkJobs, submissionsWithoutJob } from '../jobs/link.ts';
import type { KindDescriptor, KindScan, PrepareContext, Prepared, PrepareInput } from '../types.ts';
import { pruneSubmissions, writeSubmissions } from './load.ts';
import { compareSubmissions, submissionKeys } from './verify.ts';

/**
 * The forms app's submissions (seed 002): one file per submission, loaded
 * into `submissions` (the whole document in form_data, the derived columns
 * beside it) and its photos and signatures into `uploaded_files`.
 *
 *   submissions/<id>.json, and sub_<hex>.json at the top of generated/ (sources/forms.ts)
 */
export const submissionsKind: KindDescriptor<SubmissionLoad> = {
  name: 'submissions',
  logKind: 'submission',
  keyLabel: 'submission id',
  folders: ['submissions'],
  module: import.meta.url,
  scan,
  fileKey: formsFileKey,
  isValidKey: isValidRecordId,
  prepare,
  load: { table: 'submissions', keyColumn: 'submission_id', write: writeSubmissions, prune: pruneSubmissions },
  afterLoad: async (db, { since }) => {
    await linkJobs(db);
    return submissionsWithoutJob(db, since);
  },
  verify: { compare: compareSubmissions, databaseKeys: submissionKeys },
};

/** The derived columns, as canonical text and as written. */
export interface SubmissionHead {
  submission_id: string;
  module: string;
  user_id: string | null;
  status: string;
  site_name: string | null;
  visit_date: string | null;
  created_at: number;
  submitted_by_ip: string | null;
}

/** A file row as canonical text and as written (uploaded_files columns). */
export interface FileRow {
  field: string;
  url: string;
  public_id: string | null;
  file_type: string;
  original_filename: string | null;
  file_size: number | null;
  is_cloud: boolean;
}

/** A submission ready to write (plain data: it crosses from reader threads). */
export interface SubmissionLoad {
  key: string;
  file: string;
  hash: string;
  head: SubmissionHead;
  /** form_data in jsonb's text form (canonical.ts jsonbText): what is sent and what the server prints back. */
  formData: string;
  files: FileRow[];
}

async function scan(walk: KindScan): Promise<void> {
  await scanFolder(walk, 'submissions');
  await scanTopLevelSubmissions(walk);
}

export function headOf(row: FormsSubmission): SubmissionHead {
  return {
    submission_id: row.id,
    module: row.module,
    user_id: row.userId,
    status: row.status,
    site_name: row.siteName,
    visit_date: row.visitDate,
    created_at: row.createdUs,
    submitted_by_ip: row.submittedByIp,
  };
}

export const fileRowOf = (f: SubmissionFile): FileRow => ({
  field: f.field,
  url: f.url,
  public_id: f.publicId,
  file_type: f.fileType,
  original_filename: f.originalFilename,
  file_size: f.fileSize,
  is_cloud: f.isCloud,
});

/**
 * The canonical text of a submission: its columns, its form_data as jsonb
 * prints it, and its file rows in order. Built the same way from the
 * database rows (verify.ts), so a changed form_data field, a file row added
 * or removed, or a changed column all change the hash.
 */
export const canonicalSubmission = (head: SubmissionHead, formData: string, files: readonly FileRow[]): string =>
  `${jsonbText(head)}\n${formData}\n${jsonbText(files)}`;

function prepare({ file, document, mtimeMs, key }: PrepareInput, context: PrepareContext): Prepared<SubmissionLoad> {
  const forms = context.settings.forms ?? {};
  const fileKey = key ?? formsFileKey(file);
  const options = {
    fileKey,
    sourceTimezone: forms.sourceTimezone,
    module: forms.module,
    inlineWarnBytes: forms.inlineWarnBytes,
    fallbackUs: Math.round(mtimeMs * 1000),
  };
  let result = readSubmission(document, options);
  // No module in the document and no layout rule: its job's meta.module, if a job names it.
  if (result.ok && (result.row.moduleSource === 'option' || result.row.moduleSource === 'unknown') && context.settings.sourceRoot) {
    const jobModule = jobModuleOf(context.settings.sourceRoot, result.row.id);
    if (jobModule !== undefined) result = readSubmission(document, { ...options, jobModule });
  }
  if (!result.ok) return result;
  const head = headOf(result.row);
  const formData = jsonbText(result.row.formData);
  const files = result.row.files.map(fileRowOf);
  const text = canonicalSubmission(head, formData, files);
  if (!isStorableJson(text)) return { ok: false, key: result.key, reason: UNSTORABLE, warnings: result.warnings };
  return {
    ok: true,
    record: { key: head.submission_id, file: file.rel, hash: hashCanonical(text), head, formData, files },
    warnings: result.warnings,
  };
}
