import { randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { type FileHandle, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PgFerryError } from '../errors.ts';
import { ensureDir, removeFile, syncDir } from '../store/json/files.ts';
import { errorCode, ioError } from '../store/json/locks.ts';
import { checkExpected, DigestStream } from './digest.ts';
import {
  type ListedObject,
  type ObjectHead,
  type ObjectStorage,
  type PutOptions,
  type StoredObject,
  validateObjectKey,
  validateObjectPrefix,
} from './types.ts';

/**
 * Objects as files under `<DATA_DIR>/files/<key>`, written with the JSON
 * backend's rules (DESIGN section 4): a unique temp file in the target
 * directory → stream → fsync → rename → fsync the directory. A reader sees
 * the whole object or none; a crash leaves only a `.…tmp` file, which `list`
 * ignores and removeStaleTempFiles clears. Keys are validated before they
 * touch a path (no '..', no leading '.', no absolute paths).
 */
export class LocalObjectStorage implements ObjectStorage {
  readonly name = 'local' as const;
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** `DATA_DIR/files`, the default root. */
  static forDataDir(dataDir: string): LocalObjectStorage {
    return new LocalObjectStorage(path.join(dataDir, 'files'));
  }

  pathOf(key: string): string {
    const full = path.join(this.root, validateObjectKey(key));
    // Belt and braces: the key pattern already rules out escapes.
    if (!full.startsWith(this.root + path.sep)) throw new PgFerryError('INVALID_INPUT', 'object key escapes the storage root');
    return full;
  }

  async put(key: string, body: Readable | AsyncIterable<Uint8Array>, options: PutOptions = {}): Promise<StoredObject> {
    const target = this.pathOf(key);
    const dir = path.dirname(target);
    await ensureDir(dir);
    const temp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    const digest = new DigestStream(options.maxBytes);
    let stored: StoredObject;
    try {
      // flush: fsync before the stream closes, so the rename below publishes durable bytes.
      await pipeline(body, digest, createWriteStream(temp, { flags: 'wx', mode: 0o644, flush: true }));
      stored = { key, size: digest.bytesSeen, sha256: digest.sha256() };
      checkExpected(stored, options);
      await rename(temp, target);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      if (error instanceof PgFerryError) throw error;
      throw ioError('write', target, error);
    }
    await syncDir(dir);
    return stored;
  }

  async get(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    // Opened first so an absent object is NOT_FOUND here, not an error event mid-response.
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') throw missing(key);
      throw ioError('read', file, error);
    }
    return handle.createReadStream(); // closes the handle when it ends or is destroyed
  }

  async head(key: string): Promise<ObjectHead | undefined> {
    const file = this.pathOf(key);
    try {
      const info = await stat(file);
      return info.isFile() ? { size: info.size, modifiedAt: info.mtime } : undefined;
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return undefined;
      throw ioError('stat', file, error);
    }
  }

  async delete(key: string): Promise<void> {
    await removeFile(this.pathOf(key));
  }

  async *list(prefix = ''): AsyncIterable<ListedObject> {
    validateObjectPrefix(prefix);
    // Walk only the directory the prefix names fully; filter the rest by string.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    for await (const object of this.#walk(base)) {
      if (object.key.startsWith(prefix)) yield object;
    }
  }

  async *#walk(relativeDir: string): AsyncIterable<ListedObject> {
    const dir = relativeDir === '' ? this.root : path.join(this.root, relativeDir);
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR') return;
      throw ioError('list', dir, error);
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue; // temp files and anything hidden are not objects
      const key = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      if (entry.isDirectory()) yield* this.#walk(key);
      else if (entry.isFile()) {
        const info = await stat(path.join(dir, entry.name)).catch(() => undefined);
        if (info) yield { key, size: info.size, modifiedAt: info.mtime };
      }
    }
  }

  async presignGet(): Promise<string | undefined> {
    return undefined; // served through the API
  }

  async presignPut(): Promise<string | undefined> {
    return undefined; // direct uploads need S3
  }

  async close(): Promise<void> {}
}

function missing(key: string): PgFerryError {
  return new PgFerryError('NOT_FOUND', `object ${JSON.stringify(key)} not found`, { key });
}
