import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { UploadEntryRow } from '../../../formats/uploads-store.ts';
import type { ObjectStore } from '../../files/object-store.ts';

/**
 * `--files-root DIR`: an entry's saved_path is relative to the app's working
 * directory (REAL-FORMATS B). Its bytes are looked up there — never outside
 * it, whatever the path or a symlink says — checked against the entry's size
 * and hashed, then put into the local object store under a key pgferry
 * chooses, `uploads-store/<entry id>` (a saved_path holds an e-mail and the
 * user's filename; object keys never do; the saved_path stays in metadata). The
 * row gets the real size and sha256; a file that is not there is reported
 * and the row keeps no checksum (reconcile lists it as missing).
 */

export interface LinkedBytes {
  ok: true;
  /** The object's key in the local store. */
  key: string;
  size: number;
  sha256: string;
  warning?: string;
}
export type LinkedObject = LinkedBytes | { ok: false; reason: string };

/** The local object key of an entry's bytes: stable, so a re-run finds them. */
export const linkedKey = (entry: UploadEntryRow): string => `uploads-store/${entry.id}`;

export async function linkEntryObject(
  entry: UploadEntryRow,
  filesRoot: string,
  objects: ObjectStore,
  dryRun: boolean,
): Promise<LinkedObject> {
  const key = entry.fileKey!;
  const root = await realpath(filesRoot);
  let abs: string;
  try {
    abs = await realpath(path.resolve(root, key));
  } catch {
    return { ok: false, reason: `object missing: no file at saved_path under --files-root` };
  }
  if (abs !== root && !abs.startsWith(root + path.sep)) return { ok: false, reason: 'saved_path leads outside --files-root: not read' };
  const info = await stat(abs);
  if (!info.isFile()) return { ok: false, reason: 'object missing: saved_path is not a regular file' };
  const hash = createHash('sha256');
  await pipeline(createReadStream(abs), hash);
  const sha256 = hash.digest('hex');
  let warning: string | undefined;
  if (entry.size !== null && entry.size > 0 && entry.size !== info.size)
    warning = `size differs: the entry says ${entry.size} bytes, the file has ${info.size}; the file's size is recorded`;
  const objectKey = linkedKey(entry);
  if (!dryRun) {
    const existing = await objects.storage.head(objectKey);
    if (!existing || existing.size !== info.size || (existing.sha256 !== undefined && existing.sha256 !== sha256))
      await objects.storage.put(objectKey, createReadStream(abs), { expectedSize: info.size, expectedSha256: sha256 });
  }
  return { ok: true, key: objectKey, size: info.size, sha256, ...(warning ? { warning } : {}) };
}
