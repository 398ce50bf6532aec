import { assertCleanInput } from '../../domain/clean-input.ts';
import { clampLimit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, type Page } from '../../domain/conversations.ts';
import { newId, validateUserId } from '../../domain/ids.ts';
import {
  type NewUpload,
  UPLOAD_TYPES,
  type Upload,
  type UploadInput,
  type UploadListOptions,
  type UploadStatus,
  type UploadType,
  validateUploadId,
  validateUploadInput,
} from '../../domain/uploads.ts';
import { invalidInput, notFound, PgFerryError } from '../../errors.ts';
import { decodeListCursor, encodeListCursor, type ListKey } from './cursors.ts';

/**
 * The uploads repository, once for every backend (DESIGN section 3):
 * metadata only — the bytes are in object storage (src/objects), put there
 * before `record` and removed after `delete` by src/uploads/service.ts.
 * Deleted rows are kept, marked, and never returned.
 */

export interface UploadRepository {
  /** Store a new row (CONFLICT when the id exists, for anyone). */
  record(userId: string, input: UploadInput): Promise<Upload>;
  /** The user's upload (active or pending); NOT_FOUND when absent, deleted or someone else's. */
  get(userId: string, id: string): Promise<Upload>;
  /** The user's active uploads, newest first; keyset pagination on (uploadedAt, id). */
  list(userId: string, options?: UploadListOptions): Promise<Page<Upload>>;
  /** Mark the row deleted and return it (status `deleted`, key kept), so the caller removes the bytes after this commit. */
  delete(userId: string, id: string): Promise<Upload>;
  /** Seed 000's `standards_mapped`. */
  setStandards(userId: string, id: string, standardsMapped: unknown): Promise<Upload>;
  /** A pending (presigned) upload whose bytes were checked: set size and sha256, make it active. NOT_FOUND unless pending. */
  complete(userId: string, id: string, checked: { size: number; sha256: string }): Promise<Upload>;
}

/** A row as a backend returns it: with the microsecond keyset of its position in list(). */
export interface StoredUpload extends Upload {
  uploadedKey: string;
}

export interface UploadFilter {
  docType?: string;
  uploadType?: UploadType;
  /** ISO instant: rows at or after it. */
  since?: string;
}

export interface UploadPatch {
  status?: UploadStatus;
  standardsMapped?: unknown;
  size?: number;
  sha256?: string;
}

export interface UploadBackend {
  /** Undefined when the id is taken. */
  insert(userId: string, row: NewUpload): Promise<StoredUpload | undefined>;
  /** The user's row unless deleted. */
  read(userId: string, id: string): Promise<StoredUpload | undefined>;
  /** Up to `count` active rows strictly after `after` in (uploadedKey desc, id desc) order. */
  listAfter(userId: string, filter: UploadFilter, after: ListKey | null, count: number): Promise<StoredUpload[]>;
  /** Apply `patch` to the user's row when its status is one of `from`; the row after it, or undefined. */
  patch(userId: string, id: string, patch: UploadPatch, from: readonly UploadStatus[]): Promise<StoredUpload | undefined>;
}

const strip = ({ uploadedKey: _key, ...upload }: StoredUpload): Upload => upload;

function validateFilter(options: UploadListOptions): UploadFilter {
  const filter: UploadFilter = {};
  if (options.docType !== undefined) {
    if (typeof options.docType !== 'string' || options.docType.length > 100) throw invalidInput('invalid docType', { field: 'docType' });
    assertCleanInput(options.docType, 'docType');
    filter.docType = options.docType;
  }
  if (options.uploadType !== undefined) {
    if (!UPLOAD_TYPES.includes(options.uploadType))
      throw invalidInput(`invalid uploadType (one of ${UPLOAD_TYPES.join(', ')})`, { field: 'uploadType' });
    filter.uploadType = options.uploadType;
  }
  if (options.since !== undefined) {
    const time = options.since instanceof Date ? options.since.getTime() : Date.parse(String(options.since));
    if (Number.isNaN(time) || time < Date.UTC(1, 0, 1) || time > Date.UTC(9999, 11, 31)) {
      throw invalidInput('invalid since: expected an ISO 8601 instant', { field: 'since' });
    }
    filter.since = new Date(time).toISOString();
  }
  return filter;
}

export function createUploadRepository(backend: UploadBackend): UploadRepository {
  const found = (id: string, row: StoredUpload | undefined): Upload => {
    if (!row) throw notFound('upload', id);
    return strip(row);
  };
  return {
    async record(userId, input) {
      validateUserId(userId);
      const row = validateUploadInput(input, newId);
      const stored = await backend.insert(userId, row);
      if (!stored) throw new PgFerryError('CONFLICT', `upload ${JSON.stringify(row.id)} already exists`);
      return strip(stored);
    },
    async get(userId, id) {
      validateUserId(userId);
      validateUploadId(id);
      return found(id, await backend.read(userId, id));
    },
    async list(userId, options = {}) {
      validateUserId(userId);
      const filter = validateFilter(options);
      const limit = clampLimit(options.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT);
      const after = options.cursor === undefined ? null : decodeListCursor(options.cursor);
      const rows = await backend.listAfter(userId, filter, after, limit + 1);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(strip),
        nextCursor: rows.length > limit && last ? encodeListCursor({ updatedKey: last.uploadedKey, id: last.id }) : null,
      };
    },
    async delete(userId, id) {
      validateUserId(userId);
      validateUploadId(id);
      const changed = await backend.patch(userId, id, { status: 'deleted' }, ['active', 'pending', 'failed']);
      return found(id, changed);
    },
    async setStandards(userId, id, standardsMapped) {
      validateUserId(userId);
      validateUploadId(id);
      assertCleanInput(standardsMapped ?? null, 'standardsMapped');
      const changed = await backend.patch(userId, id, { standardsMapped: standardsMapped ?? null }, ['active', 'pending']);
      return found(id, changed);
    },
    async complete(userId, id, checked) {
      validateUserId(userId);
      validateUploadId(id);
      if (!Number.isSafeInteger(checked.size) || checked.size < 0 || !/^[0-9a-f]{64}$/.test(checked.sha256)) {
        throw invalidInput('invalid completion: size and sha256 expected');
      }
      const changed = await backend.patch(userId, id, { status: 'active', size: checked.size, sha256: checked.sha256 }, ['pending']);
      return found(id, changed);
    },
  };
}
