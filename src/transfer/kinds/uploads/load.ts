import type { Database, TransactionSql } from '../../../db/database.ts';
import type { UploadEntryRow } from '../../../formats/uploads-store.ts';
import { jsonbText } from '../../canonical.ts';
import type { ObjectStore } from '../../files/object-store.ts';
import type { ProblemReport } from '../../report.ts';
import { type LinkedBytes, linkEntryObject } from './link.ts';
import { canonicalOf, hashUpload, readUploadsStoreFile } from './read.ts';

/** import_log.kind of upload store entries (and of its per-user rows, keyed `user:<key>`). */
export const UPLOAD_LOG_KIND = 'upload';
const BATCH = 500;

export interface UploadsImportOptions {
  db: Database;
  file: string;
  report: ProblemReport;
  dryRun?: boolean;
  /** The app's working directory: each entry's saved_path is looked up below it and linked into `objectsRoot`. */
  filesRoot?: string;
  /** The local object store (DATA_DIR/files) entries are linked into. */
  objects?: ObjectStore;
}

export interface UploadsImportSummary {
  entries: number;
  inserted: number;
  updated: number;
  unchanged: number;
  rejected: number;
  warnings: number;
  users: number;
  /** Entries with a saved_path whose bytes were found under --files-root, checked and linked. */
  linked: number;
  /** …and whose bytes were not there. */
  missingObjects: number;
  /** Entries with no object (empty saved_path: analysed documents). */
  withoutObject: number;
}

/**
 * Import seed 000's upload store into `uploads` (one row per entry, id from
 * formats/uploads-store.ts entryId) and `upload_user_standards`. Idempotent:
 * an entry whose hash import_log holds and whose row exists is left alone;
 * a changed entry updates only its source-derived columns (a row already
 * moved to S3 keeps its storage, key and checksum). Every entry is in the
 * database or in the report.
 */
export async function importUploadsStore(options: UploadsImportOptions): Promise<UploadsImportSummary> {
  const { db, report } = options;
  const source = await readUploadsStoreFile(options.file);
  const { content } = source;
  const summary: UploadsImportSummary = {
    entries: content.entries.length + content.problems.filter((p) => p.index !== null).length,
    inserted: 0,
    updated: 0,
    unchanged: 0,
    rejected: 0,
    warnings: 0,
    users: content.users.length,
    linked: 0,
    missingObjects: 0,
    withoutObject: 0,
  };
  for (const problem of content.problems) {
    summary.rejected += problem.index === null ? 0 : 1;
    report.add({
      kind: UPLOAD_LOG_KIND,
      file: source.label(problem.userKey, problem.index),
      record: problem.id,
      reason: problem.reason,
      severity: 'error',
    });
  }
  for (const warning of content.warnings) {
    summary.warnings++;
    report.add({
      kind: UPLOAD_LOG_KIND,
      file: source.label(warning.userKey, warning.index),
      record: warning.id,
      reason: warning.reason,
      severity: 'warning',
    });
  }

  for (let start = 0; start < content.entries.length; start += BATCH) {
    const batch = content.entries.slice(start, start + BATCH);
    const links = new Map<string, LinkedBytes>();
    for (const entry of batch) {
      if (entry.fileKey === null) {
        summary.withoutObject++;
        continue;
      }
      if (options.filesRoot === undefined || options.objects === undefined) continue;
      const linked = await linkEntryObject(entry, options.filesRoot, options.objects, options.dryRun === true);
      if (linked.ok) {
        links.set(entry.id, linked);
        summary.linked++;
        if (linked.warning) {
          summary.warnings++;
          report.add({
            kind: UPLOAD_LOG_KIND,
            file: source.label(entry.userKey, entry.index),
            record: entry.id,
            reason: linked.warning,
            severity: 'warning',
          });
        }
      } else {
        summary.missingObjects++;
        summary.warnings++;
        report.add({
          kind: UPLOAD_LOG_KIND,
          file: source.label(entry.userKey, entry.index),
          record: entry.id,
          reason: linked.reason,
          severity: 'warning',
        });
      }
    }
    const counts = await loadBatch(db, batch, links, source.label, options.dryRun === true);
    summary.inserted += counts.inserted;
    summary.updated += counts.updated;
    summary.unchanged += counts.unchanged;
  }
  if (!options.dryRun) await loadUserStandards(db, content.users, source.label);
  return summary;
}

async function loadBatch(
  db: Database,
  batch: readonly UploadEntryRow[],
  links: ReadonlyMap<string, LinkedBytes>,
  label: (userKey: string, index: number | null) => string,
  dryRun: boolean,
): Promise<{ inserted: number; updated: number; unchanged: number }> {
  const hashes = new Map(batch.map((entry) => [entry.id, hashUpload(canonicalOf(entry))]));
  const ids = batch.map((entry) => entry.id);
  const work = async (tx: TransactionSql) => {
    const known = await tx<{ id: string; logged: string | null; sha256: string | null }[]>`
      select u.id::text as id, l.content_hash as logged, u.sha256
        from uploads u left join import_log l on l.kind = ${UPLOAD_LOG_KIND} and l.record_key = u.id::text
       where u.id = any(${ids}::uuid[])`;
    const byId = new Map(known.map((row) => [row.id, row]));
    // Unchanged: same hash logged, row present, and nothing new to link.
    const changed = batch.filter((entry) => {
      const row = byId.get(entry.id);
      return !row || row.logged !== hashes.get(entry.id) || (links.has(entry.id) && row.sha256 === null);
    });
    const counts = {
      inserted: changed.filter((e) => !byId.has(e.id)).length,
      updated: changed.filter((e) => byId.has(e.id)).length,
      unchanged: batch.length - changed.length,
    };
    if (dryRun || changed.length === 0) return counts;
    await writeRows(tx, changed, links);
    await tx`
      insert into import_log (kind, record_key, source, content_hash, status)
      select ${UPLOAD_LOG_KIND}, k, s, h, st from unnest(
        ${changed.map((e) => e.id)}::text[], ${changed.map((e) => label(e.userKey, e.index))}::text[],
        ${changed.map((e) => hashes.get(e.id)!)}::text[], ${changed.map((e) => (byId.has(e.id) ? 'updated' : 'inserted'))}::text[]
      ) as t(k, s, h, st)
      on conflict (kind, record_key) do update set
        source = excluded.source, content_hash = excluded.content_hash, status = excluded.status, error = null, imported_at = now()`;
    return counts;
  };
  // A dry run reads in the same transaction and writes nothing.
  return db.transaction(dryRun ? 'import.uploads.compare' : 'import.uploads', work);
}

async function writeRows(tx: TransactionSql, rows: readonly UploadEntryRow[], links: ReadonlyMap<string, LinkedBytes>): Promise<void> {
  const col = <T>(pick: (r: UploadEntryRow) => T) => rows.map(pick);
  const linkOf = (r: UploadEntryRow) => links.get(r.id);
  await tx`
    insert into uploads (id, user_id, filename, original_filename, storage, file_key, file_size, sha256, fingerprint,
                         doc_type, standards_mapped, upload_type, metadata, uploaded_at)
    select id, user_id, filename, filename, storage, file_key, file_size, sha256, fingerprint,
           doc_type, standards::jsonb, 'document', metadata::jsonb, to_timestamp(at_us / 1e6)
      from unnest(
        ${col((r) => r.id)}::uuid[], ${col((r) => r.userKey)}::text[], ${col((r) => r.filename)}::text[],
        ${col((r) => storageOf(r, linkOf(r)))}::text[], ${col((r) => linkOf(r)?.key ?? r.fileKey)}::text[],
        ${col((r) => linkOf(r)?.size ?? r.size ?? 0)}::int8[],
        ${col((r) => linkOf(r)?.sha256 ?? null)}::text[], ${col((r) => r.fingerprint)}::text[], ${col((r) => r.docType)}::text[],
        ${col((r) => jsonbText(r.standardsMapped))}::text[], ${col((r) => jsonbText(r.metadata))}::text[],
        ${col((r) => r.uploadedAtUs)}::int8[]
      ) as t(id, user_id, filename, storage, file_key, file_size, sha256, fingerprint, doc_type, standards, metadata, at_us)
    on conflict (id) do update set
      user_id = excluded.user_id, filename = excluded.filename, original_filename = excluded.original_filename,
      fingerprint = excluded.fingerprint, doc_type = excluded.doc_type, standards_mapped = excluded.standards_mapped,
      metadata = excluded.metadata, uploaded_at = excluded.uploaded_at,
      -- Where the bytes are is the mover's business once known: only a row not yet linked takes the new link.
      storage = case when uploads.sha256 is null then excluded.storage else uploads.storage end,
      file_key = case when uploads.sha256 is null then excluded.file_key else uploads.file_key end,
      file_size = case when uploads.sha256 is null then excluded.file_size else uploads.file_size end,
      sha256 = coalesce(uploads.sha256, excluded.sha256)`;
}

/**
 * An entry whose bytes were linked lives in the local store; one with a
 * saved_path but no link names bytes outside pgferry's stores (the app's
 * directory): `external`, which moves and reconcile leave alone; one with no
 * saved_path has no object (file_key null).
 */
function storageOf(entry: UploadEntryRow, link: LinkedBytes | undefined): 'local' | 'external' {
  return link === undefined && entry.fileKey !== null ? 'external' : 'local';
}

async function loadUserStandards(
  db: Database,
  users: ReadonlyArray<{ userKey: string; uniqueStandards: unknown[] }>,
  label: (userKey: string, index: number | null) => string,
): Promise<void> {
  if (users.length === 0) return;
  await db.transaction(
    'import.uploads.standards',
    (tx) => tx`
      insert into upload_user_standards (user_id, unique_standards, source)
      select u, s::jsonb, src from unnest(
        ${users.map((u) => u.userKey)}::text[], ${users.map((u) => jsonbText(u.uniqueStandards))}::text[],
        ${users.map((u) => label(u.userKey, null))}::text[]) as t(u, s, src)
      on conflict (user_id) do update set unique_standards = excluded.unique_standards, source = excluded.source
        where upload_user_standards.unique_standards is distinct from excluded.unique_standards`,
  );
}
