import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { PgFerryError } from '../../../errors.ts';
import { readUploadsStore, type UploadEntryRow, type UploadsStoreContent, UploadsStoreShapeError } from '../../../formats/uploads-store.ts';
import { hashCanonical, jsonbText } from '../../canonical.ts';
import { parseDocument } from '../../validate.ts';

/**
 * Reading seed 000's upload store for import and verify: the whole file (it
 * holds at most 50 entries per user and is rewritten whole by the app, so it
 * is small), parsed with numbers kept exactly, then formats/uploads-store.ts.
 * A file that cannot be read or parsed stops the run with a clear error —
 * the app's own reader returned {} here and so emptied every user's list.
 */

export interface UploadsStoreSource {
  file: string;
  /** What import_log.source and reports call an entry: `<file name>#<user key>[<index>]`. */
  label: (userKey: string, index: number | null) => string;
  content: UploadsStoreContent;
}

export async function readUploadsStoreFile(file: string): Promise<UploadsStoreSource> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new PgFerryError('CONFIG_ERROR', `--uploads-store ${file}: cannot read (${code})`, { file });
  }
  const parsed = parseDocument(text);
  if (!parsed.ok) throw new PgFerryError('CORRUPT_DATA', `--uploads-store ${file}: ${parsed.reason}; nothing imported`, { file });
  let content: UploadsStoreContent;
  try {
    content = readUploadsStore(parsed.value);
  } catch (error) {
    if (error instanceof UploadsStoreShapeError)
      throw new PgFerryError('CORRUPT_DATA', `--uploads-store ${file}: ${error.message}; nothing imported`, { file });
    throw error;
  }
  const name = path.basename(file);
  return { file, label: (userKey, index) => `${name}#${userKey}${index === null ? '' : `[${index}]`}`, content };
}

/**
 * The row's source-derived columns as the database prints them. What the
 * bytes' location adds later (storage, file_key, url, sha256, file_size) is
 * not part of it: a move or a link must not make verify see a changed entry.
 */
export interface UploadCanonical {
  id: string;
  userId: string;
  filename: string;
  fingerprint: string | null;
  docType: string | null;
  /** jsonb text */
  standardsMapped: string;
  /** jsonb text */
  metadata: string;
  uploadedAtUs: number;
}

export function canonicalOf(entry: UploadEntryRow): UploadCanonical {
  return {
    id: entry.id,
    userId: entry.userKey,
    filename: entry.filename,
    fingerprint: entry.fingerprint,
    docType: entry.docType,
    standardsMapped: jsonbText(entry.standardsMapped),
    metadata: jsonbText(entry.metadata),
    uploadedAtUs: entry.uploadedAtUs,
  };
}

export function hashUpload(c: UploadCanonical): string {
  return hashCanonical(
    JSON.stringify([c.id, c.userId, c.filename, c.fingerprint, c.docType, c.standardsMapped, c.metadata, c.uploadedAtUs]),
  );
}

/** The first field that differs between the source's and the database's canonical forms. */
export function firstDifference(source: UploadCanonical, database: UploadCanonical): string {
  for (const key of Object.keys(source) as Array<keyof UploadCanonical>) {
    if (source[key] !== database[key]) return `${key} differs`;
  }
  return 'content differs';
}
