import type postgres from 'postgres';
import type { Sql } from '../../db/database.ts';
import { fromJsonb, toJsonb } from '../../domain/json-values.ts';
import type { NewUpload } from '../../domain/uploads.ts';
import type { Logger } from '../../log.ts';
import type { StoredUpload, UploadBackend, UploadFilter, UploadPatch } from '../core/uploads.ts';
import type { Clock } from '../types.ts';
import { nowParam, query, type SqlRunner } from './shared.ts';

/**
 * Uploads on PostgreSQL: the `uploads` table of migration 0001 (seed 004's
 * `user_uploads` is a view over it, 0002). One statement per operation;
 * a patch is one UPDATE … RETURNING guarded by owner and status, so a
 * concurrent delete and complete cannot both win.
 */

export interface PostgresUploadsOptions {
  db: SqlRunner;
  clock?: Clock;
  logger?: Logger;
}

interface UploadRow {
  id: string;
  user_id: string;
  filename: string;
  original_filename: string | null;
  storage: StoredUpload['storage'];
  bucket: string | null;
  file_key: string | null;
  url: string | null;
  content_type: string | null;
  file_size: string | number;
  sha256: string | null;
  fingerprint: string | null;
  doc_type: string | null;
  standards_mapped: unknown;
  upload_type: StoredUpload['uploadType'];
  is_public: boolean;
  status: StoredUpload['status'];
  metadata: Record<string, unknown> | null;
  uploaded_iso: string;
  expires_iso: string | null;
  created_iso: string;
  updated_iso: string;
  uploaded_key: string;
}

const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const COLUMNS = `id::text as id, user_id, filename, original_filename, storage, bucket, file_key, url, content_type, file_size,
  sha256, fingerprint, doc_type, standards_mapped, upload_type, is_public, status, metadata,
  ${iso('uploaded_at')} as uploaded_iso, ${iso('expires_at')} as expires_iso,
  ${iso('created_at')} as created_iso, ${iso('updated_at')} as updated_iso,
  to_char(uploaded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as uploaded_key`;

const jsonb = (sql: Sql, value: unknown) => sql.json((value === undefined || value === null ? null : toJsonb(value)) as postgres.JSONValue);

const toStored = (row: UploadRow): StoredUpload => ({
  id: row.id,
  userId: row.user_id,
  filename: row.filename,
  originalFilename: row.original_filename,
  storage: row.storage,
  bucket: row.bucket,
  key: row.file_key,
  url: row.url,
  contentType: row.content_type,
  size: Number(row.file_size),
  sha256: row.sha256,
  fingerprint: row.fingerprint,
  docType: row.doc_type,
  standardsMapped: row.standards_mapped === null ? null : fromJsonb(row.standards_mapped),
  uploadType: row.upload_type,
  isPublic: row.is_public,
  status: row.status,
  metadata: row.metadata === null ? null : (fromJsonb(row.metadata) as Record<string, unknown>),
  uploadedAt: row.uploaded_iso,
  expiresAt: row.expires_iso,
  createdAt: row.created_iso,
  updatedAt: row.updated_iso,
  uploadedKey: row.uploaded_key,
});

function filterSql(sql: Sql, filter: UploadFilter) {
  return sql`
    ${filter.docType === undefined ? sql`` : sql`and doc_type = ${filter.docType}`}
    ${filter.uploadType === undefined ? sql`` : sql`and upload_type = ${filter.uploadType}`}
    ${filter.since === undefined ? sql`` : sql`and uploaded_at >= ${filter.since}::text::timestamptz`}`;
}

export function createPostgresUploads(options: PostgresUploadsOptions): UploadBackend {
  const { db, clock } = options;
  return {
    async insert(userId, row: NewUpload) {
      const now = nowParam(clock);
      const [inserted] = await query(
        db,
        'uploads.record',
        (sql) => sql<UploadRow[]>`
        insert into uploads (id, user_id, filename, original_filename, storage, bucket, file_key, url, content_type,
                             file_size, sha256, fingerprint, doc_type, standards_mapped, upload_type, is_public, status,
                             metadata, uploaded_at, expires_at, created_at, updated_at)
        values (${row.id}::uuid, ${userId}, ${row.filename}, ${row.originalFilename}, ${row.storage}, ${row.bucket},
                ${row.key}, ${row.url}, ${row.contentType}, ${row.size}, ${row.sha256}, ${row.fingerprint}, ${row.docType},
                ${jsonb(sql, row.standardsMapped)}, ${row.uploadType}, ${row.isPublic}, ${row.status}, ${jsonb(sql, row.metadata)},
                coalesce(${row.uploadedAt}::text::timestamptz, ${now}::timestamptz, now()), ${row.expiresAt}::text::timestamptz,
                coalesce(${now}::timestamptz, now()), coalesce(${now}::timestamptz, now()))
        on conflict (id) do nothing
        returning ${sql.unsafe(COLUMNS)}`,
      );
      return inserted ? toStored(inserted) : undefined;
    },

    async read(userId, id) {
      const [row] = await query(
        db,
        'uploads.get',
        (sql) => sql<UploadRow[]>`
          select ${sql.unsafe(COLUMNS)} from uploads where id = ${id}::uuid and user_id = ${userId} and status <> 'deleted'`,
        { idempotent: true },
      );
      return row ? toStored(row) : undefined;
    },

    async listAfter(userId, filter, after, count) {
      const rows = await query(
        db,
        'uploads.list',
        (sql) => sql<UploadRow[]>`
          select ${sql.unsafe(COLUMNS)} from uploads
           where user_id = ${userId} and status = 'active' ${filterSql(sql, filter)}
           ${after === null ? sql`` : sql`and (uploaded_at, id) < (${after.updatedKey}::text::timestamptz, ${after.id}::uuid)`}
           order by uploaded_at desc, id desc
           limit ${count}`,
        { idempotent: true },
      );
      return rows.map(toStored);
    },

    async patch(userId, id, patch: UploadPatch, from) {
      const now = nowParam(clock);
      const [row] = await query(
        db,
        'uploads.patch',
        (sql) => sql<UploadRow[]>`
        update uploads set
          status = coalesce(${patch.status ?? null}::text, status),
          standards_mapped = ${patch.standardsMapped === undefined ? sql`standards_mapped` : jsonb(sql, patch.standardsMapped)},
          file_size = coalesce(${patch.size ?? null}::bigint, file_size),
          sha256 = coalesce(${patch.sha256 ?? null}::text, sha256),
          updated_at = coalesce(${now}::timestamptz, now())
         where id = ${id}::uuid and user_id = ${userId} and status in ${sql(from as string[])}
        returning ${sql.unsafe(COLUMNS)}`,
      );
      return row ? toStored(row) : undefined;
    },
  };
}
