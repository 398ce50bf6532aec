/**
 * The `uploads` transfer kind: seed 000's upload store (`user_uploads_store.json`,
 * REAL-FORMATS.md B) into `uploads` and `upload_user_standards`.
 *
 * Unlike the kinds in kinds/index.ts, whose records are one JSON file each
 * below `--from`, this source is one file holding every user's entries
 * (`--uploads-store FILE`, default USER_UPLOADS_STORE). It keeps the
 * engine's contracts — import_log per entry with a canonical content hash,
 * idempotent re-runs, every entry imported or reported, verify by hashing
 * the rows — with its own small driver rather than the per-file scanner.
 */
export { importUploadsStore, UPLOAD_LOG_KIND, type UploadsImportOptions, type UploadsImportSummary } from './load.ts';
export { type UploadsVerifySummary, verifyUploadsStore } from './verify.ts';
export const uploadsKindName = 'uploads';
