import type { Database } from '../../../db/database.ts';
import { jsonbText } from '../../canonical.ts';
import type { ProblemReport } from '../../report.ts';
import { UPLOAD_LOG_KIND } from './load.ts';
import { canonicalOf, firstDifference, hashUpload, readUploadsStoreFile, type UploadCanonical } from './read.ts';

export interface UploadsVerifySummary {
  source: number;
  matched: number;
  missing: number;
  different: number;
  /** Rows imported from an upload store whose entry is no longer in it. */
  extra: number;
  /** Entries that cannot be checked (the ones import rejects). */
  unreadable: number;
  /** Users whose unique_standards differ or are missing. */
  standardsDifferent: number;
  ok: boolean;
}

/**
 * Compare every entry of the upload store with its row, by a hash of the
 * source-derived columns computed from the row itself (never from
 * import_log): an entry edited in the store since the import (an annotation,
 * a new trust score) is `different`, naming the first differing column.
 */
export async function verifyUploadsStore(options: { db: Database; file: string; report: ProblemReport }): Promise<UploadsVerifySummary> {
  const { db, report } = options;
  const source = await readUploadsStoreFile(options.file);
  const { entries, problems, users } = source.content;
  const summary: UploadsVerifySummary = {
    source: entries.length,
    matched: 0,
    missing: 0,
    different: 0,
    extra: 0,
    unreadable: problems.length,
    standardsDifferent: 0,
    ok: false,
  };
  const add = (problem: string, file: string | null, record: string | null, reason: string) =>
    report.add({ kind: UPLOAD_LOG_KIND, file, record, reason, severity: 'error', problem });
  // Entries import rejects (and reported) cannot be compared: listed, but they do not fail verify.
  for (const p of problems)
    report.add({
      kind: UPLOAD_LOG_KIND,
      file: source.label(p.userKey, p.index),
      record: p.id,
      reason: p.reason,
      severity: 'warning',
      problem: 'unreadable',
    });

  const rows = await db.run(
    'verify.uploads',
    (sql) => sql<
      {
        id: string;
        user_id: string;
        filename: string;
        fingerprint: string | null;
        doc_type: string | null;
        standards: string | null;
        metadata: string | null;
        at_us: number;
      }[]
    >`
      select id::text as id, user_id, filename, fingerprint, doc_type, standards_mapped::text as standards, metadata::text as metadata,
             (extract(epoch from uploaded_at) * 1000000)::int8 as at_us
        from uploads where metadata->>'source' = 'user_uploads_store' and status <> 'deleted'`,
    { idempotent: true },
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  for (const entry of entries) {
    const row = byId.get(entry.id);
    const where = source.label(entry.userKey, entry.index);
    if (!row) {
      summary.missing++;
      add('missing', where, entry.id, 'entry not in the database');
      continue;
    }
    byId.delete(entry.id);
    const expected = canonicalOf(entry);
    const actual: UploadCanonical = {
      id: row.id,
      userId: row.user_id,
      filename: row.filename,
      fingerprint: row.fingerprint,
      docType: row.doc_type,
      standardsMapped: row.standards ?? 'null',
      metadata: row.metadata ?? 'null',
      uploadedAtUs: row.at_us,
    };
    if (hashUpload(actual) === hashUpload(expected)) summary.matched++;
    else {
      summary.different++;
      add('different', where, entry.id, firstDifference(expected, actual));
    }
  }
  for (const id of byId.keys()) {
    summary.extra++;
    add('extra', null, id, 'row imported from an upload store has no entry in this one');
  }

  const standards = await db.run(
    'verify.uploads.standards',
    (sql) => sql<{ user_id: string; s: string }[]>`
      select user_id, unique_standards::text as s from upload_user_standards where user_id = any(${users.map((u) => u.userKey)}::text[])`,
    { idempotent: true },
  );
  const stored = new Map(standards.map((row) => [row.user_id, row.s]));
  for (const user of users) {
    if (stored.get(user.userKey) !== jsonbText(user.uniqueStandards)) {
      summary.standardsDifferent++;
      add(stored.has(user.userKey) ? 'different' : 'missing', source.label(user.userKey, null), user.userKey, 'unique_standards differ');
    }
  }
  summary.ok = summary.missing + summary.different + summary.extra + summary.standardsDifferent === 0;
  return summary;
}
