import type { NewUpload } from '../../domain/uploads.ts';
import { compareListKeys } from '../core/cursors.ts';
import type { StoredUpload, UploadBackend, UploadFilter } from '../core/uploads.ts';
import type { JsonContext } from './context.ts';
import { readJsonFile, update } from './files.ts';

/**
 * Uploads on JSON files: one file per user, `DATA_DIR/uploads/<userId>.json`
 * = `{"uploads": [row, …]}` — not seed 000's single user_uploads_store.json,
 * which every upload rewrote whole for everyone. Each change is a locked
 * read-modify-write with an atomic replace (files.ts `update`). Ids are
 * globally unique (UUIDs), so "taken" is checked in the user's file only.
 */

interface UploadsFile {
  uploads: StoredUpload[];
}

const fileOf = (ctx: JsonContext, userId: string) => ctx.pathIn('uploads', `${userId}.json`);

function rowsOf(value: unknown): StoredUpload[] {
  const rows = (value as UploadsFile | undefined)?.uploads;
  return Array.isArray(rows) ? rows : [];
}

/** The clock's instant at microsecond keyset precision (a JSON timestamp has milliseconds). */
const keyOf = (iso: string) => `${iso.slice(0, 23)}000Z`;

function matches(row: StoredUpload, filter: UploadFilter): boolean {
  if (row.status !== 'active') return false;
  if (filter.docType !== undefined && row.docType !== filter.docType) return false;
  if (filter.uploadType !== undefined && row.uploadType !== filter.uploadType) return false;
  if (filter.since !== undefined && row.uploadedAt < filter.since) return false;
  return true;
}

export function createJsonUploads(ctx: JsonContext): UploadBackend {
  return {
    insert(userId, row: NewUpload) {
      return ctx.track(() =>
        update(
          fileOf(ctx, userId),
          (current) => {
            const rows = rowsOf(current);
            if (rows.some((r) => r.id === row.id)) return { result: undefined };
            const now = ctx.clock().toISOString();
            const uploadedAt = row.uploadedAt ?? now;
            const stored: StoredUpload = { ...row, userId, uploadedAt, createdAt: now, updatedAt: now, uploadedKey: keyOf(uploadedAt) };
            return { next: { uploads: [...rows, stored] }, result: stored, modifiedAt: new Date(now) };
          },
          ctx.lock,
        ),
      );
    },
    read(userId, id) {
      return ctx.track(async () => rowsOf(await readJsonFile(fileOf(ctx, userId))).find((r) => r.id === id && r.status !== 'deleted'));
    },
    listAfter(userId, filter, after, count) {
      return ctx.track(async () => {
        const rows = rowsOf(await readJsonFile(fileOf(ctx, userId)))
          .filter((row) => matches(row, filter))
          .map((row) => ({ row, key: { updatedKey: row.uploadedKey, id: row.id } }))
          .filter(({ key }) => after === null || compareListKeys(key, after) > 0)
          .sort((a, b) => compareListKeys(a.key, b.key));
        return rows.slice(0, count).map(({ row }) => row);
      });
    },
    patch(userId, id, patch, from) {
      return ctx.track(() =>
        update(
          fileOf(ctx, userId),
          (current) => {
            const rows = rowsOf(current);
            const index = rows.findIndex((r) => r.id === id && from.includes(r.status));
            const before = rows[index];
            if (!before) return { result: undefined };
            const now = ctx.clock().toISOString();
            const after: StoredUpload = { ...before, ...patch, updatedAt: now };
            const next = rows.slice();
            next[index] = after;
            return { next: { uploads: next }, result: after, modifiedAt: new Date(now) };
          },
          ctx.lock,
        ),
      );
    },
  };
}
