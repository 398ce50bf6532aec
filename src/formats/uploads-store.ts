import { createHash } from 'node:crypto';
import { numberValue } from './json-text.ts';
import { parseTimestampUs } from './timestamps.ts';
import { describe, isObject } from './validated.ts';

/**
 * Seed 000's upload store, `user_uploads_store.json` (REAL-FORMATS.md B), read
 * into one row per document entry. Pure: the caller parses the file (with
 * formats/json-text.ts, so numbers keep their digits) and hands the value in.
 *
 *   { "<user key>": { "documents": [entry, …], "unique_standards": [...] }, … }
 *
 * User keys are e-mails, token subjects (UUIDs) or "unknown", raw. Four
 * generations of entries coexist in one list (nothing rewrote old ones):
 *   D1 filename, uploaded_at, standards_mapped, doc_type
 *   D2 + mappings
 *   D3 + trust_score, saved_path, fingerprint
 *   D4 + size
 * The analysis paths write `saved_path: ""` and `size: 0`: such an entry has
 * no object (no key), which is kept as such — never a colliding key.
 * Fingerprints are 16 hex digits of a sha256 (of the bytes or of the
 * extracted text), collide across users and entries, and may be "": they are
 * kept as they are and never used as an identity.
 */

export type UploadGeneration = 'D1' | 'D2' | 'D3' | 'D4';

export interface UploadEntryRow {
  /** Stable id: derived from the user key, filename, uploaded_at and occurrence (see `entryId`). */
  id: string;
  userKey: string;
  /** Position in the user's documents list (for messages only: the list is trimmed to 50 by the app, so it shifts). */
  index: number;
  generation: UploadGeneration;
  filename: string;
  /** `uploaded_at` in epoch microseconds (naive UTC as written by utcnow()). */
  uploadedAtUs: number;
  docType: string | null;
  standardsMapped: unknown[];
  /** As written: 16 hex digits, "" or null when absent. */
  fingerprint: string | null;
  /** The object's key (saved_path); null when there is no object ("" or absent). */
  fileKey: string | null;
  /** `size` when present (D4), else null (the app fell back to the file on disk). */
  size: number | null;
  /**
   * Everything else the entry holds, kept whole: mappings and trust_score,
   * the raw saved_path and uploaded_at text, unknown keys under `extra`.
   */
  metadata: Record<string, unknown>;
}

export interface UploadsStoreUser {
  userKey: string;
  uniqueStandards: unknown[];
  documents: number;
}

/** An entry (or a user's whole value) that cannot be imported, and why. */
export interface UploadsStoreProblem {
  userKey: string;
  /** Index in the user's documents list; null when the problem is the user's value. */
  index: number | null;
  /** The entry's id when it could be derived. */
  id: string | null;
  reason: string;
}

export interface UploadsStoreContent {
  users: UploadsStoreUser[];
  entries: UploadEntryRow[];
  problems: UploadsStoreProblem[];
  /** Entries read with something repaired or worth knowing (e.g. unknown keys kept). */
  warnings: UploadsStoreProblem[];
}

const KNOWN_ENTRY_KEYS = new Set([
  'filename',
  'uploaded_at',
  'standards_mapped',
  'doc_type',
  'mappings',
  'trust_score',
  'saved_path',
  'fingerprint',
  'size',
]);

/** The store's top level is not an object: nothing can be read (the seed's reader silently returned {} here). */
export class UploadsStoreShapeError extends Error {}

/** A parsed upload store → its users, one row per readable entry, and every entry that is not. */
export function readUploadsStore(value: unknown): UploadsStoreContent {
  if (!isObject(value)) throw new UploadsStoreShapeError(`expected a JSON object keyed by user, found ${describe(value)}`);
  const content: UploadsStoreContent = { users: [], entries: [], problems: [], warnings: [] };
  for (const [userKey, userValue] of Object.entries(value)) readUser(userKey, userValue, content);
  return content;
}

function readUser(userKey: string, value: unknown, content: UploadsStoreContent): void {
  const reason = userProblem(userKey, value);
  if (reason !== null || !isObject(value)) {
    content.problems.push({ userKey, index: null, id: null, reason: reason ?? 'not an object' });
    return;
  }
  const documents = (value.documents ?? []) as unknown[];
  const uniqueStandards = (value.unique_standards ?? []) as unknown[];
  content.users.push({ userKey, uniqueStandards, documents: documents.length });

  // Occurrences of (filename, uploaded_at) so far: the same upload recorded twice still gets two ids.
  const seen = new Map<string, number>();
  documents.forEach((entry: unknown, index: number) => {
    const result = readEntry(userKey, index, entry, seen);
    if ('reason' in result) content.problems.push(result);
    else {
      content.entries.push(result.row);
      for (const reason of result.warnings) content.warnings.push({ userKey, index, id: result.row.id, reason });
    }
  });
}

/** Why a user's whole value cannot be read, or null. */
function userProblem(userKey: string, value: unknown): string | null {
  if (userKey === '') return 'empty user key: its documents have no owner';
  if (!isObject(value)) return `expected {documents, unique_standards}, found ${describe(value)}`;
  const documents = value.documents ?? [];
  if (!Array.isArray(documents)) return `documents: expected a list, found ${describe(documents)}`;
  const uniqueStandards = value.unique_standards ?? [];
  if (!Array.isArray(uniqueStandards)) return `unique_standards: expected a list, found ${describe(uniqueStandards)}`;
  return null;
}

function readEntry(
  userKey: string,
  index: number,
  entry: unknown,
  seen: Map<string, number>,
): { row: UploadEntryRow; warnings: string[] } | UploadsStoreProblem {
  const reject = (reason: string): UploadsStoreProblem => ({ userKey, index, id: null, reason });
  if (!isObject(entry)) return reject(`expected a document entry (an object), found ${describe(entry)}`);
  const warnings: string[] = [];
  if (typeof entry.filename !== 'string' || entry.filename === '')
    return reject(`filename: expected a non-empty string, found ${describe(entry.filename)}`);
  const filename = entry.filename;
  const uploadedAtUs = parseTimestampUs(entry.uploaded_at);
  if (typeof entry.uploaded_at !== 'string' || uploadedAtUs === null)
    return reject(`uploaded_at: expected an ISO timestamp, found ${describe(entry.uploaded_at)}`);

  const identity = `${filename}\n${entry.uploaded_at}`;
  const occurrence = seen.get(identity) ?? 0;
  seen.set(identity, occurrence + 1);
  const id = entryId(userKey, filename, entry.uploaded_at, occurrence);
  const fail = (reason: string): UploadsStoreProblem => ({ userKey, index, id, reason });

  const standards = entry.standards_mapped ?? [];
  if (!Array.isArray(standards)) return fail(`standards_mapped: expected a list, found ${describe(standards)}`);
  const docType = entry.doc_type ?? null;
  if (docType !== null && typeof docType !== 'string') return fail(`doc_type: expected a string, found ${describe(docType)}`);
  const fingerprint = entry.fingerprint ?? null;
  if (fingerprint !== null && typeof fingerprint !== 'string')
    return fail(`fingerprint: expected a string, found ${describe(fingerprint)}`);
  const savedPath = entry.saved_path ?? null;
  if (savedPath !== null && typeof savedPath !== 'string') return fail(`saved_path: expected a string, found ${describe(savedPath)}`);
  let size: number | null = null;
  if (entry.size !== undefined && entry.size !== null) {
    const n = numberValue(entry.size);
    if (n === undefined || !Number.isSafeInteger(n) || n < 0)
      return fail(`size: expected a whole number of bytes, found ${describe(entry.size)}`);
    size = n;
  }
  const fileKey = savedPath === null || savedPath === '' ? null : savedPath;
  if (fileKey !== null) {
    const unsafe = unsafeKeyReason(fileKey);
    if (unsafe) warnings.push(`saved_path ${unsafe}: kept as metadata only, never used as a path`);
  }

  const metadata: Record<string, unknown> = {
    source: 'user_uploads_store',
    generation: generationOf(entry),
    uploaded_at: entry.uploaded_at,
  };
  if ('mappings' in entry) metadata.mappings = entry.mappings;
  if ('trust_score' in entry) metadata.trust_score = entry.trust_score;
  if ('saved_path' in entry) metadata.saved_path = entry.saved_path;
  if ('size' in entry) metadata.size = entry.size;
  const extra = Object.fromEntries(Object.entries(entry).filter(([key]) => !KNOWN_ENTRY_KEYS.has(key)));
  if (Object.keys(extra).length > 0) {
    metadata.extra = extra;
    warnings.push(`unknown keys ${Object.keys(extra).join(', ')}: kept in metadata.extra`);
  }
  return {
    row: {
      id,
      userKey,
      index,
      generation: generationOf(entry),
      filename,
      uploadedAtUs,
      docType,
      standardsMapped: standards,
      fingerprint,
      fileKey: fileKey !== null && unsafeKeyReason(fileKey) ? null : fileKey,
      size,
      metadata,
    },
    warnings,
  };
}

/** The newest generation whose keys the entry has (REAL-FORMATS B's table). */
export function generationOf(entry: Record<string, unknown>): UploadGeneration {
  if ('size' in entry) return 'D4';
  if ('trust_score' in entry || 'saved_path' in entry || 'fingerprint' in entry) return 'D3';
  if ('mappings' in entry) return 'D2';
  return 'D1';
}

/**
 * An entry's id, a UUID derived from what identifies the upload: its user,
 * filename and uploaded_at text, plus its occurrence among entries with those
 * three (the same upload recorded twice). Not the list position — the app
 * trims each list to its last 50 entries, which shifts every position — and
 * not the fingerprint, which collides. An annotation (which edits mappings)
 * keeps the id, so a re-import updates the row instead of adding one.
 */
export function entryId(userKey: string, filename: string, uploadedAt: string, occurrence: number): string {
  const hex = createHash('sha256').update(`pgferry-upload-store\n${userKey}\n${filename}\n${uploadedAt}\n${occurrence}`).digest('hex');
  // RFC 4122 layout, version 5 style (name-based) and variant bits set.
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * Why an object key may not be used under a storage root, or null when it may:
 * relative, `/`-separated segments, no `.`/`..`, no NUL or control characters,
 * at most 1024 bytes (S3's limit).
 */
export function unsafeKeyReason(key: string): string | null {
  if (key === '') return 'is empty';
  if (Buffer.byteLength(key) > 1024) return 'is longer than 1024 bytes';
  if (/[\u0000-\u001f\u007f\\]/.test(key)) return 'holds a control character or a backslash';
  if (key.startsWith('/')) return 'is an absolute path';
  if (key.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) return 'has an empty, "." or ".." segment';
  return null;
}
